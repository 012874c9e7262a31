"""Locust users for `make bench-serving`: each user posts /recommend (k 10, the ranker named by EAGLEREC_BENCH_RANKER
or the user's A/B variant) for users drawn from EAGLEREC_BENCH_USERS (comma-separated), one request after the other
with no pause, so the concurrency is the number of locust users. Run by benchmarks/serving.py in its own process
(locust patches the process's sockets with gevent); never against anything but 127.0.0.1."""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, constant, task

USERS = [int(user) for user in os.environ["EAGLEREC_BENCH_USERS"].split(",")]
RANKER = os.environ.get("EAGLEREC_BENCH_RANKER") or None


class RecommendClient(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.draw = random.Random(hash(self)).choice

    @task
    def recommend(self) -> None:
        body = {"user_id": self.draw(USERS), "k": 10, **({"ranker": RANKER} if RANKER else {})}
        with self.client.post("/recommend", json=body, name="/recommend", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
            elif response.json()["candidates"] < 1:
                response.failure("no candidates")


LATENCIES = os.environ.get("EAGLEREC_BENCH_LATENCIES")
if LATENCIES:
    from locust import events

    seen: list[str] = []

    @events.request.add_listener
    def note_latency(response_time, exception, response=None, **_) -> None:
        """Every request's latency (ms), for exact percentiles (locust's own are rounded to two digits), the worker
        that answered (0 when none did) and whether it closed the connection after answering."""
        headers = getattr(response, "headers", None) or {}
        worker = headers.get("X-EagleRec-Worker") or 0
        closed = int((headers.get("Connection") or "").lower() == "close")
        seen.append(f"{response_time:.3f},{int(exception is None)},{worker},{closed}")

    @events.quitting.add_listener
    def write_latencies(**_) -> None:
        with open(LATENCIES, "w") as output:
            output.write("\n".join(seen))
