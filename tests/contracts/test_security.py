"""Security habits the code must keep: no secrets in git, loopback binding, no default Airflow password, SQL
parameters instead of formatted user input."""

import ast
import re
import subprocess

import pytest

from eaglerec.settings import REPO_ROOT, Paths

pytestmark = pytest.mark.contracts

CODE_FOLDERS = ("eaglerec", "bentos", "training", "expectations", "feature_repo", "dags", "benchmarks")
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\."),
    "assigned password": re.compile(r"(?i)\b(password|passwd|secret|token)\b\s*[:=]\s*['\"][^'\"\s$<{]{8,}['\"]"),
    "credentials in a URL": re.compile(r"://[^/\s:@'\"]+:[^/\s@'\"{$]{4,}@"),
}
# Values tests set on purpose for their own throwaway services.
ALLOWED = {"test-admin-token"}


def tracked_text_files():
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    for name in listed.stdout.splitlines():
        path = REPO_ROOT / name
        if path.suffix in (".csv", ".png", ".parquet") or not path.is_file():
            continue
        try:
            yield name, path.read_text()
        except UnicodeDecodeError:
            continue


def test_no_secret_is_committed():
    found = []
    for name, text in tracked_text_files():
        for kind, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                if not any(allowed in match.group(0) for allowed in ALLOWED):
                    found.append(f"{name}: {kind}: {match.group(0)[:60]}")
    assert found == []


def test_the_scan_finds_what_it_looks_for():
    # Assembled here so that this file does not hold the very strings it scans for.
    samples = ["pass" + 'word = "hunter2hunter2"', "-----BEGIN RSA " + "PRIVATE KEY-----",
               "postgres://app:" + "s3cr3tpw@db/x", "AKIA" + "ABCDEFGHIJKLMNOP"]
    for sample in samples:
        assert any(pattern.search(sample) for pattern in SECRET_PATTERNS.values()), sample


def test_services_bind_to_loopback():
    for folder in CODE_FOLDERS:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert "0.0.0.0" not in text, f"{path} binds beyond loopback"
            for host in re.findall(r"\"--host\",\s*\"([^\"]+)\"", text):
                assert host == "127.0.0.1", f"{path}: --host {host}"


def test_airflow_users_get_generated_passwords_never_a_default_one(tmp_path):
    from cli.orchestration import airflow_environment

    environment = airflow_environment(Paths(tmp_path))
    users = environment["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    # "<user>:<role>" pairs only: Airflow generates each password; no all-admins shortcut.
    assert all(re.fullmatch(r"\w+:(admin|op|user|viewer)", pair) for pair in users.split(","))
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS" not in environment
    assert environment["AIRFLOW__API__HOST"] == "127.0.0.1"
    secrets = [environment["AIRFLOW__API_AUTH__JWT_SECRET"], environment["AIRFLOW__API__SECRET_KEY"]]
    assert all(len(secret) >= 32 for secret in secrets) and secrets[0] != secrets[1]
    assert (tmp_path / "airflow" / "jwt_secret").stat().st_mode & 0o077 == 0  # readable by the owner only


def test_sql_is_never_formatted_from_values():
    """DuckDB and other SQL calls take a literal string (parameters for values), never an f-string or `%`/`+`."""
    for folder in CODE_FOLDERS:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                is_sql_call = isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("execute", "sql")
                if is_sql_call and node.args and isinstance(node.args[0], (ast.JoinedStr, ast.BinOp)):
                    pytest.fail(f"{path}:{node.lineno}: SQL built by formatting")
