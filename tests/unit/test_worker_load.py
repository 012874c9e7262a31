"""The workers' shared load: counts written by one process are read by another, and a worker busier than another by
more than the margin closes the connection after its answer (and only then), whatever the answer's outcome."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from bentos.recommender.service import SpreadConnections
from bentos.recommender.workers import WorkerLoad

pytestmark = pytest.mark.unit


def test_another_process_sees_a_workers_requests_in_flight(tmp_path):
    first = WorkerLoad(tmp_path, worker=1, workers=2)
    for _ in range(3):
        first.begin()
    first.end()
    # A second process, as BentoML's workers are: it maps the same file and reads worker 1's count from its slot.
    code = textwrap.dedent(f"""
        from bentos.recommender.workers import WorkerLoad
        second = WorkerLoad({str(tmp_path)!r}, worker=2, workers=2)
        second.begin()
        print(second.slots[0], second.busier_than_another(0), second.busier_than_another(-2))
    """)
    seen = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert seen == ["2", "False", "True"]  # worker 2 holds 1 against worker 1's 2: busier only by a margin of -2
    assert list(first.slots) == [2, 1]  # the child's begin is in the file (it ended without calling end)
    assert first.busier_than_another(0) and not first.busier_than_another(1)


def test_a_restarted_worker_starts_idle(tmp_path):
    old = WorkerLoad(tmp_path, worker=2, workers=2)
    old.begin()
    assert WorkerLoad(tmp_path, worker=2, workers=2).slots[1] == 0


def answer(load: WorkerLoad, fail: bool = False) -> tuple[list[dict], int]:
    """One request through SpreadConnections around an app that answers 200 (or raises after starting its answer):
    the messages sent, and the worker's count seen while the app ran."""
    sent, during = [], []

    async def app(scope, receive, send):
        during.append(load.slots[load.worker - 1])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        if fail:
            raise RuntimeError("the app failed mid-answer")
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    SpreadConnections.load = load
    try:
        asyncio.run(SpreadConnections(app)({"type": "http", "method": "GET", "path": "/"}, receive, send))
    except RuntimeError:
        assert fail
    finally:
        SpreadConnections.load = None
    return sent, during[0]


def closes(sent: list[dict]) -> bool:
    return (b"connection", b"close") in sent[0]["headers"]


def test_a_busier_worker_closes_the_connection_after_answering(tmp_path, monkeypatch):
    import bentos.recommender.service as service

    monkeypatch.setattr(service, "SPREAD_MARGIN", 2)
    mine, other = WorkerLoad(tmp_path, worker=1, workers=3), WorkerLoad(tmp_path, worker=2, workers=3)
    third = WorkerLoad(tmp_path, worker=3, workers=3)
    for _ in range(4):
        other.begin()
        third.begin()
    for _ in range(5):
        mine.begin()  # 5 others already in flight here: this request makes 6, others 4 (6 > 4 + 2 is false)
    sent, during = answer(mine)
    assert during == 6 and not closes(sent) and sent[1]["body"] == b"ok"
    mine.begin()  # 7 with the request: 7 > 4 + 2
    sent, during = answer(mine)
    assert during == 7 and closes(sent) and sent[0]["headers"][0] == (b"content-type", b"text/plain")
    third.end()  # one other worker at 3 is enough: 6 with the request > 3 + 2
    mine.end()
    assert closes(answer(mine)[0])
    assert list(mine.slots) == [5, 4, 3]  # each request's count was taken back
    sent, _ = answer(mine, fail=True)
    assert closes(sent) and list(mine.slots) == [5, 4, 3]  # and taken back when the app raised
