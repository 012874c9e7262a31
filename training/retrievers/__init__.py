"""Retrievers, one module per model (the catalogue, eaglerec/contracts/models.toml, names each). A retriever module
has `Params` (a frozen dataclass, logged to MLflow) and one entry point, `train(split: RetrievalSplit, params,
verbose) -> TrainedRetriever`, which returns a retriever of the contract (eaglerec/contracts/retrieval.py). The
harness (training/retrieval.py) evaluates every retriever through that contract on the same split (DATA.md protocol)
and registers it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from eaglerec.contracts.retrieval import Retriever, UserState
from eaglerec.settings import Paths


@dataclass(frozen=True)
class RetrievalSplit:
    """Each user's liked movies in training, in time order (what retrievers learn from), what they rated in training
    (never recommended back), and what they are evaluated on; the catalogue's movies in one fixed order."""

    paths: Paths
    train_sequences: dict[int, list[int]]
    rated_in_train: dict[int, set[int]]
    # Per evaluated split (validation, test): each user's liked movies in it.
    relevant: dict[str, dict[int, set[int]]]
    movie_ids: np.ndarray
    index: dict[int, int] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "index", {int(movie): position for position, movie in enumerate(self.movie_ids)})

    def user_state(self, user_id: int, anonymous: bool = False) -> UserState:
        """A user at the end of training: their liked movies, most recent first (without the id when anonymous)."""
        return UserState(None if anonymous else user_id, tuple(reversed(self.train_sequences.get(user_id, ()))))

    def count_popularity(self) -> np.ndarray:
        """Training positives per movie, in catalogue order."""
        return np.bincount([self.index[movie] for movies in self.train_sequences.values() for movie in movies],
                           minlength=len(self.index)).astype(float)


def load_retrieval_split(paths: Paths) -> RetrievalSplit:
    events = pd.read_parquet(paths.marts / "rating_events.parquet")
    sequences = pd.read_parquet(paths.marts / "user_watch_sequences.parquet", columns=["user_id", "train_movie_ids"])
    train = events[events["split"] == "train"]
    rated = train.groupby("user_id")["movie_id"].agg(set).to_dict()
    relevant = {}
    for split in ("validation", "test"):
        positives = events[(events["split"] == split) & (events["label"] == 1)]
        # Evaluation users: a positive in the split and at least one training rating (DATA.md).
        relevant[split] = {user: set(group) for user, group in positives.groupby("user_id")["movie_id"]
                           if user in rated}
    catalogue = pd.read_parquet(paths.marts / "movie_catalog.parquet", columns=["movie_id"])["movie_id"].to_numpy()
    return RetrievalSplit(paths, {int(user): list(movies) for user, movies in sequences.itertuples(index=False)
                                  if len(movies)}, rated, relevant, catalogue)


def popularity_prior(popularity: np.ndarray) -> np.ndarray:
    """log1p(positives) scaled to [0, 1]: the popularity term added to similarity scores."""
    return np.log1p(popularity) / np.log1p(max(popularity.max(), 1.0))


@dataclass(frozen=True)
class TrainedRetriever:
    """A fitted retriever: `served` is registered and served (users as of the latest data); `evaluated`, if given,
    is the same model with every user as of the end of training, which the split's metrics need."""

    served: Retriever
    evaluated: Retriever | None = None
    losses: tuple[float, ...] = ()
