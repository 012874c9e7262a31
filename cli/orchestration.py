"""Run Airflow for the project: its configuration (one place), the four services (api-server, scheduler,
dag-processor, triggerer) started by PID with state under $EAGLEREC_HOME/airflow, and the DAG chain (features →
training → deploy, linked by Assets) triggered and followed through the REST API with a progress display.

Two executors (EAGLEREC_AIRFLOW_EXECUTOR): `local` (the default: the scheduler runs each task as its own process)
and `celery` (the scheduler queues tasks on a loopback redis-server, started with the services, and a real `airflow
celery worker` runs them: the set-up that spreads tasks over machines, here on one)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eaglerec.processes import read_running_pid, start_redis_server, stop_process_group, wait_for_http
from eaglerec.settings import REPO_ROOT, Paths

AIRFLOW_BIN = REPO_ROOT / ".venvs" / "airflow" / "bin"
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
# With the celery executor: the broker (and result backend) first, the worker with the others.
CELERY_SERVICES = ("redis", "celery-worker")
DEFAULT_CELERY_REDIS_PORT = 6379
# Tasks at once, as PARALLELISM: more only queue on the 2 cores.
TASK_SLOTS = 2
# The scheduler and the triggerer would each start a log server on every interface (Airflow hard-codes 0.0.0.0, ports
# 8793 and 8794) for an api-server on another machine. Here the api-server reads the task logs from the same disk.
# The celery worker likewise (port 8793): it shares the disk here too.
SERVICE_ARGS = {"scheduler": ["--skip-serve-logs"], "triggerer": ["--skip-serve-logs"]}
DEFAULT_AIRFLOW_PORT = 8080
USERNAME = "eaglerec"
FINISHED = {"success", "failed"}
TASK_DONE = {"success", "failed", "skipped", "upstream_failed", "removed"}


class AirflowError(Exception):
    """Airflow did not start, or a DAG run failed; the message names the tasks and where their logs are."""


def airflow_home(paths: Paths) -> Path:
    return paths.home / "airflow"


def read_or_create_secret(path: Path) -> str:
    """A random secret kept in a file only this user can read (created once)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def choose_executor() -> str:
    """The executor EAGLEREC_AIRFLOW_EXECUTOR names (local by default); a ValueError names the choices."""
    executor = os.environ.get("EAGLEREC_AIRFLOW_EXECUTOR", "local")
    if executor not in EXECUTORS:
        raise ValueError(f"EAGLEREC_AIRFLOW_EXECUTOR={executor!r}: expected one of {', '.join(EXECUTORS)}")
    return executor


def celery_redis_port() -> int:
    return int(os.environ.get("EAGLEREC_CELERY_REDIS_PORT", DEFAULT_CELERY_REDIS_PORT))


def airflow_environment(paths: Paths, port: int = DEFAULT_AIRFLOW_PORT, executor: str = "local") -> dict[str, str]:
    """Everything Airflow is configured with: loopback only, the executor (local or celery, see choose_executor),
    SQLite metadata, this repo's DAGs (or EAGLEREC_DAGS_FOLDER's: a DAG's tasks run the code of the repository its
    file is in), the simple auth manager with one user whose password Airflow generates (never a default one)."""
    home = airflow_home(paths)
    home.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": os.environ.get("EAGLEREC_DAGS_FOLDER") or str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": EXECUTORS[executor],
        # Two cores: more parallel tasks only queue on the CPU (each training task imports TensorFlow).
        "AIRFLOW__CORE__PARALLELISM": str(TASK_SLOTS),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        # Services started separately must sign and check the same tokens.
        "AIRFLOW__API_AUTH__JWT_SECRET": read_or_create_secret(home / "jwt_secret"),
        "AIRFLOW__API__SECRET_KEY": read_or_create_secret(home / "api_secret_key"),
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "EAGLEREC_HOME": str(paths.home),
        "EAGLEREC_ML_BIN": str(Path(sys.executable).parent),
        **(celery_environment() if executor == "celery" else {}),
    }


def celery_environment() -> dict[str, str]:
    """The CeleryExecutor's settings: the loopback redis-server as broker (database 0) and result backend (1)."""
    redis = f"redis://127.0.0.1:{celery_redis_port()}"
    return {
        "AIRFLOW__CELERY__BROKER_URL": f"{redis}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"{redis}/1",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(TASK_SLOTS),
    }


def service_commands(executor: str) -> dict[str, list[str]]:
    """The command of each Airflow service to run for an executor, in start order."""
    airflow = str(AIRFLOW_BIN / "airflow")
    commands = {service: [airflow, service, *SERVICE_ARGS.get(service, [])] for service in SERVICES}
    if executor == "celery":
        commands["celery-worker"] = [airflow, "celery", "worker", "--concurrency", str(TASK_SLOTS), "--skip-serve-logs"]
    return commands


