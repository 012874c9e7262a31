"""Hold out a period of a release for replay: the ratings before a cutoff time stay a release (the pipeline builds and
trains on it), the ratings from the cutoff on become the traffic `eaglerec replay` plays against the service."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from eaglerec.ingest import RAW_FILES, check_release_dir

HELD_OUT_FILE = "held_out_ratings.csv"


@dataclass(frozen=True)
class HeldOut:
    release_dir: Path  # the release before the cutoff
    ratings: Path  # the ratings from the cutoff on, in time order, ratings.csv's columns
    cutoff: int
    kept: int
    held_out: int


def hold_out_period(source: Path, dest: Path, fraction: float = 0.05, users: int | None = None,
                    seed: int = 0) -> HeldOut:
    """Copy a release to dest/release with the last `fraction` of its ratings (by time) moved to
    dest/held_out_ratings.csv; optionally only a seeded sample of `users` users (a slice for tests)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction {fraction}: expected a share between 0 and 1")
    source = Path(source)
    check_release_dir(source)
    ratings = pd.read_csv(source / "ratings.csv")
    if users is not None:
        chosen = pd.Series(ratings["userId"].unique()).sample(min(users, ratings["userId"].nunique()),
                                                              random_state=seed)
        ratings = ratings[ratings["userId"].isin(chosen)]
    cutoff = int(ratings["timestamp"].quantile(1 - fraction))
    # Only users the release knows are replayed: the service has a state for them to start from.
    before, after = ratings[ratings["timestamp"] < cutoff], ratings[ratings["timestamp"] >= cutoff]
    after = after[after["userId"].isin(before["userId"])].sort_values(["timestamp", "userId", "movieId"])
    release_dir = Path(dest) / "release"
    release_dir.mkdir(parents=True, exist_ok=True)
    for name in RAW_FILES:
        if name != "ratings.csv" and (source / name).is_file():
            shutil.copyfile(source / name, release_dir / name)
    before.to_csv(release_dir / "ratings.csv", index=False)
    held_out = Path(dest) / HELD_OUT_FILE
    after.to_csv(held_out, index=False)
    return HeldOut(release_dir, held_out, cutoff, len(before), len(after))
