"""MLflow tracking: start the local tracking server, identify the data and code a run used, and log Keras models
that load without this repository."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from eaglerec.processes import wait_for_http
from eaglerec.settings import REPO_ROOT, Paths

DEFAULT_TRACKING_PORT = 5000
# What a logged Keras model needs to load; given explicitly because inferring it re-imports TensorFlow (~30 s).
KERAS_MODEL_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "keras==3.15.1"]


@dataclass(frozen=True)
class TrainedRun:
    """What a training run logged: its model, MLflow run, metrics and, if registered, its version and gate decision."""

    model: str
    run_id: str
    metrics: dict[str, float]
    train_seconds: float
    examples_per_second: float | None = None
    version: str | None = None
    decision: str | None = None


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{DEFAULT_TRACKING_PORT}")


def start_tracking_server(paths: Paths, port: int = DEFAULT_TRACKING_PORT, host: str = "127.0.0.1",
                          log_file: Path | None = None) -> subprocess.Popen:
    """Start `mlflow server` (SQLite backend, local artifacts under $EAGLEREC_HOME/mlflow) and return the process."""
    state = paths.home / "mlflow"
    (state / "artifacts").mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{state / 'mlflow.db'}",
               "--artifacts-destination", str(state / "artifacts"), "--host", host, "--port", str(port),
               "--workers", "1"]
    # Job execution would start extra worker processes (about 2 GB); nothing here uses them.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    output = (log_file or state / "server.log").open("ab")
    return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_tracking_server(uri: str, process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Block until the server answers /health; raise RuntimeError if it exits or the time runs out."""
    wait_for_http(f"{uri}/health", process, timeout, "mlflow server")


def use_experiment(name: str, attempts: int = 5) -> str:
    """mlflow.set_experiment, checked: parallel training tasks (the DAG maps one per model) may create an experiment
    at the same moment, and once here (2026-11-30) a task's run then failed on an experiment id the server did not
    know (`MLFLOW_EXPERIMENT_ID value 2 does not exist`). Set it again until the server knows the id it returned."""
    import time

    import mlflow
    from mlflow.exceptions import MlflowException

    for attempt in range(1, attempts + 1):
        try:
            experiment_id = mlflow.set_experiment(name).experiment_id
            mlflow.MlflowClient().get_experiment(experiment_id)  # raises if the server does not know it
            return experiment_id
        except MlflowException:
            if attempt == attempts:
                raise
            time.sleep(0.5 * attempt)


def hash_data_version(marts_dir: Path) -> str:
    """Return a short hash of what the marts were built from (marts/_build.json): equal hashes, equal data."""
    record = marts_dir / "_build.json"
    if not record.exists():
        raise FileNotFoundError(f"{record} is missing: build the marts with `eaglerec build-features`")
    return hashlib.sha256(record.read_bytes()).hexdigest()[:16]


# Set by Airflow for the bash tasks that run training: the DAG, its run, the task and the try.
AIRFLOW_CONTEXT = {"airflow_dag_id": "AIRFLOW_CTX_DAG_ID", "airflow_run_id": "AIRFLOW_CTX_DAG_RUN_ID",
                   "airflow_task_id": "AIRFLOW_CTX_TASK_ID", "airflow_try_number": "AIRFLOW_CTX_TRY_NUMBER"}


def describe_lineage(paths: Paths) -> dict[str, str]:
    """A run's lineage, as MLflow tags: the dataset the marts were built from, its source and format (the ingest
    manifest), the data version, the rows the raw gate left out (invalid_rows=drop); and the Airflow DAG, run, task
    and try when an Airflow task trains."""
    from eaglerec.ingest import MANIFEST_FILE

    build = json.loads((paths.marts / "_build.json").read_text())
    dataset = build.get("dataset", "unknown")
    path = paths.raw_dataset(dataset) / MANIFEST_FILE
    manifest = json.loads(path.read_text()) if path.exists() else {}
    lineage = {"dataset": dataset, "source": str(manifest.get("source", "unknown")),
               "release_format": manifest.get("format", "csv"), "data_version": hash_data_version(paths.marts),
               "dropped_rows": str(sum(build.get("dropped_rows", {}).values()))}
    return lineage | {tag: os.environ[name] for tag, name in AIRFLOW_CONTEXT.items() if os.environ.get(name)}


