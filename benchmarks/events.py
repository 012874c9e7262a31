"""Benchmark the loop's write path in one run: the durable event log alone (fsync'd appends from 8 threads), the
online push of one rating by the service's writer against the Feast SDK path it replaced (in-process, interleaved;
the ratio), POST /events over HTTP at concurrency 8 (log, then the online push) beside GET /healthz at the same
concurrency (what the HTTP stack and this client allow at all), and what impression logging adds to a
recommendation (in-process, the same users with the impression log on and off, interleaved; the ratio).

Needs `make run` (marts and MLflow with registered champions). Everything it writes goes to a scratch EAGLEREC_HOME
(a copy of the marts with its own Feast online store and event log): benchmark ratings must never reach the next
training. Starts its own `bentoml serve` on a free loopback port and stops it.
Usage: python benchmarks/events.py [--events 2000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from eaglerec.event_log import LoggedRating, RatingLog
from eaglerec.processes import start_recommender, stop_process, wait_for_http
from eaglerec.settings import Paths, apply_offline_env

CONCURRENCY = 8


def post(url: str, body: dict) -> int:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:  # a 503 is an answer too: counted, not fatal
        return error.code


def scratch_home(source: Paths, root: Path) -> Paths:
    """A copy of the marts with its own online store (SQLite, materialised) and an empty event log."""
    from eaglerec.feature_store import apply_feature_repo, materialize_online, open_feature_store

    home = Paths(root / "home")
    shutil.copytree(source.marts, home.marts)
    apply_feature_repo(home, "sqlite")
    materialize_online(open_feature_store(home, "sqlite"))
    return home


def bench_log_alone(folder: Path, count: int) -> float:
    log = RatingLog(folder)
    now = time.time()
    events = [LoggedRating(f"bench-{n}", 1 + n % 600, 1 + n % 9000, 4.0, 1_700_000_000 + n, now) for n in range(count)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(log.append, events))
    return count / (time.perf_counter() - started)


def push_with_sdk(store, movies, user_id: int, movie_id: int, rating: float, rated_at: int) -> None:
    """The online push as the service did it before its writer: read the state through the SDK, fold, and push one
    DataFrame per view (the reference of the ratio)."""
    from feast.data_source import PushMode

    from eaglerec.feature_store import ACTIVITY_COLUMNS
    from eaglerec.near_line import fold_rating, profile_from_activity

    names = [f"user_recent_activity:{name}" for name in ACTIVITY_COLUMNS]
    current = store.get_online_features(features=names, entity_rows=[{"user_id": user_id}]).to_dict()
    activity = fold_rating({name: current[name][0] for name in ACTIVITY_COLUMNS}, movie_id, rating, rated_at)
    valid_from = pd.Timestamp(activity["recent_rated_ats"][0] + 1, unit="s", tz="UTC")
    store.push("user_recent_activity_push", pd.DataFrame([{"user_id": user_id, **activity,
                                                           "valid_from_timestamp": valid_from}]), to=PushMode.ONLINE)
    store.push("user_profiles_push", pd.DataFrame([{"user_id": user_id, **profile_from_activity(activity, movies),
                                                    "valid_from_timestamp": valid_from}]), to=PushMode.ONLINE)


def bench_online_push(home: Paths, pairs: list[tuple[int, int]]) -> tuple[float, float]:
    """Median ms to push one rating online: the writer, and the SDK path, alternating per rating."""
    from eaglerec.feature_store import UserStateWriter, load_movie_facts, open_feature_store

    store = open_feature_store(home, "sqlite")
    movies = load_movie_facts(home)
    writer = UserStateWriter(store, movies)
    timings: dict[str, list[float]] = {"writer": [], "sdk": []}
    for n, (user_id, movie_id) in enumerate(pairs):
        for path in (("writer", "sdk") if n % 2 else ("sdk", "writer")):
            started = time.perf_counter()
            if path == "writer":
                writer.push({user_id: [(movie_id, 4.0, 1_700_000_000 + n)]})
            else:
                push_with_sdk(store, movies, user_id, movie_id, 4.0, 1_700_000_000 + n)
            timings[path].append(time.perf_counter() - started)
    return float(np.median(timings["writer"]) * 1000), float(np.median(timings["sdk"]) * 1000)


def bench_http_ceiling(base: str, count: int) -> float:
    """GET /healthz per second at the same concurrency: the HTTP stack's and this client's own limit."""
    def one(_: int) -> None:
        with urllib.request.urlopen(f"{base}/healthz", timeout=60) as response:
            response.read()

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(count)))
    return count / (time.perf_counter() - started)


def bench_http_events(base: str, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, float, dict[int, int]]:
    """Latencies (ms), accepted events per second, and the count of each status."""
    def one(pair: tuple[int, int]) -> tuple[float, int]:
        started = time.perf_counter()
        status = post(f"{base}/events", {"user_id": pair[0], "movie_id": pair[1], "rating": 4.0})
        return time.perf_counter() - started, status

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(one, pairs))
    wall = time.perf_counter() - started
    statuses: dict[int, int] = {}
    for _, status in results:
        statuses[status] = statuses.get(status, 0) + 1
    return np.array([seconds for seconds, _ in results]) * 1000, statuses.get(200, 0) / wall, statuses


class NoImpressions:
    def record(self, impression: dict) -> None:
        pass


def bench_impression_overhead(home: Paths, users: list[int]) -> tuple[float, float]:
    """Median in-process /recommend time with the impression log and without it, alternating per request."""
    from bentos.recommender.engine import RecommendationEngine

    os.environ["EAGLEREC_HOME"] = str(home.home)
    engine = RecommendationEngine()
    logged, off = engine.impressions, NoImpressions()
    for user_id in users[:30]:  # warm-up
        engine.recommend(user_id, 10)
    timings = {"on": [], "off": []}
    for n, user_id in enumerate(users):
        for variant in (("on", "off") if n % 2 else ("off", "on")):
            engine.impressions = logged if variant == "on" else off
            started = time.perf_counter()
            engine.recommend(user_id, 10)
            timings[variant].append(time.perf_counter() - started)
    logged.flush()
    return float(np.median(timings["on"]) * 1000), float(np.median(timings["off"]) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    apply_offline_env()
    source = Paths.from_env()
    rated = pd.read_parquet(source.marts / "rating_events.parquet", columns=["user_id", "movie_id"])
    rng = np.random.default_rng(14)
    users = rng.choice(rated["user_id"].unique(), size=args.events).tolist()
    movies = rng.choice(rated["movie_id"].unique(), size=args.events).tolist()

    with tempfile.TemporaryDirectory(prefix="eaglerec-bench-events-") as scratch:
        rate = bench_log_alone(Path(scratch) / "log-alone", args.events)
        print(f"event log alone, {args.events} fsync'd appends from {CONCURRENCY} threads: {rate:,.0f} events/s")

        home = scratch_home(source, Path(scratch))
        writer_ms, sdk_ms = bench_online_push(home, list(zip(users[:200], movies[:200], strict=True)))
        print(f"online push of one rating (SQLite), median of 200 each, interleaved: writer {writer_ms:.2f} ms, Feast "
              f"SDK path {sdk_ms:.2f} ms ({sdk_ms / writer_ms:.1f}x faster)")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        server = start_recommender(port, home.home / "serve.log", {**os.environ, "EAGLEREC_HOME": str(home.home),
                                                                    "EAGLEREC_ONLINE_STORE": "sqlite"})
        try:
            wait_for_http(f"{base}/readyz", server, timeout=300, name="the recommender")
            bench_http_events(base, list(zip(users[:50], movies[:50], strict=True)))  # warm-up
            latencies, rate, statuses = bench_http_events(base, list(zip(users, movies, strict=True)))
            print(f"POST /events over HTTP at concurrency {CONCURRENCY} (log + SQLite online push): {rate:,.0f} "
                  f"accepted events/s, p50 {np.percentile(latencies, 50):.1f} ms, p99 "
                  f"{np.percentile(latencies, 99):.1f} ms; answers by status {statuses}")
            ceiling = bench_http_ceiling(base, args.events)
            print(f"GET /healthz over HTTP at concurrency {CONCURRENCY}, same client: {ceiling:,.0f} requests/s (POST "
                  f"/events reaches {rate / ceiling:.2f}x of it)")
        finally:
            stop_process(server, timeout=60)

        on, off = bench_impression_overhead(home, users[:300])
        print(f"in-process /recommend, {len(users[:300])} users, median: impression log on {on:.2f} ms, off "
              f"{off:.2f} ms: adds {on - off:+.2f} ms ({on / off:.3f}x)")


if __name__ == "__main__":
    main()
