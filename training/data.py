"""Training data: the rating_examples mart (dbt's point-in-time join, equal to Feast's) split by its split column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from eaglerec.contracts.features import FEATURES, LABEL
from eaglerec.settings import Paths
from expectations.training_gate import validate_training_parquet

# The event, and what the training-set gate checks besides the model inputs.
EVENT_COLUMNS = ("user_id", "movie_id", "rating", "rated_at", LABEL, "split",
                 "user_last_rated_at", "movie_last_rated_at", "user_avg_rating", "movie_avg_rating")


@dataclass(frozen=True)
class RankingData:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    movie_ids: list[int]
    genres: list[str]


def load_ranking_data(paths: Paths, user_fraction: float = 1.0, seed: int = 42, refit: bool = False) -> RankingData:
    """Return the gated train/validation/test frames; user_fraction < 1 keeps a seeded sample of users (tests).
    For a refit on all data, `train` holds every split's examples and validation and test are empty."""
    columns = list(dict.fromkeys([*EVENT_COLUMNS, *(feature.name for feature in FEATURES)]))
    gate_training_examples(paths)
    examples = read_examples(paths.marts / "rating_examples.parquet", columns)
    if user_fraction < 1.0:
        users = examples["user_id"].drop_duplicates().sample(frac=user_fraction, random_state=seed)
        examples = examples[examples["user_id"].isin(users)]
    movie_ids, genres = read_catalogue_vocabulary(paths.marts)
    if refit:
        splits = {"train": examples.reset_index(drop=True), "validation": examples.iloc[:0], "test": examples.iloc[:0]}
    else:
        splits = {name: frame.reset_index(drop=True) for name, frame in examples.groupby("split", observed=True)}
    return RankingData(splits["train"], splits["validation"], splits["test"], movie_ids, genres)


def read_catalogue_vocabulary(marts: Path) -> tuple[list[int], list[str]]:
    """The catalogue's movie ids and its sorted genres (the encoder's movie and genre vocabularies)."""
    catalogue = pd.read_parquet(marts / "movie_catalog.parquet", columns=["movie_id", "genres"])
    return catalogue["movie_id"].tolist(), sorted({genre for genres in catalogue["genres"] for genre in genres})


def gate_training_examples(paths: Paths) -> int:
    """Run the training-set gate on the rating_examples mart where it lies (one example per rating event: the
    point-in-time join must lose none); return its rows."""
    import pyarrow.parquet as pq

    expected_rows = pq.read_metadata(paths.marts / "rating_events.parquet").num_rows
    validate_training_parquet(paths.marts / "rating_examples.parquet", expected_rows=expected_rows,
                              name="rating_examples")
    return expected_rows


def read_examples(path: Path, columns: list[str]) -> pd.DataFrame:
    """Read rating_examples with its text columns (genres, split) as categoricals.

    As Python strings the 9 text columns of 25M examples took 12 GiB of a 16 GiB frame; as categoricals the frame
    takes 3.8 GiB and loads 2.5x faster. The encoder's lookups treat both alike."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    texts = [name for name in columns if schema.field(name).type in (pa.string(), pa.large_string())]
    return pq.read_table(path, columns=columns, read_dictionary=texts).to_pandas(self_destruct=True)