def start_broker(paths: Paths) -> subprocess.Popen:
    """The Celery broker: a redis-server on loopback, append-only (tasks queued before a restart are still there
    after it), its files and log under the Airflow home."""
    home = airflow_home(paths)
    (home / "redis").mkdir(parents=True, exist_ok=True)
    with (home / "redis.log").open("ab") as log:
        try:
            return start_redis_server(celery_redis_port(), home / "redis", persistent=True, stdout=log)
        except RuntimeError as exc:
            raise AirflowError(f"the celery broker: {exc}; EAGLEREC_CELERY_REDIS_PORT chooses another port; log: "
                               f"{home / 'redis.log'}") from None


def run_airflow(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(AIRFLOW_BIN / "airflow"), *args], env={**os.environ, **env}, check=False, **kwargs)


def start_airflow(paths: Paths, port: int = DEFAULT_AIRFLOW_PORT, timeout: float = 240,
                  executor: str | None = None) -> str:
    """Migrate the metadata database and start the services not running yet (for the executor, by default
    choose_executor's); return the UI URL once healthy."""
    executor = executor or choose_executor()
    env = airflow_environment(paths, port, executor)
    home = airflow_home(paths)
    migrated = run_airflow(["db", "migrate"], env, capture_output=True, text=True)
    if migrated.returncode != 0:
        raise AirflowError(f"airflow db migrate failed: {migrated.stderr[-2000:]}")
    processes = {}
    if executor == "celery" and read_running_pid(home / "redis.pid") is None:
        processes["redis"] = start_broker(paths)
        (home / "redis.pid").write_text(str(processes["redis"].pid))
    for service, command in service_commands(executor).items():
        pid_file = home / f"{service}.pid"
        if read_running_pid(pid_file) is None:
            log = (home / f"{service}.log").open("ab")
            processes[service] = subprocess.Popen(command, env={**os.environ, **env}, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True)
            pid_file.write_text(str(processes[service].pid))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/api/v2/monitor/health", processes.get("api-server"), timeout, "the Airflow api-server")
    except RuntimeError as exc:
        raise AirflowError(f"{exc}; logs in {home}") from None
    for service, process in processes.items():
        if process.poll() is not None:
            raise AirflowError(f"airflow {service} exited with code {process.returncode}: {home / service}.log")
    return url


def stop_airflow(paths: Paths) -> list[str]:
    """Stop the services of either executor by PID (the broker last); return the names of those that were running."""
    return [service for service in (*SERVICES, *reversed(CELERY_SERVICES))
            if stop_process_group(airflow_home(paths) / f"{service}.pid") is not None]


def read_password(paths: Paths, timeout: float = 60) -> str:
    """The password Airflow generated for USERNAME (written by the api-server at its first start)."""
    generated = airflow_home(paths) / "simple_auth_manager_passwords.json.generated"
    deadline = time.monotonic() + timeout
    while not generated.exists():
        if time.monotonic() > deadline:
            raise AirflowError(f"no generated password in {generated}: is the api-server running?")
        time.sleep(0.5)
    return json.loads(generated.read_text())[USERNAME]


