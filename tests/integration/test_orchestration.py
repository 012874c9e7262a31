"""The DAG chain (eaglerec_features → eaglerec_training → eaglerec_deploy) for real on a small slice of the bundled
data (80 users), and adding a model to it.

Adding a model is one module plus one catalogue entry: in a copy of the repository, a tiny ranker and a tiny retriever
are added that way and in no other file; `eaglerec models` lists them. Airflow's scheduler and REST API then run the
copy's DAGs (their tasks run the copy's code): the features run's Assets trigger training, mapped over DIN and the
two added models (they train, register behind the gate and appear in the comparison table), and deploy, after which
the recommender serves the champion it registered (as its refit), every run of the chain carries a note naming its
data, and every socket the platform listens on (Airflow, MLflow, the recommender) is on loopback; run again
unforced, the features run finds nothing changed and stops after the gate. Last, a release the raw gate refuses
turns its run red at once (no retries for data errors)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from cli.orchestration import (
    SERVICES,
    USERNAME,
    AirflowClient,
    AirflowError,
    airflow_home,
    read_password,
    run_pipeline,
    start_airflow,
    stop_airflow,
)
from eaglerec.features import list_marts
from eaglerec.processes import read_running_pid, start_recommender, stop_process, wait_for_http
from eaglerec.settings import BUNDLED_DATASET_DIR, REPO_ROOT, Paths
from tests.conftest import environment_set, find_free_port, running_tracking_server
from tests.services import listening_sockets

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# DIN and the two models the test adds to a copy of the repository (ADDED): every train task is a process.
CONF = {"dataset": "ml-small-80", "models": ["din", "tiny_ranker", "tiny_retriever"], "epochs": 1}


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
def platform(tmp_path_factory, extended_repository):
    """A fresh home with its own MLflow server and the small release, Airflow pointed at the extended copy's DAGs;
    Airflow services stopped afterwards."""
    root = tmp_path_factory.mktemp("orchestration")
    paths = Paths(root / "home")
    # Inherited by the Airflow services and their tasks: this test's registry, and its own bento store.
    # No hourly runs in the middle of a test: runs come from the test's triggers and the Assets they update.
    shared = {"MLFLOW_TRACKING_URI": None, "BENTOML_HOME": str(root / "bentoml"), "EAGLEREC_FEATURES_SCHEDULE": "none",
              "EAGLEREC_MONITORING_SCHEDULE": "none", "EAGLEREC_DAGS_FOLDER": str(extended_repository / "dags")}
    with running_tracking_server(paths.home) as uri, environment_set({**shared, "MLFLOW_TRACKING_URI": uri}):
        try:
            yield {"paths": paths, "uri": uri, "port": find_free_port(),
                   "conf": {**CONF, "source": str(write_small_release(root / "ml-small-80"))}}
        finally:
            stop_airflow(paths)


def assert_outputs(platform) -> None:
    paths = platform["paths"]
    assert all((paths.marts / f"{mart}.parquet").exists() for mart in list_marts())
    client = MlflowClient(platform["uri"])
    for name in ("eaglerec-ranker", "eaglerec-retriever"):
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.tags["promotion_decision"], name
        # The deploy refit the champion on all ratings: linked both ways, and never gated itself.
        refit = client.get_model_version(name, champion.tags["refit_version"])
        assert refit.tags["refit_of"] == champion.version and "promotion_decision" not in refit.tags, name


TINY_RANKER = '''"""A tiny ranker: the user's and the movie's embeddings, one sigmoid unit."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers, ops

from eaglerec.contracts.features import MOVIE_ID, USER_ID
from training.rankers import RankerInputs, TrainedRanker
from training.rankers.blocks import build_inputs, compile_ranker, fit_keras_ranker


@dataclass(frozen=True)
class Params:
    embedding_dim: int = 4
    learning_rate: float = 0.01
    batch_size: int = 512
    epochs: int = 2
    patience: int = 1


def train(inputs: RankerInputs, params: Params, verbose: int = 0) -> TrainedRanker:
    features = build_inputs()
    user = layers.Embedding(inputs.sizes["user"], params.embedding_dim)(features[USER_ID.name])
    movie = layers.Embedding(inputs.sizes["movie"], params.embedding_dim)(features[MOVIE_ID.name])
    score = layers.Dense(1, activation="sigmoid", name="score")(ops.concatenate([user, movie], axis=1))
    model = compile_ranker(keras.Model(features, score, name="tiny_ranker"), params)
    return fit_keras_ranker(model, inputs, params, verbose)