def name_run(model: str, lineage: dict[str, str]) -> str:
    """`<model> · <dataset>`: which model on which data, at a glance in the MLflow UI."""
    return f"{model} · {lineage['dataset']}"


def read_live_data(marts_dir: Path) -> dict[str, int]:
    """How many of the service's logged rating events the marts were built with, and the live ratings they made
    (the latest per user and movie); zeros when a features run took none."""
    from eaglerec.event_log import WATERMARK_FILE

    path = marts_dir / WATERMARK_FILE
    record = json.loads(path.read_text()) if path.exists() else {}
    return {"live_events": int(record.get("events", 0)), "live_ratings": int(record.get("ratings", 0))}


def read_git_commit() -> str:
    """Return the commit the code runs from, with '+dirty' when the work tree has changes; 'unknown' outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


@contextlib.contextmanager
def custom_layers_pickled_by_value():
    """MLflow cloudpickles Keras's registered custom objects (our layers) beside every Keras model it logs. By
    reference, the pickle would name this repository's modules (training.rankers.din), which the service and its
    bento do not have; by value, the layer classes travel inside the model."""
    import cloudpickle

    import training

    cloudpickle.register_pickle_by_value(training)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(training)


def log_keras_model(model, name: str, example: dict, signature, registered_model_name: str | None = None):
    """Log a Keras model in the active run with its signature and input example; return MLflow's ModelInfo."""
    import mlflow

    with custom_layers_pickled_by_value():
        return mlflow.tensorflow.log_model(model, name=name, signature=signature, input_example=example,
                                           pip_requirements=KERAS_MODEL_REQUIREMENTS,
                                           registered_model_name=registered_model_name)


def log_test_answers(answers) -> None:
    """Log a run's test answers (a DataFrame) as the TEST_ANSWERS_ARTIFACT of the active run."""
    import tempfile

    import mlflow

    from eaglerec.contracts.names import TEST_ANSWERS_ARTIFACT

    folder, name = TEST_ANSWERS_ARTIFACT.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / name
        answers.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), folder)


def load_test_answers(run_id: str):
    """A run's test answers, or None for a run that logged none (trained before they were logged)."""
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from eaglerec.contracts.names import TEST_ANSWERS_ARTIFACT

    try:
        return pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=TEST_ANSWERS_ARTIFACT))
    except (MlflowException, OSError):
        return None


# Every run's configuration: its model, resolved Params, the overrides a refit takes (what validation chose) and the
# user fraction; what `eaglerec refit` trains again on all data.
TRAINING_CONFIG_ARTIFACT = "training/config.json"


def log_training_config(model: str, params, refit_overrides: dict, user_fraction: float = 1.0) -> None:
    import dataclasses

    import mlflow

    mlflow.log_dict({"model": model, "params": dataclasses.asdict(params), "refit_overrides": refit_overrides,
                     "user_fraction": user_fraction}, TRAINING_CONFIG_ARTIFACT)


def load_training_config(run_id: str) -> dict | None:
    """A run's configuration, or None for a run from before configurations were logged."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{TRAINING_CONFIG_ARTIFACT}")
    except (MlflowException, OSError):
        return None


def describe_refit(evaluated_version) -> dict[str, str]:
    """A refit run's tags: the registry version (and its run) whose configuration it trained again on all data."""
    from eaglerec.contracts.names import REFIT_OF_TAG

    return {REFIT_OF_TAG: str(evaluated_version.version), "refit_of_run": evaluated_version.run_id}
