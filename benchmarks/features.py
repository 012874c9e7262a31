"""Benchmark ingest + raw gate + dbt build + training-set gate (+ Feast apply and materialisation) on seeded synthetic
MovieLens-layout data of N ratings.

Prints, for each N, every stage's wall time and peak RSS (each stage runs in its own process), side by side.
Usage: python benchmarks/features.py [--sizes 1000000 25000000] [--seed 7] [--work DIR] [--no-feast]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

REPO_ROOT = Path(__file__).resolve().parent.parent
GENRES = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
# Half-star shares of ml-latest-small (0.5 .. 5.0), so the label rate is realistic.
RATING_SHARES = np.array([1370, 2811, 1791, 7551, 5550, 20047, 13136, 26818, 8551, 13211], dtype=float)
FIRST_AT, LAST_AT = 828_000_000, 1_537_000_000  # 1996-03 .. 2018-09, the span of ml-latest-small
RATINGS_PER_USER = 155  # ml-25m: 25,000,095 ratings / 162,541 users


def generate_release(n_ratings: int, folder: Path, seed: int) -> Path:
    """Write ratings/movies/links/tags CSVs shaped like MovieLens: power-law popularity, log-normal activity."""
    if (folder / "ratings.csv").exists():
        return folder
    rng = np.random.default_rng(seed)
    n_users = max(50, n_ratings // RATINGS_PER_USER)
    n_movies = max(1_000, int(62_000 * (n_ratings / 25_000_000) ** 0.5))

    activity = rng.lognormal(mean=0.0, sigma=1.1, size=n_users)
    popularity = 1.0 / np.power(np.arange(1, n_movies + 1) + 10.0, 1.1)
    pairs = np.empty(0, dtype=np.int64)
    oversample = 1.3
    while len(pairs) < n_ratings:
        # One rating per (user, movie): repeated draws of a pair collapse, so draw more until there are enough.
        per_user = np.maximum(20, np.round(activity / activity.sum() * n_ratings * oversample)).astype(np.int64)
        users = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), per_user)
        movies = rng.choice(np.arange(1, n_movies + 1), size=len(users), p=popularity / popularity.sum())
        pairs = np.unique(users * (n_movies + 1) + movies)
        oversample *= 1.3
    pairs = rng.permutation(pairs)[:n_ratings]
    pairs.sort()
    users, movies = pairs // (n_movies + 1), pairs % (n_movies + 1)

    starts = rng.integers(FIRST_AT, LAST_AT - 86_400 * 30, size=n_users + 1)
    spans = np.minimum(rng.lognormal(mean=13.0, sigma=2.0, size=n_users + 1), LAST_AT - starts)
    timestamps = (starts[users] + rng.random(len(users)) * spans[users]).astype(np.int64)
    ratings = rng.choice(np.arange(1, 11) / 2, size=len(users), p=RATING_SHARES / RATING_SHARES.sum())

    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "ratings.csv", {"userId": users, "movieId": movies, "rating": ratings, "timestamp": timestamps})
    movie_ids = np.arange(1, n_movies + 1)
    years = rng.integers(1920, 2018, size=n_movies)
    genre_lists = ["|".join(rng.choice(GENRES, size=rng.integers(1, 4), replace=False)) for _ in movie_ids]
    write_csv(folder / "movies.csv", {"movieId": movie_ids,
                                      "title": [f"Movie {m}, The ({y})" for m, y in zip(movie_ids, years)],
                                      "genres": genre_lists})
    write_csv(folder / "links.csv", {"movieId": movie_ids, "imdbId": [f"{m:07d}" for m in movie_ids],
                                     "tmdbId": movie_ids + 1000})
    n_tags = max(10, n_ratings // 30)
    tagged = rng.choice(len(users), size=n_tags, replace=False)
    write_csv(folder / "tags.csv", {"userId": users[tagged], "movieId": movies[tagged],
                                    "tag": rng.choice(["funny", "dark", "classic", "slow"], size=n_tags),
                                    "timestamp": timestamps[tagged] + 1})
    return folder


def write_csv(path: Path, columns: dict) -> None:
    table = pa.table({name: pa.array(values) for name, values in columns.items()})
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))


def measure(command: list[str], env: dict) -> tuple[float, float]:
    """Run a command in its own process; return (wall seconds, peak RSS in MiB) of that process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def benchmark(n_ratings: int, work: Path, seed: int, feast: bool) -> list[tuple[str, float, float]]:
    dataset = f"synthetic-{n_ratings}"
    generated = time.perf_counter()
    release = work / "releases" / dataset
    # Generated in a child process: a large parent would be counted in every later child's peak RSS (fork).
    subprocess.run([sys.executable, __file__, "--generate", str(n_ratings), "--seed", str(seed), "--work", str(work)],
                   check=True)
    print(f"  data for N={n_ratings:,} ready in {time.perf_counter() - generated:.1f} s ({release})", flush=True)
    # A fresh EAGLEREC_HOME each run: an earlier copy would turn ingest into a no-op and skew the figures.
    home = work / "home" / dataset
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "EAGLEREC_HOME": str(home)}
    cli = str(Path(sys.executable).parent / "eaglerec")
    stages = [("ingest", [cli, "ingest", str(release), "--dataset", dataset]),
              ("raw gate", [cli, "validate", "--dataset", dataset]),
              ("dbt build", [cli, "build-features", "--dataset", dataset]),
              ("train gate", [cli, "validate-training-set"])]
    if feast:  # the SQLite online store under the bench home: every user's and movie's latest state
        stages += [("feast apply", [cli, "feast-apply", "--online-store", "sqlite"]),
                   ("materialize", [cli, "materialize", "--online-store", "sqlite"])]
    rows = []
    for stage, command in stages:
        wall, rss = measure(command, env)
        rows.append((stage, wall, rss))
        print(f"  N={n_ratings:>11,}  {stage:<11} {wall:8.1f} s  peak RSS {rss:8.0f} MiB", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "var" / "bench")
    parser.add_argument("--no-feast", dest="feast", action="store_false", help="stop after dbt (no Feast stages)")
    parser.add_argument("--generate", type=int, metavar="N", help="only write the synthetic release of N ratings")
    args = parser.parse_args()
    if args.generate:
        generate_release(args.generate, args.work / "releases" / f"synthetic-{args.generate}", args.seed)
        return
    results = {n: benchmark(n, args.work, args.seed, args.feast) for n in args.sizes}

    print("\nN ratings     stage         wall s   peak RSS MiB   ratings/s")
    for n, rows in results.items():
        for stage, wall, rss in rows:
            print(f"{n:>11,}   {stage:<11} {wall:8.1f}   {rss:12.0f}   {n / wall:11,.0f}")
        total = sum(wall for _, wall, _ in rows)
        print(f"{n:>11,}   {'total':<11} {total:8.1f}   {max(rss for *_, rss in rows):12.0f}   {n / total:11,.0f}")
    if len(results) > 1:
        small, large = min(results), max(results)
        ratio = sum(w for _, w, _ in results[large]) / sum(w for _, w, _ in results[small])
        print(f"\ntime ratio {large:,} / {small:,} ratings: {ratio:.1f}x for {large / small:.0f}x the data")


if __name__ == "__main__":
    main()
