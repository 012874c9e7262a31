"""Benchmark the recommender in one run: /recommend over HTTP (k 10, up to 800 candidates ranked by the users' A/B
variants, or by the ranker named with --ranker) under load from locust at concurrency 1 and 16, side by side for each
setting asked: the number of service workers, with several each EAGLEREC_SPREAD_MARGIN ("off" keeps each connection on
the worker that accepted it), and each EAGLEREC_RECOMMEND_THREADS. Each row: requests/s, p50/p99, failures, the CPU the
service and the load generator used per request (they share the machine's cores), the share of answers that closed
their connection, and each worker's share of the answers with its p99; then the service's RSS after warm-up; and,
in-process, the same request ranked by DIN against a naive path that reads every candidate's features through Feast's
get_online_features, with the ratio.

Needs `make run` (marts, Feast online store, MLflow with registered champions and a DIN version). Starts its own
`bentoml serve` on a free loopback port per worker count and stops it; locust runs in its own process (it patches
sockets with gevent), bounded by --seconds, against 127.0.0.1 only.
Usage: python benchmarks/serving.py [--workers 1 2] [--spread 2 off] [--recommend-threads 1 40]
       [--concurrency 1 16] [--seconds 30] [--ranker din]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from eaglerec.processes import start_recommender, stop_process, wait_for_http
from eaglerec.settings import Paths, apply_offline_env

# A ranker the catalogue marks serve_latest, so that requests may name it: the in-process comparison's.
RANKER = "din"
LOCUSTFILE = Path(__file__).with_name("recommend_load.py")


def run_load(base: str, users: list[int], concurrency: int, seconds: float, ranker: str | None) -> dict:
    """One locust run (its own process, headless, bounded): requests/s and exact latency percentiles, with the CPU
    seconds the load generator used."""
    with tempfile.TemporaryDirectory() as scratch:
        latencies = Path(scratch) / "latencies.csv"
        env = {**os.environ, "EAGLEREC_BENCH_USERS": ",".join(map(str, users)), "EAGLEREC_BENCH_RANKER": ranker or "",
               "EAGLEREC_BENCH_LATENCIES": str(latencies)}
        started = os.times()
        subprocess.run([str(Path(sys.executable).with_name("locust")), "-f", str(LOCUSTFILE), "--headless",
                        "-H", base, "-u", str(concurrency), "-r", str(concurrency), "-t", f"{seconds:.0f}s",
                        "--stop-timeout", "10", "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0",
                        "--csv", str(Path(scratch) / "run")],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finished = os.times()
        with (Path(scratch) / "run_stats.csv").open() as stats:
            total = next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")
        rows = np.loadtxt(latencies, delimiter=",", ndmin=2)
    ok, answered = rows[rows[:, 1] == 1, 0], rows[rows[:, 1] == 1]
    by_worker = {int(worker): answered[answered[:, 2] == worker, 0] for worker in np.unique(answered[:, 2])}
    client_cpu = (finished.children_user + finished.children_system) - (started.children_user
                                                                         + started.children_system)
    return {"requests": int(total["Request Count"]), "failures": int(total["Failure Count"]),
            "rate": float(total["Requests/s"]), "p50": float(np.percentile(ok, 50)),
            "p99": float(np.percentile(ok, 99)), "client_cpu": client_cpu,
            "workers": {worker: (len(times) / len(ok), float(np.percentile(times, 99)))
                        for worker, times in by_worker.items()},
            "closed": float(answered[:, 3].mean())}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants so far (BentoML serves from worker processes)."""
    ticks, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
            pending += [int(child) for task in Path(f"/proc/{current}/task").iterdir()
                        for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure_service(paths: Paths, users: list[int], workers: int, spread: str, threads: str,
                    concurrencies: list[int], seconds: float, ranker: str | None) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = paths.home / "bench" / f"serving-{workers}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    server = start_recommender(port, log, env={**os.environ, "EAGLEREC_SERVING_WORKERS": str(workers),
                                                "EAGLEREC_SPREAD_MARGIN": spread,
                                                "EAGLEREC_RECOMMEND_THREADS": threads})
    try:
        wait_for_http(f"{base}/readyz", server, timeout=300, name="the recommender")
        run_load(base, users, max(concurrencies), min(seconds, 10), ranker)  # warm-up: every worker, every path
        rss = group_rss_mb(server.pid)
        with urllib.request.urlopen(f"{base}/readyz", timeout=30) as ready:
            models = json.loads(ready.read())["models"]
        for concurrency in concurrencies:
            cpu_before = process_cpu_seconds(server.pid)
            result = run_load(base, users, concurrency, seconds, ranker)
            server_cpu = process_cpu_seconds(server.pid) - cpu_before
            served = max(result["requests"], 1)
            shares = "  ".join(f"{worker}: {share:.0%} p99 {p99:.1f}" for worker, (share, p99)
                               in sorted(result["workers"].items()))
            print(f"{workers:>7} {spread if workers > 1 else '-':>6} {threads:>7} {concurrency:>11} "
                  f"{result['rate']:>7.0f} {result['p50']:>8.1f} {result['p99']:>8.1f} {result['failures']:>8} "
                  f"{1000 * server_cpu / served:>15.2f} {1000 * result['client_cpu'] / served:>14.2f}  "
                  f"{result['closed']:>7.1%}  {shares}", flush=True)
        print(f"{'':>7} service RSS after warm-up: {rss:,.0f} MB (all its processes); models: {models}", flush=True)
    finally:
        stop_process(server, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--spread", nargs="+", default=["2"],
                        help="EAGLEREC_SPREAD_MARGIN values to compare with several workers (a margin or off)")
    parser.add_argument("--recommend-threads", nargs="+", default=["1"],
                        help="EAGLEREC_RECOMMEND_THREADS values to compare (40: as many as the route threads)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--ranker", help="a ranker every request names (e.g. din); default: the A/B variants")
    parser.add_argument("--no-naive", action="store_true", help="skip the in-process comparison with the Feast path")
    args = parser.parse_args()
    apply_offline_env()
    paths = Paths.from_env()
    events = pd.read_parquet(paths.marts / "rating_events.parquet", columns=["user_id"])
    users = np.random.default_rng(7).choice(events["user_id"].unique(), size=400).tolist()

    print(f"/recommend over HTTP, ranked by {args.ranker or 'the A/B variants'}, k 10, locust for {args.seconds:.0f} s "
          f"per row, 400 sampled users ({os.cpu_count()} cores shared by the service and locust)")
    print(f"{'workers':>7} {'spread':>6} {'threads':>7} {'concurrency':>11} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'failures':>8} {'service CPU ms':>15} {'locust CPU ms':>14}  {'closed':>7}  by worker "
          "(CPU per request; closed: answers that closed their connection)")
    for workers in args.workers:
        for spread in (args.spread if workers > 1 else ["off"]):
            for threads in args.recommend_threads:
                measure_service(paths, users, workers, spread, threads, args.concurrency, args.seconds, args.ranker)
    if args.no_naive:
        return

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
