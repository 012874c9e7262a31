"""Benchmark Feast online reads, SQLite vs Redis, in one run: p50/p99 for 1 user and for 100 / 800 movies.

Needs the marts of $EAGLEREC_HOME (make run). Starts its own redis-server on a free loopback port and stops it.
Usage: python benchmarks/online_features.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import time

import numpy as np
import pandas as pd

from eaglerec.feature_store import apply_feature_repo, materialize_online, open_feature_store
from eaglerec.processes import start_redis_server
from eaglerec.settings import Paths, apply_offline_env

CASES = {"1 user": ("user_state_v1", "user_id", 1), "100 movies": ("retrieval_v1", "movie_id", 100),
         "800 movies": ("retrieval_v1", "movie_id", 800)}


def start_redis(workdir) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return start_redis_server(port, workdir, persistent=False), f"127.0.0.1:{port}"


def prepare(source: Paths, online_store: str):
    paths = Paths(source.home / "bench" / f"online-{online_store}")
    shutil.rmtree(paths.home, ignore_errors=True)
    shutil.copytree(source.marts, paths.marts)
    apply_feature_repo(paths, online_store)
    store = open_feature_store(paths, online_store)
    materialize_online(store)
    return store


def time_reads(store, service: str, key: str, ids: list[int], repeats: int) -> np.ndarray:
    features = store.get_feature_service(service)
    rows = [{key: entity_id} for entity_id in ids]
    for _ in range(10):
        store.get_online_features(features=features, entity_rows=rows).to_dict()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        store.get_online_features(features=features, entity_rows=rows).to_dict()
        timings.append((time.perf_counter() - started) * 1000)
    return np.array(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    apply_offline_env()
    source = Paths.from_env()
    if not (source.marts / "movie_profiles.parquet").exists():
        raise SystemExit(f"no marts in {source.marts}: run `make run` first")
    rng = np.random.default_rng(7)
    movie_ids = pd.read_parquet(source.marts / "movie_catalog.parquet", columns=["movie_id"]).movie_id.to_numpy()
    ids = {"user_id": [414], "movie_id": rng.choice(movie_ids, size=800, replace=False).tolist()}
    server, address = start_redis(source.home)
    os.environ["EAGLEREC_REDIS_ADDRESS"] = address
    try:
        stores = {name: prepare(source, name) for name in ("sqlite", "redis")}
        results = {}
        # Interleaved per case, so both stores see the same machine load.
        for case, (service, key, count) in CASES.items():
            for name, store in stores.items():
                results[(case, name)] = time_reads(store, service, key, ids[key][:count], args.repeats)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"\nFeast online reads, {args.repeats} repeats each (ms)")
    print(f"{'case':<12} {'store':<7} {'p50':>8} {'p99':>8}")
    for case in CASES:
        for name in stores:
            timings = results[(case, name)]
            print(f"{case:<12} {name:<7} {np.percentile(timings, 50):8.2f} {np.percentile(timings, 99):8.2f}")
        ratio = np.median(results[(case, "redis")]) / np.median(results[(case, "sqlite")])
        print(f"{case:<12} redis/sqlite p50 ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
