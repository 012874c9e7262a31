"""Service workers (processes of one `bentoml serve`) agree on the models they serve: a reload through any of them
writes a new generation to a file the workers of that server share; every worker watches it (one stat every half
second), reloads when it changes and acknowledges with its result; the reload answers once every worker has.

The folder is the server's own (named by the process that started the workers), so two servers on one home do not
reload each other."""

from __future__ import annotations

import json
import mmap
import os
import time
import uuid
from pathlib import Path

from eaglerec.files import write_then_rename

WATCH_SECONDS = 0.5
GENERATION_FILE = "generation"
# How long a reload waits for the other workers to load the new models (a load takes 5-30 s here).
RELOAD_TIMEOUT_SECONDS = 300


def serving_workers() -> int:
    """The service's worker processes: EAGLEREC_SERVING_WORKERS, default 2 (one per core here: the model call and
    the Python around it hold one core each)."""
    workers = int(os.environ.get("EAGLEREC_SERVING_WORKERS", "2"))
    if workers < 1:
        raise ValueError(f"EAGLEREC_SERVING_WORKERS={workers}: expected 1 or more")
    return workers


class WorkerSync:
    def __init__(self, folder: Path, worker: int, workers: int):
        self.folder = Path(folder)
        self.worker, self.workers = worker, workers
        self.folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_server(cls, home: Path, worker: int, workers: int) -> WorkerSync:
        return cls(Path(home) / "recommender" / f"workers-{os.getppid()}", worker, workers)

    def generation(self) -> str | None:
        """The latest reload's generation (None before the first)."""
        try:
            return (self.folder / GENERATION_FILE).read_text() or None
        except FileNotFoundError:
            return None

    def announce(self) -> str:
        """Start a new generation (this worker has loaded it): the others follow."""
        generation = uuid.uuid4().hex
        with write_then_rename(self.folder / GENERATION_FILE) as partial:  # a watcher reads the old or the new
            partial.write_text(generation)
        return generation

    def acknowledge(self, generation: str, error: str | None) -> None:
        with write_then_rename(self.folder / f"ack-{self.worker}") as partial:
            partial.write_text(json.dumps({"generation": generation, "error": error}))

    def wait_for_others(self, generation: str, timeout: float) -> dict[int, str | None]:
        """Each other worker's answer to a generation: None (reloaded), its error, or "no answer" past the
        timeout."""
        others = [worker for worker in range(1, self.workers + 1) if worker != self.worker]
        answers: dict[int, str | None] = {}
        deadline = time.monotonic() + timeout
        while len(answers) < len(others) and time.monotonic() < deadline:
            for worker in others:
                try:
                    ack = json.loads((self.folder / f"ack-{worker}").read_text())
                except (FileNotFoundError, ValueError):
                    continue
                if ack["generation"] == generation:
                    answers[worker] = ack["error"]
            time.sleep(0.05)
        return {worker: answers.get(worker, f"no answer within {timeout:.0f} s") for worker in others}


class WorkerLoad:
    """Requests in flight in each worker, in a file the server's workers share (one 8-byte slot each, mapped in
    memory): a worker reads the others' counts without a system call.

    Why: a client keeps its connection to the worker that accepted it, so at concurrency 16 two workers were seen
    holding 5 and 11 connections: both saturated, and the second's requests waited twice as long (p99 156 ms against
    88). A worker busier than another closes connections (`Connection: close` on an answer): the client reconnects,
    and the kernel hands the new connection to whichever worker accepts it first."""

    SLOT = 8

    def __init__(self, folder: Path, worker: int, workers: int):
        self.worker, self.workers = worker, workers
        path = Path(folder) / "load"
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(descriptor).st_size < self.SLOT * workers:  # the first worker sizes it; zeros are idle
                os.ftruncate(descriptor, self.SLOT * workers)
            self.slots = memoryview(mmap.mmap(descriptor, self.SLOT * workers)).cast("q")
        finally:
            os.close(descriptor)
        self.slots[worker - 1] = 0  # a restarted worker starts idle, whatever its predecessor left

    @classmethod
    def for_server(cls, home: Path, worker: int, workers: int) -> WorkerLoad:
        return cls(Path(home) / "recommender" / f"workers-{os.getppid()}", worker, workers)

    def begin(self) -> None:
        self.slots[self.worker - 1] += 1  # only this worker's event loop writes its slot

    def end(self) -> None:
        self.slots[self.worker - 1] -= 1

    def busier_than_another(self, margin: int) -> bool:
        """More requests in flight here than in some other worker, by more than `margin`."""
        mine = self.slots[self.worker - 1]
        return any(mine > self.slots[other] + margin for other in range(self.workers) if other != self.worker - 1)