@dataclass
class AirflowClient:
    """Airflow's REST API (v2) with a bearer token from /auth/token."""

    url: str
    token: str

    @classmethod
    def login(cls, url: str, username: str, password: str) -> AirflowClient:
        answer = request_json(f"{url}/auth/token", "POST", {"username": username, "password": password})
        return cls(url, answer["access_token"])

    def call(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        return request_json(f"{self.url}/api/v2{path}", method, body, {"Authorization": f"Bearer {self.token}"})

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Wait until the dag-processor has parsed the DAG (a new AIRFLOW_HOME starts empty)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call(f"/dags/{dag_id}")
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or time.monotonic() > deadline:
                    errors = self.call("/importErrors").get("import_errors", [])
                    raise AirflowError(f"DAG {dag_id} not available ({exc.code}); import errors: {errors}") from None
            time.sleep(2)

    def trigger(self, dag_id: str, conf: dict, note: str | None = None) -> str:
        self.call(f"/dags/{dag_id}", "PATCH", {"is_paused": False})
        run = self.call(f"/dags/{dag_id}/dagRuns", "POST", {"logical_date": None, "conf": conf, "note": note})
        return run["dag_run_id"]

    def write_note(self, dag_id: str, run_id: str, note: str) -> None:
        """The run's note, shown in the Airflow UI's run list and details."""
        self.call(f"/dags/{dag_id}/dagRuns/{run_id}?update_mask=note", "PATCH", {"note": note[:1000]})

    def run_ids(self, dag_id: str) -> set[str]:
        return {run["dag_run_id"] for run in self.call(f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]}

    def wait_for_new_run(self, dag_id: str, earlier: set[str], timeout: float) -> str | None:
        """The newest run of dag_id not in `earlier`, once the scheduler created it; None after timeout. (Asset
        events queued while the DAG was paused may have started an older one first.)"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = [run for run in self.call(f"/dags/{dag_id}/dagRuns?limit=100&order_by=-run_after")["dag_runs"]
                   if run["dag_run_id"] not in earlier]
            if new:
                return new[0]["dag_run_id"]
            time.sleep(2)
        return None

    def task_states(self, dag_id: str, run_id: str) -> dict[str, dict]:
        """Task instances by name: the task id, and for a mapped task's instances its rendered map index
        (`train[din]`)."""
        instances = self.call(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]
        return {name_instance(instance): instance for instance in instances}

    def follow(self, dag_id: str, run_id: str, show: Callable[[str], None] = print, poll: float = 3,
               timeout: float = 3600) -> dict[str, dict]:
        """Print each task as it finishes (state, duration) until the run ends; return the task instances."""
        started, reported = time.monotonic(), set()
        while True:
            state = self.call(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            tasks = self.task_states(dag_id, run_id)
            for task_id, instance in sorted(tasks.items(), key=lambda item: item[1].get("end_date") or ""):
                if instance["state"] in TASK_DONE and task_id not in reported:
                    reported.add(task_id)
                    seconds = instance.get("duration") or 0
                    running = sum(1 for i in tasks.values() if i["state"] == "running")
                    show(f"  [{time.monotonic() - started:5.0f} s] {instance['state']:<15} {task_id:<32} "
                         f"{seconds:6.1f} s   ({len(reported)}/{len(tasks)} done, {running} running)")
            if state in FINISHED:
                return tasks
            if time.monotonic() - started > timeout:
                raise AirflowError(f"{dag_id} run {run_id} still {state} after {timeout:.0f} s")
            time.sleep(poll)


def name_instance(instance: dict) -> str:
    if instance.get("map_index", -1) == -1:
        return instance["task_id"]
    return f"{instance['task_id']}[{instance.get('rendered_map_index') or instance['map_index']}]"


def request_json(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"{}")


# Triggering the first DAG runs the chain: each updates the Assets the next is scheduled on.
CHAIN = ("eaglerec_features", "eaglerec_training", "eaglerec_deploy")
MONITORING_DAG = "eaglerec_monitoring"


def run_pipeline(paths: Paths, conf: dict, port: int = DEFAULT_AIRFLOW_PORT, show: Callable[[str], None] = print,
                 next_run_timeout: float = 300) -> dict[str, dict]:
    """Trigger eaglerec_features through the REST API and follow it, then the training and deploy runs its Assets
    trigger; return every task instance of the chain by name; raise AirflowError naming the failed tasks. The chain
    ends early when a DAG's run updates no Asset (nothing changed: the features run stopped after the gate)."""
    url = f"http://127.0.0.1:{port}"
    client = AirflowClient.login(url, USERNAME, read_password(paths))
    for dag_id in (*CHAIN, MONITORING_DAG):
        client.wait_for_dag(dag_id)
        client.call(f"/dags/{dag_id}", "PATCH", {"is_paused": False})  # paused DAGs ignore their Assets
    earlier = {dag_id: client.run_ids(dag_id) for dag_id in CHAIN[1:]}
    # Every run of the chain names its data in a note (the UI lists runs by time and id only).
    note = f"dataset {conf.get('dataset', '?')} from {conf.get('source', '?')}"[:1000]
    run_id = client.trigger(CHAIN[0], conf, note)
    show(f"{CHAIN[0]}: run {run_id} triggered ({url}/dags/{CHAIN[0]})")
    every_task: dict[str, dict] = {}
    for position, dag_id in enumerate(CHAIN):
        if position:
            run_id = client.wait_for_new_run(dag_id, earlier[dag_id], next_run_timeout)
            if run_id is None:
                show(f"{dag_id}: not triggered (its Assets were not updated: nothing changed upstream)")
                break
            show(f"{dag_id}: run {run_id} triggered by Assets")
            client.write_note(dag_id, run_id, note)
        started = time.monotonic()
        tasks = client.follow(dag_id, run_id, show)
        every_task.update(tasks)
        state = client.call(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        show(f"{dag_id}: {state} in {time.monotonic() - started:.0f} s")
        if state != "success":
            failed = sorted(task for task, instance in tasks.items() if instance["state"] == "failed")
            skipped = sorted(task for task, instance in tasks.items() if instance["state"] == "upstream_failed")
            raise AirflowError(f"{dag_id} run {run_id} {state}; failed tasks: {', '.join(failed)}"
                               + (f" (not run after it: {', '.join(skipped)})" if skipped else "")
                               + f"; logs under {airflow_home(paths) / 'logs'}")
        if any(instance["state"] == "skipped" for instance in tasks.values()):
            show(f"{dag_id}: nothing changed since the marts were built; the chain stops here (rebuild=true forces it)")
            break
    return every_task
