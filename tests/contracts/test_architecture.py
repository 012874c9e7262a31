"""The architecture as checks: the folders' import layers (import-linter, configured in pyproject.toml), one module
per catalogue model with its entry point, the model list only in the catalogue, no model name in dags/, and the
contract constants equal to the dbt project's vars."""

import ast
import re
import shutil
import subprocess
import sys
from dataclasses import is_dataclass
from importlib import import_module
from pathlib import Path

import pytest
import yaml

from eaglerec.contracts.catalogue import load_catalogue
from eaglerec.contracts.names import LIKED_MOVIE_COUNT, POSITIVE_RATING, USER_HISTORY_SIZE
from eaglerec.settings import DBT_PROJECT_DIR, REPO_ROOT

pytestmark = pytest.mark.contracts

PACKAGES = ("cli", "training", "bentos", "monitoring", "expectations", "eaglerec")
# Code that could hold a list of models: every folder but the tests (which choose models to test).
CODE_FOLDERS = (*PACKAGES, "dags", "feature_repo", "benchmarks")
MODEL_NAMES = set(load_catalogue().names())


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with the packages of `root` first on the path (a copy of the repo shadows the installed one)."""
    return subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=root,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}, capture_output=True, text=True,
                          timeout=120)


def test_the_folders_import_layers_hold():
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_the_service_importing_training_code_breaks_the_layers(tmp_path):
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    models = tmp_path / "bentos" / "recommender" / "models.py"
    models.write_text(models.read_text() + "\n\ndef load_layers():\n    import training.rankers.din  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout
    assert "bentos.recommender.models -> training.rankers.din" in result.stdout


def test_each_model_is_one_module_with_params_and_a_train_entry_point():
    from training.train import resolve_params

    for name, entry in load_catalogue().models.items():
        assert entry.module == f"training.{entry.kind.name}s.{name}", f"{name}: one module per model, named like it"
        module = import_module(entry.module)
        assert is_dataclass(module.Params) and callable(module.train), entry.module
        assert is_dataclass(resolve_params(entry)), name  # the catalogue's params fit the module's


def string_literals(node: ast.AST) -> list[str]:
    return [item.value for item in getattr(node, "elts", getattr(node, "keys", [])) or []
            if isinstance(item, ast.Constant) and isinstance(item.value, str)]


def test_the_model_list_exists_once_in_the_catalogue():
    """No code outside the catalogue holds two model names in one list, set, dict or comma-separated string."""
    found = []
    for folder in CODE_FOLDERS:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
                    names = MODEL_NAMES & set(string_literals(node))
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "," in node.value:
                    names = MODEL_NAMES & set(re.split(r"[\s,]+", node.value))
                else:
                    continue
                if len(names) > 1:
                    found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {sorted(names)}")
    assert found == []


def test_no_model_is_named_in_the_dags():
    for path in (REPO_ROOT / "dags").glob("*.py"):
        text = path.read_text()
        assert not [name for name in MODEL_NAMES if re.search(rf"\b{name}\b", text)], path.name


def test_the_contract_constants_are_the_dbt_projects_vars():
    dbt_vars = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    assert dbt_vars["positive_rating_threshold"] == POSITIVE_RATING
    assert dbt_vars["user_history_size"] == USER_HISTORY_SIZE
    # The window pass behind user_profiles and rating_examples' user features.
    user_states = (DBT_PROJECT_DIR / "models" / "intermediate" / "int_user_states.sql").read_text()
    assert re.search(r"set liked_movie_count = (\d+)", user_states).group(1) == str(LIKED_MOVIE_COUNT)
