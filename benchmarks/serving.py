"""Benchmark the recommender in one run: /recommend over HTTP ranking up to 800 candidates with DIN, p50/p99 at
concurrency 1 and 8 and requests/s; the service's RSS after warm-up; and, in-process, the same request served by a
naive path that reads every candidate's features through Feast's get_online_features, with the ratio.

Needs `make run` (marts, Feast online store, MLflow with registered champions and a DIN version). Starts its own
`bentoml serve` on a free loopback port and stops it.
Usage: python benchmarks/serving.py [--requests 400]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from eaglerec.processes import start_recommender, stop_process, wait_for_http
from eaglerec.settings import Paths, apply_offline_env

# A ranker the catalogue marks serve_latest, so that requests may name it.
RANKER = "din"


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def time_requests(base: str, users: list[int], concurrency: int) -> tuple[np.ndarray, float, list[int]]:
    def one(user_id: int) -> tuple[float, int]:
        started = time.perf_counter()
        answer = post(f"{base}/recommend", {"user_id": user_id, "k": 10, "ranker": RANKER})
        return time.perf_counter() - started, answer["candidates"]

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, users))
    wall = time.perf_counter() - started
    return np.array([seconds for seconds, _ in results]) * 1000, len(users) / wall, [n for _, n in results]


def group_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants (BentoML runs the service in a worker process)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            pending += [int(child) for task in Path(f"/proc/{current}/task").iterdir()
                        for child in (task / "children").read_text().split()]
        except (FileNotFoundError, StopIteration):
            continue
    return total / 1024


def naive_recommend(engine, user_id: int, store, ranker) -> np.ndarray:
    """The slow way: the same candidates, every one's user and movie features read through the Feast SDK."""
    from bentos.recommender.candidates import retrieve_candidates

    state = engine.read_user_state(user_id)
    request = engine.candidate_request(engine.snapshot, user_id, state)
    proposed = retrieve_candidates(request, engine.sources, engine.config.max_candidates)
    movie_ids = engine.snapshot.catalog.movie_ids[proposed.positions]
    frame = store.get_online_features(features=store.get_feature_service("ranker_v1"),
                                      entity_rows=[{"user_id": user_id, "movie_id": int(m)} for m in movie_ids]).to_df()
    return np.asarray(ranker.score_batch(ranker.encoder.encode(frame))).ravel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    apply_offline_env()
    paths = Paths.from_env()
    events = pd.read_parquet(paths.marts / "rating_events.parquet", columns=["user_id"])
    users = np.random.default_rng(7).choice(events["user_id"].unique(), size=args.requests).tolist()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    log = (paths.home / "bench" / "serving.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    server = start_recommender(port, log)
    try:
        wait_for_http(f"{base}/readyz", server, timeout=300, name="the recommender")
        time_requests(base, users[:50], 1)  # warm-up
        rss = group_rss_mb(server.pid)
        print(f"/recommend over HTTP, ranker {RANKER}, k 10, {args.requests} requests of sampled users")
        print(f"{'concurrency':>11} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} {'candidates (median)':>20}")
        for concurrency in (1, 8):
            latencies, rate, counts = time_requests(base, users, concurrency)
            print(f"{concurrency:>11} {np.percentile(latencies, 50):>8.1f} {np.percentile(latencies, 99):>8.1f} "
                  f"{rate:>7.0f} {np.median(counts):>20.0f}")
        print(f"service RSS after warm-up: {rss:,.0f} MB (process group)")
    finally:
        stop_process(server, timeout=60)

    from bentos.recommender.engine import RecommendationEngine

    engine = RecommendationEngine()
    ranker = engine.snapshot.models.named_rankers[RANKER]
    sample = users[:40]
    fast, naive = [], []
    for user_id in sample:
        started = time.perf_counter()
        engine.recommend(user_id, 10, ranker=RANKER)
        fast.append(time.perf_counter() - started)
        started = time.perf_counter()
        naive_recommend(engine, user_id, engine.store, ranker)
        naive.append(time.perf_counter() - started)
    fast_ms, naive_ms = np.median(fast) * 1000, np.median(naive) * 1000
    print(f"in-process, same requests ({len(sample)} users), median: served path {fast_ms:.1f} ms, naive Feast "
          f"get_online_features path {naive_ms:.1f} ms: {naive_ms / fast_ms:.1f}x")


if __name__ == "__main__":
    main()
