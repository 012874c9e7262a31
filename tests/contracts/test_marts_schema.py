"""The dbt YAML documents every model and column, and the parquet marts have exactly the documented columns."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from eaglerec.features import list_marts
from eaglerec.settings import DBT_PROJECT_DIR, REPO_ROOT

pytestmark = pytest.mark.contracts

MARTS = list_marts()


def read_model_docs() -> dict[str, dict]:
    models = {}
    for path in Path(DBT_PROJECT_DIR, "models").rglob("*.yml"):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            models[model["name"]] = model
    return models


def test_every_model_and_documented_column_has_a_description():
    sql_models = {path.stem for path in Path(DBT_PROJECT_DIR, "models").rglob("*.sql")}
    docs = read_model_docs()
    assert sql_models == set(docs), "each model has a YAML entry and each YAML entry a model"
    for name, model in docs.items():
        assert model.get("description"), f"model {name} has no description"
        for column in model.get("columns", []):
            assert column.get("description"), f"{name}.{column['name']} has no description"


def test_every_feast_source_reads_a_mart_of_its_name():
    import re

    data_sources = (REPO_ROOT / "feature_repo" / "data_sources.py").read_text()
    sources = re.findall(r'parquet_source\(MARTS_DIR, "(\w+)"', data_sources)
    assert len(sources) == 3 and set(sources) <= set(MARTS)


@pytest.mark.slow
@pytest.mark.parametrize("mart", MARTS)
def test_parquet_marts_have_the_documented_columns(mart, built_paths):
    documented = [column["name"] for column in read_model_docs()[mart]["columns"]]
    written = list(pd.read_parquet(built_paths.marts / f"{mart}.parquet").columns)
    assert set(documented) <= set(written)
    if mart != "rating_examples":  # documented as rating_events joined with the two profile marts
        assert documented == written
    else:
        profiles = {name: read_model_docs()[name]["columns"] for name in ("rating_events", "user_profiles",
                                                                          "movie_profiles")}
        expected = {column["name"] for columns in profiles.values() for column in columns}
        # Flat: user_profiles' two list columns are there as their _1.._5 columns only.
        expected -= {"valid_from", "valid_from_timestamp", "user_liked_movie_ids", "user_genres"}
        assert set(written) == expected


@pytest.mark.parametrize(("dbt_vars", "message"), [
    ({"user_history_size": 128}, "var user_history_size must be below 128"),
    ({"movielens_genres": [f"genre {n:02d}" for n in range(33)]}, "at most 32 genres"),
])
def test_user_profiles_refuses_vars_its_packed_genre_counts_cannot_hold(dbt_vars, message, tmp_path):
    """user_profiles packs per-genre counts in 7 bits and names a genre by 5 bits: settings beyond that must stop
    the build at compile time rather than give wrong counts. A history of 127 still compiles."""
    import json
    import os
    import subprocess

    from eaglerec.features import find_dbt

    def compile_user_profiles(values: dict) -> subprocess.CompletedProcess:
        env = {**os.environ, "EAGLEREC_HOME": str(tmp_path), "DBT_TARGET_PATH": str(tmp_path / "target"),
               "DBT_LOG_PATH": str(tmp_path / "logs")}
        return subprocess.run([find_dbt(), "compile", "--select", "user_profiles", "--project-dir",
                               str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--vars",
                               json.dumps(values)], env=env, cwd=DBT_PROJECT_DIR, capture_output=True, text=True)

    refused = compile_user_profiles(dbt_vars)
    assert refused.returncode != 0 and message in refused.stdout + refused.stderr
    if "user_history_size" in dbt_vars:
        assert compile_user_profiles({"user_history_size": 127}).returncode == 0
