"""Running the recommender for tests: a serving home with registered champions (conftest's serving_registry),
`bentoml serve` in a subprocess on a free loopback port, and a small JSON HTTP client."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from eaglerec.processes import start_recommender, stop_process
from eaglerec.settings import REPO_ROOT
from tests.conftest import find_free_port

ADMIN_TOKEN = "test-admin-token"
CHALLENGER_SHARE = 0.3
MAX_PER_GENRE = 3


def call(base: str, path: str, body=None, headers=None, method=None) -> tuple[int, object]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method or ("POST" if data is not None else "GET"),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        payload, status = error.read(), error.code
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode()


def without_request_id(answer: tuple[int, object]) -> tuple[int, object]:
    """An answer without its request_id, which names each answer once (two calls never share it)."""
    status, body = answer
    return status, ({k: v for k, v in body.items() if k != "request_id"} if isinstance(body, dict) else body)


def start_service(serving_registry, target: str, extra_env: dict | None = None, bentoml: Path | None = None,
                  cwd: Path | None = None):
    """Start `bentoml serve target` on a free port with the serving home and registry; return (process, base URL).
    One worker unless extra_env asks for more (test_serving's service runs the default two). bentoml and cwd:
    another environment's bentoml, run from elsewhere than the repository (a built bento)."""
    port = find_free_port()
    home = serving_registry["home"].home
    env = {**os.environ, "EAGLEREC_HOME": str(home), "MLFLOW_TRACKING_URI": serving_registry["uri"],
           "EAGLEREC_ADMIN_TOKEN": ADMIN_TOKEN, "EAGLEREC_AB_CHALLENGER_SHARE": str(CHALLENGER_SHARE),
           "EAGLEREC_ONLINE_STORE": "sqlite", "EAGLEREC_SERVING_WORKERS": "1", **(extra_env or {})}
    log = home / f"serve-{port}.log"
    process = start_recommender(port, log, env, target, bentoml, cwd or REPO_ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, f"bentoml serve exited: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "the service was not ready within 180 s"
        try:
            if call(base, "/readyz")[0] == 200 and call(base, "/healthz")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(1)
    return process, base


def stop_service(process) -> None:
    stop_process(process)


def copy_serving_home(serving_registry, root: Path, online_store: str = "sqlite") -> dict:
    """A private copy of the serving home (its marts, Feast applied and materialised into its own online store) for
    tests that change online state or break things; the same registry."""
    from eaglerec.feature_store import apply_feature_repo, materialize_online, open_feature_store
    from eaglerec.settings import Paths

    home = Paths(root / "home")
    shutil.copytree(serving_registry["home"].marts, home.marts)
    apply_feature_repo(home, online_store)
    materialize_online(open_feature_store(home, online_store))
    return {**serving_registry, "home": home}


def listening_sockets(root_pids: list[int], ports: list[int] = ()) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of these processes, of the processes listening
    on these ports, and of all their descendants."""
    import psutil

    roots = [*root_pids, *(c.pid for c in psutil.net_connections(kind="tcp")
                           if c.status == psutil.CONN_LISTEN and c.laddr.port in ports and c.pid)]
    processes = {}
    for pid in roots:
        try:
            process = psutil.Process(pid)
            processes.update({p.pid: p for p in [process, *process.children(recursive=True)]})
        except psutil.NoSuchProcess:
            continue
    found = []
    for process in processes.values():
        try:
            found += [(process.name(), c.laddr.ip, c.laddr.port) for c in process.net_connections(kind="tcp")
                      if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    return found
