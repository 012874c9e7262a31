"""A training run's lineage tags: dataset and source from the marts' build record and the ingest manifest, the data
version, and the Airflow DAG, run, task and try when an Airflow task trains."""

from __future__ import annotations

import hashlib
import json

import pytest

from eaglerec.settings import Paths
from training.tracking import describe_lineage, name_run

pytestmark = pytest.mark.unit


def write_home(root) -> Paths:
    paths = Paths(root)
    paths.marts.mkdir(parents=True)
    (paths.marts / "_build.json").write_text(json.dumps({"dataset": "ml-100k", "dbt_code": "abc",
                                                         "dropped_rows": {"ratings.csv": 3, "tags.csv": 1}}))
    paths.raw_dataset("ml-100k").mkdir(parents=True)
    (paths.raw_dataset("ml-100k") / "_manifest.json").write_text(json.dumps({"source": "/data/ml-100k.zip",
                                                                             "format": "100k"}))
    return paths


def test_lineage_outside_airflow_names_dataset_source_and_data_version(tmp_path, monkeypatch):
    for name in ("AIRFLOW_CTX_DAG_ID", "AIRFLOW_CTX_DAG_RUN_ID", "AIRFLOW_CTX_TASK_ID", "AIRFLOW_CTX_TRY_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    paths = write_home(tmp_path)
    expected_version = hashlib.sha256((paths.marts / "_build.json").read_bytes()).hexdigest()[:16]
    assert describe_lineage(paths) == {"dataset": "ml-100k", "source": "/data/ml-100k.zip", "release_format": "100k",
                                       "data_version": expected_version, "dropped_rows": "4"}
    assert name_run("din", describe_lineage(paths)) == "din · ml-100k"


def test_lineage_in_an_airflow_task_adds_the_dag_run_task_and_try(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "eaglerec_training")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "asset_triggered__2026-11-30T08:00:00")
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "train")
    monkeypatch.setenv("AIRFLOW_CTX_TRY_NUMBER", "2")
    lineage = describe_lineage(write_home(tmp_path))
    assert (lineage["airflow_dag_id"], lineage["airflow_run_id"], lineage["airflow_task_id"],
            lineage["airflow_try_number"]) == ("eaglerec_training", "asset_triggered__2026-11-30T08:00:00", "train",
                                               "2")
