"""Benchmark the vector retrievers' approximate index against the exact scan, side by side in one run.

For each catalogue size (default: the bundled data's 9,742 movies and ML-25M's 62,423), seeded clustered movie
vectors (200 taste clusters, 32 dimensions as item2vec/two-tower) with a popularity prior, users the mean of 5
movies: fit_index as registration runs it (build, the ef reaching recall@100 0.98 on other users), the index's size,
then per query (one user, top 100, as /recommend asks) the exact scan and the index search interleaved, p50/p99 and
their ratio, the index's recall@100 of the exact top 100, and whether registration would keep it (faster).
Usage: python benchmarks/retrieval_index.py [--sizes 9742 62423] [--queries 500]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from eaglerec.contracts.retrieval import (
    INDEX_MIN_MOVIES,
    INDEX_TARGET_RECALL,
    EmbeddingRetriever,
    UserState,
    VectorIndex,
)

DIMENSIONS, CLUSTERS, K = 32, 200, 100


def make_retriever(movies: int, users: int, seed: int = 7) -> EmbeddingRetriever:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIMENSIONS))
    vectors = centres[rng.integers(0, CLUSTERS, movies)] + 0.7 * rng.normal(size=(movies, DIMENSIONS))
    user_vectors = {user: vectors[rng.integers(0, movies, 5)].mean(axis=0) for user in range(1, users + 1)}
    return EmbeddingRetriever(np.arange(1, movies + 1), vectors, rng.random(movies), 0.05, user_vectors)


def measure(movies: int, queries: int) -> dict:
    """fit_index as registration runs it (on other users than those timed), then both searches interleaved."""
    retriever = make_retriever(movies, 2 * queries)
    fitting = np.stack([retriever.query(UserState(user)) for user in range(queries + 1, 2 * queries + 1)])
    started = time.perf_counter()
    fit = retriever.fit_index(fitting, only_if_faster=False)
    build = time.perf_counter() - started
    index = retriever.index
    with tempfile.TemporaryDirectory() as folder:
        size = os.path.getsize(index.save(Path(folder) / "index.usearch"))
    exact_times, index_times, found = [], [], 0
    for user in range(1, queries + 1):
        state = UserState(user)
        retriever.index = None
        started = time.perf_counter()
        truth = retriever.retrieve(state, K)
        exact_times.append(time.perf_counter() - started)
        retriever.index = index
        started = time.perf_counter()
        answer = retriever.retrieve(state, K)
        index_times.append(time.perf_counter() - started)
        found += len(set(truth.movie_ids.tolist()) & set(answer.movie_ids.tolist()))
    exact, approximate = (np.array(times) * 1000 for times in (exact_times, index_times))
    return {"movies": movies, "build_s": build, "ef": fit.expansion_search, "kept": fit.index_ms < fit.exact_ms,
            "index_mb": size / 1e6, "recall": found / (queries * K),
            "exact_p50": np.median(exact), "exact_p99": np.percentile(exact, 99),
            "index_p50": np.median(approximate), "index_p99": np.percentile(approximate, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[9_742, 62_423])
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    print(f"HNSW (usearch): M={VectorIndex.CONNECTIVITY}, ef_construction={VectorIndex.EXPANSION_ADD}, ef_search "
          f"the smallest of {VectorIndex.EXPANSIONS} reaching recall@100 {INDEX_TARGET_RECALL} (fit_index); "
          f"{DIMENSIONS} dimensions + the prior; top {K} per query; registration fits an index from "
          f"{INDEX_MIN_MOVIES:,} movies on and keeps it when faster")
    print(f"{'movies':>9} {'fit s':>6} {'ef':>5} {'index MB':>9} {'recall@100':>11} {'exact p50/p99 ms':>17} "
          f"{'index p50/p99 ms':>17} {'exact/index p50':>16} {'kept':>5}")
    for movies in args.sizes:
        row = measure(movies, args.queries)
        print(f"{row['movies']:>9,} {row['build_s']:>6.1f} {row['ef']:>5} {row['index_mb']:>9.1f} "
              f"{row['recall']:>11.4f} {row['exact_p50']:>8.2f}/{row['exact_p99']:<8.2f} "
              f"{row['index_p50']:>8.2f}/{row['index_p99']:<8.2f} "
              f"{row['exact_p50'] / row['index_p50']:>16.2f} {'yes' if row['kept'] else 'no':>5}")


if __name__ == "__main__":
    main()
