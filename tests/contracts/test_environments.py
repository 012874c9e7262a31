"""The two locked environments hold what the lock files say, and every tool's telemetry is off."""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eaglerec.settings import REPO_ROOT, read_offline_env

pytestmark = pytest.mark.contracts

AIRFLOW_PYTHON = REPO_ROOT / ".venvs" / "airflow" / "bin" / "python"


def read_pins(lock_file: Path) -> dict[str, str]:
    pins = {}
    for line in lock_file.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-\[\],]+)==([^\s;]+)", line):
            pins[re.sub(r"\[.*\]", "", match.group(1)).lower()] = match.group(2)
    return pins


def test_every_package_of_the_ml_lock_is_installed_at_its_pinned_version():
    pins = read_pins(REPO_ROOT / "locks" / "ml.lock.txt")
    wrong = {name: (version, importlib.metadata.version(name)) for name, version in pins.items()
             if importlib.metadata.version(name) != version}
    assert not wrong
    for name in ("dbt-core", "dbt-duckdb", "duckdb", "mlflow", "tensorflow-cpu", "feast", "bentoml",
                 "great-expectations"):
        assert name in pins, f"{name} is missing from the ML lock"


def test_every_top_level_requirement_is_pinned_exactly():
    for requirements in ("ml.in", "airflow.in", "spark.in"):
        for line in (REPO_ROOT / "locks" / requirements).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                assert "==" in line, f"locks/{requirements}: {line!r} is not an exact pin"


def test_the_airflow_env_holds_airflow_3_3_and_none_of_the_ml_stack():
    pins = read_pins(REPO_ROOT / "locks" / "airflow.lock.txt")
    assert pins["apache-airflow"].startswith("3.3.")
    assert not {"duckdb", "tensorflow-cpu", "dbt-core", "mlflow"} & set(pins)
    probe = "import importlib.metadata as m; print(m.version('apache-airflow'))"
    installed = subprocess.run([str(AIRFLOW_PYTHON), "-c", probe], capture_output=True, text=True, check=True)
    assert installed.stdout.strip() == pins["apache-airflow"]


def test_telemetry_is_off_for_every_tool_in_processes_the_project_starts():
    offline = read_offline_env()
    for variable in ("DBT_SEND_ANONYMOUS_USAGE_STATS", "MLFLOW_DISABLE_TELEMETRY", "BENTOML_DO_NOT_TRACK",
                     "DO_NOT_TRACK", "GX_ANALYTICS_ENABLED", "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED"):
        assert variable in offline
    environment = {key: value for key, value in os.environ.items() if key not in offline}
    probe = ("import json, os; from eaglerec.settings import apply_offline_env; apply_offline_env(); "
             "print(json.dumps(dict(os.environ)))")
    shown = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True)
    child_environment = json.loads(shown.stdout)
    assert {key: child_environment.get(key) for key in offline} == offline


def test_the_cli_starts_without_importing_heavy_libraries():
    heavy = ("tensorflow", "great_expectations", "pandas", "dbt", "mlflow")
    probe = ("import sys; from cli.main import build_parser; build_parser(); "
             f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


def test_every_command_shows_its_help():
    """argparse formats help text with %: a bare `95 % intervals` once made `eaglerec --help` raise."""
    from cli.main import build_parser

    parser = build_parser()
    assert "build-features" in parser.format_help()
    commands = next(action for action in parser._actions if action.choices and "ingest" in action.choices)
    for name, command in commands.choices.items():
        assert command.format_help().startswith("usage:"), name
