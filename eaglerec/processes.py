"""Background services the Makefile starts (MLflow, the recommender, Airflow's Celery broker): started in their own
process group, recorded in a PID file, waited for over HTTP (or Redis's PING), stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from eaglerec.settings import REPO_ROOT

RECOMMENDER = "bentos.recommender.service:Recommender"


def read_running_pid(pid_file: Path) -> int | None:
    """The PID in pid_file if that process is alive, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def stop_process_group(pid_file: Path) -> int | None:
    """SIGTERM the process group recorded in pid_file (if alive); remove the file; return the PID stopped."""
    pid = read_running_pid(pid_file)
    if pid is not None:
        os.killpg(pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)
    return pid


def wait_for_http(url: str, process: subprocess.Popen | None = None, timeout: float = 120,
                  name: str = "server") -> None:
    """Block until url answers 200; raise RuntimeError if the process exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{name} at {url} not ready after {timeout:.0f} s")


def start_recommender(port: int | str, log: Path, env: dict | None = None, target: str = RECOMMENDER,
                      bentoml: Path | None = None, cwd: Path = REPO_ROOT) -> subprocess.Popen:
    """`bentoml serve` of the recommender (or of another target: a built bento) on 127.0.0.1:port, in its own process
    group, output appended to log; by default this environment's bentoml, from the repository. The one place the
    service is started from: the CLI (make serve), the tests and the benchmarks."""
    bentoml = bentoml or Path(sys.executable).with_name("bentoml")
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([str(bentoml), "serve", target, "--host", "127.0.0.1", "--port", str(port)],
                                cwd=cwd, env=env if env is not None else dict(os.environ), stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM a process started in its own group and wait; SIGKILL the group if it outlives the timeout."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def start_redis_server(port: int, workdir: Path, persistent: bool, stdout=subprocess.DEVNULL,
                       timeout: float = 30) -> subprocess.Popen:
    """A redis-server on 127.0.0.1:port in its own session, its files in workdir (append-only when persistent: what
    was written survives a restart); returns once it answers on the port with its own process id (another server
    already there would answer too), else raises RuntimeError."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: `make system-packages` installs it "
                           "(apt-get install redis-server)")
    server = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir),
                               "--appendonly", "yes" if persistent else "no", "--save", ""],
                              stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
                connection.sendall(b"INFO server\r\n")
                answer = b""
                while b"process_id:" not in answer or not answer.endswith(b"\r\n"):
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
                if f"process_id:{server.pid}\r\n".encode() in answer:
                    return server
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"redis-server on 127.0.0.1:{port} did not start (is the port taken?)")
