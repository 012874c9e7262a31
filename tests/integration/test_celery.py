"""Airflow on Celery, for real: the CeleryExecutor with a loopback redis-server as broker and result backend, and a
real `airflow celery worker`. The DAG chain (features → training → deploy) runs on a slice of the bundled data
(30 users, one ranker and one retriever, the features built by dbt on Spark) and every task instance of it was
executed by the worker: its log names each one as Celery handed it over. Part of `make test-scale` (marker
scale_out)."""

from __future__ import annotations

import os
import re

import pytest

from cli.orchestration import (
    CELERY_SERVICES,
    SERVICES,
    USERNAME,
    AirflowClient,
    airflow_home,
    read_password,
    run_pipeline,
    start_airflow,
    stop_airflow,
)
from eaglerec.features import list_marts, spark_dir
from eaglerec.processes import read_running_pid
from eaglerec.settings import Paths
from tests.conftest import environment_set, find_free_port, running_tracking_server
from tests.integration.test_orchestration import write_small_release
from tests.services import listening_sockets

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.scale_out]

# The features on Spark (the DAG's engine param): the chain reads and serves marts dbt-spark built.
CONF = {"dataset": "ml-small-30", "models": ["embedding_mlp", "most_popular"], "epochs": 1, "engine": "spark"}
# The worker logs each workload it takes from the broker: "Executing workload in Celery: ... ti=TaskInstanceDTO(
# id=UUID('01a22f69-...'), task_id='ingest', dag_id='eaglerec_features', run_id='manual__...', ...": the id is the
# task instance's, as the REST API gives it.
WORKLOAD = re.compile(r"Executing workload in Celery: .*? ti=TaskInstanceDTO\(id=UUID\('(?P<id>[0-9a-f-]+)'\), "
                      r"task_id='(?P<task_id>[^']+)', dag_id='(?P<dag_id>[^']+)'")


@pytest.fixture(scope="module")
def celery_platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("celery")
    paths = Paths(root / "home")
    shared = {"MLFLOW_TRACKING_URI": None, "BENTOML_HOME": str(root / "bentoml"), "EAGLEREC_FEATURES_SCHEDULE": "none",
              "EAGLEREC_MONITORING_SCHEDULE": "none", "EAGLEREC_AIRFLOW_EXECUTOR": "celery",
              "EAGLEREC_CELERY_REDIS_PORT": str(find_free_port())}
    with running_tracking_server(paths.home) as uri, environment_set({**shared, "MLFLOW_TRACKING_URI": uri}):
        try:
            yield {"paths": paths, "port": find_free_port(),
                   "conf": {**CONF, "source": str(write_small_release(root / "ml-small-30", users=30))}}
        finally:
            stop_airflow(paths)


def list_task_instances(client: AirflowClient, dag_id: str) -> list[dict]:
    runs = client.call(f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
    return [instance for run in runs
            for instance in client.call(f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances?limit=1000")
            ["task_instances"]]


def test_the_chain_runs_through_the_celery_worker(celery_platform):
    paths, port = celery_platform["paths"], celery_platform["port"]
    url = start_airflow(paths, port)
    home = airflow_home(paths)
    pids = {service: read_running_pid(home / f"{service}.pid") for service in (*SERVICES, *CELERY_SERVICES)}
    assert None not in pids.values(), pids

    tasks = run_pipeline(paths, celery_platform["conf"], port)
    assert {instance["state"] for instance in tasks.values()} == {"success"}
    assert all((paths.marts / f"{mart}.parquet").exists() for mart in list_marts())
    assert (spark_dir(paths) / "warehouse" / "eaglerec.db" / "rating_examples").is_dir()  # built by Spark
    assert sorted(task for task in tasks if task.startswith("train[")) == ["train[embedding_mlp]",
                                                                            "train[most_popular]"]

    client = AirflowClient.login(url, USERNAME, read_password(paths))
    ran = [instance for dag_id in ("eaglerec_features", "eaglerec_training", "eaglerec_deploy")
           for instance in list_task_instances(client, dag_id) if instance["state"] == "success"]
    assert len(ran) == len(tasks)
    executed = {match["id"]: (match["dag_id"], match["task_id"])
                for match in WORKLOAD.finditer((home / "celery-worker.log").read_text())}
    missing = [(instance["dag_id"], instance["task_id"]) for instance in ran if instance["id"] not in executed]
    assert not missing, missing
    assert all(executed[instance["id"]] == (instance["dag_id"], instance["task_id"]) for instance in ran)
    assert {instance["executor"] for instance in ran} <= {None, "CeleryExecutor"}

    # The broker and the worker listen on loopback only, as the other services.
    sockets = listening_sockets(list(pids.values()), ports=[])
    assert int(os.environ["EAGLEREC_CELERY_REDIS_PORT"]) in {listening for _, _, listening in sockets}
    assert all(address in ("127.0.0.1", "::1") for _, address, _ in sockets), sockets