'''
TINY_RETRIEVER = '''"""A tiny retriever: the movies liked right after the user's last likes (an item-by-item matrix)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix

from eaglerec.contracts.retrieval import ItemItemRetriever
from training.retrievers import RetrievalSplit, TrainedRetriever, popularity_prior


@dataclass(frozen=True)
class Params:
    popularity_weight: float = 0.01


def train(split: RetrievalSplit, params: Params, verbose: int = 0) -> TrainedRetriever:
    pairs = [(split.index[a], split.index[b]) for movies in split.train_sequences.values()
             for a, b in zip(movies, movies[1:])]
    size = len(split.index)
    rows, columns = zip(*pairs)
    matrix = coo_matrix((np.ones(len(pairs)), (rows, columns)), shape=(size, size)).tocsr()
    prior = popularity_prior(split.count_popularity())
    return TrainedRetriever(ItemItemRetriever(split.movie_ids, matrix, prior, params.popularity_weight))
'''
ENTRIES = '''
[models.tiny_ranker]
kind = "ranker"
module = "training.rankers.tiny_ranker"
description = "a tiny ranker added by the catalogue test"
baseline = false
registered = true
default = false
params = { embedding_dim = 3 }

[models.tiny_retriever]
kind = "retriever"
module = "training.retrievers.tiny_retriever"
description = "a tiny retriever added by the catalogue test"
baseline = false
registered = true
default = false
'''
ADDED = {"tiny_ranker": "ranker", "tiny_retriever": "retriever"}


def copy_repository(dest: Path) -> Path:
    """The repository's files as git sees them (tracked, and new ones not ignored): no environments, no state."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO_ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, dest / name)
    return dest


