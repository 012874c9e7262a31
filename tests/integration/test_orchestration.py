"""eaglerec_pipeline for real on a small slice of the bundled data (80 users): once with `airflow dags test`, then once
more in the same home through the scheduler and the REST API (which also shows the DAG is idempotent), after which
the recommender serves the champion it registered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from eaglerec.features import MARTS
from eaglerec.orchestration import AIRFLOW_BIN, airflow_environment, run_pipeline, start_airflow, stop_airflow
from eaglerec.processes import start_recommender, stop_process, wait_for_http
from eaglerec.settings import BUNDLED_DATASET_DIR, Paths
from tests.conftest import find_free_port, running_tracking_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONF = {"dataset": "ml-small-80", "rankers": ["popularity", "din"], "retrievers": ["item2vec"], "epochs": 1}
CHOSEN = {"train.ranker_popularity", "train.ranker_din", "train.retriever_item2vec"}


def write_small_release(folder: Path, users: int = 80) -> Path:
    """The bundled release cut to its first users' ratings and tags (movies and links whole)."""
    folder.mkdir(parents=True)
    for name in ("ratings", "tags"):
        frame = pd.read_csv(BUNDLED_DATASET_DIR / f"{name}.csv")
        frame[frame["userId"] <= users].to_csv(folder / f"{name}.csv", index=False)
    for name in ("movies", "links"):
        shutil.copy(BUNDLED_DATASET_DIR / f"{name}.csv", folder / f"{name}.csv")
    return folder


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """A fresh home with its own MLflow server and the small release; Airflow services stopped afterwards."""
    root = tmp_path_factory.mktemp("orchestration")
    paths = Paths(root / "home")
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    with running_tracking_server(paths.home) as uri:
        os.environ["MLFLOW_TRACKING_URI"] = uri  # inherited by the Airflow services and their tasks
        try:
            yield {"paths": paths, "uri": uri, "port": find_free_port(),
                   "conf": {**CONF, "source": str(write_small_release(root / "ml-small-80"))}}
        finally:
            stop_airflow(paths)
            if previous is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous


def airflow(platform, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, **airflow_environment(platform["paths"], platform["port"])}
    return subprocess.run([str(AIRFLOW_BIN / "airflow"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def airflow_json(platform, *args: str):
    """A CLI listing with `-o json`: the JSON is the last line (log lines may come first)."""
    result = airflow(platform, *args, "-o", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(next(line for line in reversed(result.stdout.splitlines()) if line.startswith(("[", "{"))))


def assert_outputs(platform) -> None:
    paths = platform["paths"]
    assert all((paths.marts / f"{mart}.parquet").exists() for mart in MARTS)
    client = MlflowClient(platform["uri"])
    for name in ("eaglerec-ranker", "eaglerec-retriever"):
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.tags["promotion_decision"], name
    assert (paths.embeddings / "movie_embeddings.parquet").exists()  # the champion retriever's, for Feast


def test_airflow_dags_test_runs_every_task(platform):
    assert airflow(platform, "db", "migrate").returncode == 0
    result = airflow(platform, "dags", "test", "eaglerec_pipeline", "--conf", json.dumps(platform["conf"]))
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    runs = airflow_json(platform, "dags", "list-runs", "eaglerec_pipeline")
    assert len(runs) == 1 and runs[0]["state"] == "success"
    listed = airflow_json(platform, "tasks", "states-for-dag-run", "eaglerec_pipeline", runs[0]["run_id"])
    states = {row["task_id"]: row["state"] for row in listed}
    assert len(states) == 25
    assert {task for task, state in states.items() if state == "skipped"} == {
        task for task in states if task.startswith("train.")} - CHOSEN
    assert all(state == "success" for task, state in states.items() if task in CHOSEN or not task.startswith("train."))
    assert_outputs(platform)


def test_a_run_through_the_scheduler_and_rest_api_then_the_recommender_serves_it(platform):
    url = start_airflow(platform["paths"], platform["port"])
    assert url.startswith("http://127.0.0.1:")
    lines = []
    tasks = run_pipeline(platform["paths"], platform["conf"], platform["port"], show=lines.append)
    assert {instance["state"] for task, instance in tasks.items() if task in CHOSEN} == {"success"}
    assert all(instance["state"] in ("success", "skipped") for instance in tasks.values())
    assert any("success" in line and "promote" in line for line in lines)  # the progress display
    assert_outputs(platform)
    mlflow.set_tracking_uri(platform["uri"])
    rankers = MlflowClient(platform["uri"]).search_model_versions("name = 'eaglerec-ranker'")
    assert len(rankers) == 2 and all("promotion_decision" in v.tags for v in rankers)  # DIN once per run, gated

    port = find_free_port()
    env = {**os.environ, "EAGLEREC_HOME": str(platform["paths"].home), "MLFLOW_TRACKING_URI": platform["uri"]}
    service = start_recommender(port, platform["paths"].home / f"serve-{port}.log", env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", service, timeout=240, name="the recommender")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/recommend", json.dumps({"user_id": 1, "k": 5})
                                         .encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert len(answer["items"]) == 5 and answer["ranker"].startswith("din v")
    finally:
        stop_process(service, timeout=60)
