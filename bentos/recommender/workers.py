"""Service workers (processes of one `bentoml serve`) agree on the models they serve: a reload through any of them
writes a new generation to a file the workers of that server share; every worker watches it (one stat every half
second), reloads when it changes and acknowledges with its result; the reload answers once every worker has.

The folder is the server's own (named by the process that started the workers), so two servers on one home do not
reload each other."""

from __future__ import annotations

import json
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
