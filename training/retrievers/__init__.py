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
    # A refit for serving: the sequences hold every liked movie and nothing is held out; a retriever trains with the
    # configuration validation chose for it (its `refit_overrides`).
    refit: bool = False
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


def load_retrieval_split(paths: Paths, refit: bool = False) -> RetrievalSplit:
    """The DATA.md split; for a refit, every rating is training and the evaluated splits are empty."""
    events = pd.read_parquet(paths.marts / "rating_events.parquet")
    column = "movie_ids" if refit else "train_movie_ids"
    sequences = pd.read_parquet(paths.marts / "user_watch_sequences.parquet", columns=["user_id", column])
    train = events if refit else events[events["split"] == "train"]
    rated = train.groupby("user_id")["movie_id"].agg(set).to_dict()
    relevant = {"validation": {}, "test": {}}
    for split in () if refit else relevant:
        positives = events[(events["split"] == split) & (events["label"] == 1)]
        # Evaluation users: a positive in the split and at least one training rating (DATA.md).
        relevant[split] = {user: set(group) for user, group in positives.groupby("user_id")["movie_id"]
                           if user in rated}
    catalogue = pd.read_parquet(paths.marts / "movie_catalog.parquet", columns=["movie_id"])["movie_id"].to_numpy()
    return RetrievalSplit(paths, {int(user): list(movies) for user, movies in sequences.itertuples(index=False)
                                  if len(movies)}, rated, relevant, catalogue, refit)


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
    # Hyperparameters chosen on validation (logged as tuned_<name>) and each candidate's validation score.
    tuned: dict = field(default_factory=dict)
    tuning_scores: dict = field(default_factory=dict)
    # The same choices as overrides of `Params`: a refit on all data trains with them.
    refit_overrides: dict = field(default_factory=dict)


def build_liked_matrix(split: RetrievalSplit):
    """Users x movies (catalogue order), 1 where the user liked the movie in training: what the item-item models
    learn from."""
    from scipy.sparse import csr_matrix

    rows, columns = [], []
    for row, movies in enumerate(split.train_sequences.values()):
        positions = sorted({split.index[movie] for movie in movies})
        rows += [row] * len(positions)
        columns += positions
    return csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(split.train_sequences), len(split.index)))


def keep_top_per_row(matrix: np.ndarray, keep: int, movies: np.ndarray, size: int):
    """A dense square matrix over some movies (their catalogue positions `movies`) as a sparse catalogue-sized one
    (size x size) with each row's `keep` largest positive entries: the neighbours that decide a top-100; the rest
    only costs memory."""
    from scipy.sparse import csr_matrix

    keep = min(keep, matrix.shape[1])
    top = np.argpartition(-matrix, keep - 1, axis=1)[:, :keep]
    values = np.take_along_axis(matrix, top, axis=1).ravel()
    rows = np.repeat(np.arange(matrix.shape[0]), keep)
    chosen = values > 0
    return csr_matrix((values[chosen], (movies[rows[chosen]], movies[top.ravel()[chosen]])), shape=(size, size))


def score_on_validation(retriever: Retriever, split: RetrievalSplit, cutoff: int = 10) -> float:
    """Recall@cutoff on the validation users (the only split tuning may look at)."""
    from training.metrics import score_retriever

    users = split.relevant["validation"]
    recommended = {user: retriever.retrieve(split.user_state(user), cutoff, split.rated_in_train.get(user, ()))
                   .movie_ids.tolist() for user in users}
    return score_retriever(recommended, users, len(split.index), (cutoff,))[f"recall_at_{cutoff}"]


# Item-item retrievers' popularity term: it only breaks ties (their weights exceed it wherever they count), and it is
# all a user without likes gets.
TIE_BREAK_WEIGHT = 1e-6


def train_tuned_item_item(split: RetrievalSplit, parameter: str, field_name: str, values, weigh) -> TrainedRetriever:
    """An item-item retriever over the user's last LIKED_MOVIE_COUNT likes, its one hyperparameter (`parameter`, the
    values of the Params field `field_name`) chosen on validation: weigh(value) gives the catalogue-sized movie x
    movie weights for a value."""
    from eaglerec.contracts.names import LIKED_MOVIE_COUNT
    from eaglerec.contracts.retrieval import ItemItemRetriever

    prior = popularity_prior(split.count_popularity())
    value, retriever, scores = tune_on_validation(
        split, lambda value: ItemItemRetriever(split.movie_ids, weigh(value), prior, TIE_BREAK_WEIGHT,
                                               seeds=LIKED_MOVIE_COUNT), values)
    return TrainedRetriever(retriever, tuned={parameter: value},
                            tuning_scores={f"{parameter}_{candidate:g}": score for candidate, score in scores.items()},
                            refit_overrides={field_name: (value,)})


def tune_on_validation(split: RetrievalSplit, build, values) -> tuple[object, Retriever, dict]:
    """Build a retriever for each value of one hyperparameter and keep the best on validation Recall@10 (ties: the
    first value). Returns the value, its retriever and every value's score. A refit has nothing to validate on: it
    takes the one value validation chose."""
    if split.refit:
        if len(values) != 1:
            raise ValueError(f"a refit trains with the value validation chose, not a choice of {len(values)}")
        return values[0], build(values[0]), {}
    scores, best = {}, None
    for value in values:
        retriever = build(value)
        scores[value] = score_on_validation(retriever, split)
        if best is None or scores[value] > scores[best[0]]:
            best = (value, retriever)
    return best[0], best[1], scores