def run_in(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """The ML environment's python on the copy's code (it shadows the installed repository)."""
    return subprocess.run([sys.executable, *args], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def extended_repository(tmp_path_factory) -> Path:
    """A copy of the repository with the two models added: two new modules, two entries appended, nothing else."""
    repo = copy_repository(tmp_path_factory.mktemp("repository"))
    (repo / "training" / "rankers" / "tiny_ranker.py").write_text(TINY_RANKER)
    (repo / "training" / "retrievers" / "tiny_retriever.py").write_text(TINY_RETRIEVER)
    catalogue = repo / "eaglerec" / "contracts" / "models.toml"
    catalogue.write_text(catalogue.read_text() + ENTRIES)
    return repo


def test_eaglerec_models_lists_the_added_models(extended_repository):
    listed = run_in(extended_repository, "-m", "cli.main", "models", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    models = {model["name"]: model for model in json.loads(listed.stdout.split("\neaglerec models:")[0])}
    for name, kind in ADDED.items():
        assert models[name]["kind"] == kind and models[name]["registered_model"] == f"eaglerec-{kind}"
    assert "tiny_ranker" not in run_in(REPO_ROOT, "-m", "cli.main", "models").stdout  # only the copy has it


def test_a_run_through_the_scheduler_and_rest_api_maps_training_over_the_added_models_then_the_recommender_serves_it(
        platform, extended_repository):
    url = start_airflow(platform["paths"], platform["port"])
    assert url.startswith("http://127.0.0.1:")
    lines = []
    # A new release: the chain runs through, features, then training and deploy, triggered by the Assets.
    tasks = run_pipeline(platform["paths"], platform["conf"], platform["port"], show=lines.append)
    assert {instance["state"] for instance in tasks.values()} == {"success"}
    assert any("eaglerec_training: run" in line and "triggered by Assets" in line for line in lines)
    # One training task instance per chosen model, named by it: this repository's DIN and the copy's added models.
    assert sorted(task for task in tasks if task.startswith("train[")) == sorted(f"train[{model}]"
                                                                                for model in CONF["models"])
    assert any("success" in line and "promote" in line for line in lines)  # the progress display
    assert any("success" in line and "train[din]" in line for line in lines)
    assert_outputs(platform)
    comparison = (platform["paths"].home / "reports" / "model_comparison.md").read_text()
    assert all(f"| {name} |" in comparison for name in CONF["models"])
    # Nothing changed since: an unforced run stops after the gate.
    lines.clear()
    tasks = run_pipeline(platform["paths"], platform["conf"], platform["port"], show=lines.append)
    assert tasks["changed"]["state"] == "success" and tasks["dbt.staging"]["state"] == "skipped"
    assert not any(task.startswith("train") for task in tasks) and any("chain stops" in line for line in lines)
    # Each run of the chain names its data in its note (the UI's run list).
    airflow = AirflowClient.login(url, USERNAME, read_password(platform["paths"]))
    for dag_id in ("eaglerec_features", "eaglerec_training", "eaglerec_deploy"):
        newest = airflow.call(f"/dags/{dag_id}/dagRuns?limit=1&order_by=-run_after")["dag_runs"][0]
        assert newest["note"] == f"dataset {CONF['dataset']} from {platform['conf']['source']}", dag_id
    mlflow.set_tracking_uri(platform["uri"])
    client = MlflowClient(platform["uri"])
    rankers = [version for version in client.search_model_versions("name = 'eaglerec-ranker'")
               if "refit_of" not in version.tags]
    trained = sorted(client.get_run(version.run_id).data.tags["model"] for version in rankers)
    assert trained == ["din", "tiny_ranker"] and all("promotion_decision" in v.tags for v in rankers)
    retrievers = [version for version in client.search_model_versions("name = 'eaglerec-retriever'")
                  if "refit_of" not in version.tags]
    assert [client.get_run(version.run_id).data.tags["model"] for version in retrievers] == ["tiny_retriever"]
    assert "promotion_decision" in retrievers[0].tags
    # Lineage: each run names its model and dataset, and the Airflow DAG, run and try that trained it (train calls
    # MLflow, so it may be retried: the try is the one its task instance succeeded in).
    for version in rankers:
        run = client.get_run(version.run_id)
        model = run.data.tags["model"]
        assert run.info.run_name == f"{model} · {CONF['dataset']}"
        assert run.data.tags["airflow_dag_id"] == "eaglerec_training" and run.data.tags["airflow_task_id"] == "train"
        mapped = airflow.call(f"/dags/eaglerec_training/dagRuns/{urllib.parse.quote(run.data.tags['airflow_run_id'])}"
                              "/taskInstances/train/listMapped")["task_instances"]
        instance = next(instance for instance in mapped if instance["rendered_map_index"] == model)
        assert instance["state"] == "success" and run.data.tags["airflow_try_number"] == str(instance["try_number"])
        assert run.data.tags["dataset"] == CONF["dataset"] and "Gate: " in version.description
    champion = client.get_model_version_by_alias("eaglerec-ranker", "champion")

    port = find_free_port()
    # The copy's code serves what the copy's models registered.
    env = {**os.environ, "EAGLEREC_HOME": str(platform["paths"].home), "MLFLOW_TRACKING_URI": platform["uri"],
           "PYTHONPATH": str(extended_repository)}
    service = start_recommender(port, platform["paths"].home / f"serve-{port}.log", env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", service, timeout=240, name="the recommender")
        body = json.dumps({"user_id": 1, "k": 5, "variant": "champion"}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/recommend", body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        name = client.get_run(champion.run_id).data.tags["model"]
        assert len(answer["items"]) == 5
        assert answer["ranker"] == f"{name} v{champion.version} (refit v{champion.tags['refit_version']})"

        # Loopback only: every socket the platform listens on (Airflow's four services, MLflow, the recommender).
        airflow_pids = [read_running_pid(airflow_home(platform["paths"]) / f"{airflow_service}.pid")
                        for airflow_service in SERVICES]
        assert None not in airflow_pids
        mlflow_port = urllib.parse.urlsplit(platform["uri"]).port
        sockets = listening_sockets([*airflow_pids, service.pid], ports=[mlflow_port])
        assert {platform["port"], mlflow_port, port} <= {listening_port for _, _, listening_port in sockets}
        assert all(address in ("127.0.0.1", "::1") for _, address, _ in sockets), sockets
    finally:
        stop_process(service, timeout=60)


def test_a_release_the_gate_refuses_turns_the_run_red_at_once(platform, tmp_path):
    """No retries for data errors: the run is red as soon as the raw gate fails, and the task log names the bad rows'
    file."""
    from datetime import datetime

    release = write_small_release(tmp_path / "bad-release", users=20)
    ratings = (release / "ratings.csv").read_text().splitlines(keepends=True)
    ratings[1] = ",".join(ratings[1].split(",")[:3]) + ",0\n"  # a timestamp of 0
    (release / "ratings.csv").write_text("".join(ratings))
    url = start_airflow(platform["paths"], platform["port"])
    lines = []
    with pytest.raises(AirflowError, match="eaglerec_features run .* failed; failed tasks: raw_gate"):
        run_pipeline(platform["paths"], {**platform["conf"], "source": str(release), "dataset": "bad-release"},
                     platform["port"], show=lines.append)
    client = AirflowClient.login(url, USERNAME, read_password(platform["paths"]))
    run = client.call("/dags/eaglerec_features/dagRuns?limit=1&order_by=-run_after")["dag_runs"][0]
    gate = client.call(f"/dags/eaglerec_features/dagRuns/{run['dag_run_id']}/taskInstances/raw_gate")
    assert run["state"] == "failed" and gate["state"] == "failed" and gate["try_number"] == 1
    seconds = {name: datetime.fromisoformat(value) for name, value in
               (("gate_start", gate["start_date"]), ("red", run["end_date"]), ("triggered", run["start_date"]))}
    gate_to_red = (seconds["red"] - seconds["gate_start"]).total_seconds()
    print(f"raw gate start -> run red: {gate_to_red:.1f} s; run start -> red: "
          f"{(seconds['red'] - seconds['triggered']).total_seconds():.1f} s")
    # The gate takes ~18 s; one retry would add its 15 s delay and a second gate run. 60 s tells the two apart on a
    # busy machine (30 s did not: 30.08 s once, the gate alone being slow).
    assert gate_to_red <= 60
    log = client.call(f"/dags/eaglerec_features/dagRuns/{run['dag_run_id']}/taskInstances/raw_gate/logs/1"
                      "?full_content=true")
    text = json.dumps(log)
    assert "must be between 788918400 (1995-01-01)" in text and "bad_rows.csv" in text
