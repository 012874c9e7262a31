"""The retriever contract: what every registered retriever answers, whatever it is made of.

A retriever declares its `retriever_type` and answers
- `retrieve(user, k, exclude)`: the user's top k movies, best first, the movies in `exclude` left out;
- `similar(movie_id, k)`: the k movies it would propose next to one movie (none if it knows nothing of that movie).

Four types exist: embedding tables, an item-by-item matrix, a popularity list and a sequence encoder (run in numpy
here, trained in Keras); a new kind of model adds a type here. A trained retriever is saved as artifacts (`save`)
and registered as an MLflow model whose config names its type (retriever_model.py); the service loads it back
through MLflow, so training evaluates and the service serves the same code on the same tables. Scores are numpy
arrays in the retriever's own movie order."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import pandas as pd

from eaglerec.contracts.names import LIKED_MOVIE_COUNT

MOVIES_ARTIFACT = "movies"


@dataclass(frozen=True)
class UserState:
    """What a retriever may know of a user: their id (None: do not look them up) and their liked movies, most recent
    first (the last LIKED_MOVIE_COUNT of them or more)."""

    user_id: int | None
    liked_movie_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Retrieved:
    """Movies best first, with the retriever's scores."""

    movie_ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.movie_ids)


class Retriever(Protocol):
    retriever_type: ClassVar[str]

    def retrieve(self, user: UserState, k: int, exclude: Collection[int] = ()) -> Retrieved: ...

    def similar(self, movie_id: int, k: int) -> Retrieved: ...

    def save(self, folder: Path) -> dict[str, str]: ...

    @property
    def config(self) -> dict: ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Unit length along the last axis (a zero vector stays zero)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


class MovieScores:
    """The part every type shares: its movies in a fixed order, their popularity prior (log1p of training
    positives scaled to [0, 1], or another monotone popularity), and how much of it is added to every score."""

    def __init__(self, movie_ids: np.ndarray, popularity_prior: np.ndarray, popularity_weight: float):
        self.movie_ids = np.asarray(movie_ids, dtype=np.int64)
        self.popularity_prior = np.asarray(popularity_prior, dtype=np.float32)
        self.popularity_weight = float(popularity_weight)
        self.prior = self.popularity_weight * self.popularity_prior
        self.position = {int(movie): index for index, movie in enumerate(self.movie_ids)}

    def positions_of(self, movie_ids) -> list[int]:
        return [self.position[int(movie)] for movie in movie_ids if int(movie) in self.position]

    def take_top(self, scores: np.ndarray, k: int, exclude: Collection[int] = ()) -> Retrieved:
        """The k best-scored movies, excluded and -inf ones left out."""
        scores = np.asarray(scores, dtype=np.float64)
        if len(exclude):
            scores[self.positions_of(exclude)] = -np.inf
        k = min(k, len(scores))
        if k <= 0:
            return Retrieved(np.empty(0, np.int64), np.empty(0))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        best = best[np.isfinite(scores[best])]
        return Retrieved(self.movie_ids[best], scores[best])

    def save_movies(self, folder: Path) -> str:
        path = folder / f"{MOVIES_ARTIFACT}.parquet"
        pd.DataFrame({"movie_id": self.movie_ids, "popularity_prior": self.popularity_prior}).to_parquet(
            path, index=False)
        return str(path)

    @staticmethod
    def read_movies(artifacts: dict[str, str]) -> pd.DataFrame:
        return pd.read_parquet(artifacts[MOVIES_ARTIFACT])


class EmbeddingRetriever(MovieScores):
    """Movie vectors and user vectors: score = cosine(user, movie) + popularity_weight * prior. A user without a
    vector of their own is the mean of their liked movies' vectors; a user with neither gets the popular movies."""

    retriever_type = "embedding"

    def __init__(self, movie_ids, movie_vectors: np.ndarray, popularity_prior, popularity_weight: float,
                 user_vectors: dict[int, np.ndarray]):
        super().__init__(movie_ids, popularity_prior, popularity_weight)
        self.movie_vectors = np.asarray(movie_vectors, dtype=np.float32)
        self.unit_vectors = normalise(self.movie_vectors)
        # As given (saved as such) and unit length (scored): normalised once, so a saved and loaded retriever
        # scores bit for bit as the one that was evaluated.
        self.given_user_vectors = {int(user): np.asarray(vector, dtype=np.float32)
                                   for user, vector in user_vectors.items()}
        self.user_vectors = {user: normalise(vector) for user, vector in self.given_user_vectors.items()}

    @property
    def config(self) -> dict:
        return {"popularity_weight": self.popularity_weight}

    def mean_vector(self, movie_ids) -> np.ndarray | None:
        """The mean vector of these movies, summed in table order (the same movies give the same bits)."""
        positions = sorted(self.positions_of(movie_ids))
        return self.movie_vectors[positions].mean(axis=0) if positions else None

    def user_vector(self, user: UserState) -> np.ndarray | None:
        if user.user_id is not None and user.user_id in self.user_vectors:
            return self.user_vectors[user.user_id]
        mean = self.mean_vector(user.liked_movie_ids)
        return None if mean is None else normalise(mean)

    def retrieve(self, user: UserState, k: int, exclude: Collection[int] = ()) -> Retrieved:
        vector = self.user_vector(user)
        scores = self.popularity_prior.copy() if vector is None else self.unit_vectors @ vector + self.prior
        return self.take_top(scores, k, exclude)

    def similar(self, movie_id: int, k: int) -> Retrieved:
        if movie_id not in self.position:
            return self.take_top(np.empty(0), 0)
        position = self.position[movie_id]
        scores = (self.unit_vectors @ self.unit_vectors[position] + self.prior).astype(np.float64)
        scores[position] = -np.inf
        return self.take_top(scores, k)

    def save(self, folder: Path) -> dict[str, str]:
        path = folder / "movie_vectors.npy"
        np.save(path, self.movie_vectors)
        users = folder / "user_vectors.parquet"
        given = self.given_user_vectors
        pd.DataFrame({"user_id": np.fromiter(given, np.int64, len(given)),
                      "user_vector": list(given.values())}).to_parquet(users, index=False)
        return {MOVIES_ARTIFACT: self.save_movies(folder), "movie_vectors": str(path), "user_vectors": str(users)}

    @classmethod
    def load(cls, artifacts: dict[str, str], config: dict) -> EmbeddingRetriever:
        movies = cls.read_movies(artifacts)
        users = pd.read_parquet(artifacts["user_vectors"])
        return cls(movies["movie_id"].to_numpy(), np.load(artifacts["movie_vectors"]),
                   movies["popularity_prior"].to_numpy(), config["popularity_weight"],
                   dict(zip(users["user_id"].to_numpy(), users["user_vector"], strict=True)))


class ItemItemRetriever(MovieScores):
    """A movies x movies matrix of how strongly a row movie calls for a column movie: score = the sum of the rows of
    the user's `seeds` last liked movies + popularity_weight * prior."""

    retriever_type = "item_item"

    def __init__(self, movie_ids, matrix, popularity_prior, popularity_weight: float, seeds: int = LIKED_MOVIE_COUNT):
        from scipy.sparse import csr_matrix

        super().__init__(movie_ids, popularity_prior, popularity_weight)
        self.matrix = csr_matrix(matrix, dtype=np.float64)
        self.seeds = int(seeds)

    @property
    def config(self) -> dict:
        return {"popularity_weight": self.popularity_weight, "seeds": self.seeds}

    def retrieve(self, user: UserState, k: int, exclude: Collection[int] = ()) -> Retrieved:
        scores = self.prior.astype(np.float64)
        seeds = self.positions_of(user.liked_movie_ids[:self.seeds])
        if seeds:
            scores = scores + np.asarray(self.matrix[seeds].sum(axis=0)).ravel()
        return self.take_top(scores, k, exclude)

    def similar(self, movie_id: int, k: int) -> Retrieved:
        """The movies in the movie's row (those it calls for at all), the prior breaking ties."""
        if movie_id not in self.position:
            return self.take_top(np.empty(0), 0)
        position = self.position[movie_id]
        row = self.matrix[position]
        scores = np.full(len(self.movie_ids), -np.inf)
        scores[row.indices] = row.data + self.prior[row.indices]
        scores[position] = -np.inf
        return self.take_top(scores, k)

    def save(self, folder: Path) -> dict[str, str]:
        from scipy.sparse import save_npz

        path = folder / "item_item.npz"
        save_npz(path, self.matrix)
        return {MOVIES_ARTIFACT: self.save_movies(folder), "item_item": str(path)}

    @classmethod
    def load(cls, artifacts: dict[str, str], config: dict) -> ItemItemRetriever:
        from scipy.sparse import load_npz

        movies = cls.read_movies(artifacts)
        return cls(movies["movie_id"].to_numpy(), load_npz(artifacts["item_item"]),
                   movies["popularity_prior"].to_numpy(), config["popularity_weight"], config["seeds"])


class PopularityRetriever(MovieScores):
    """The same list for everyone: the most popular movies not excluded. It has no notion of similar movies."""

    retriever_type = "popularity"

    def __init__(self, movie_ids, popularity_prior):
        super().__init__(movie_ids, popularity_prior, 1.0)

    @property
    def config(self) -> dict:
        return {}

    def retrieve(self, user: UserState, k: int, exclude: Collection[int] = ()) -> Retrieved:
        return self.take_top(self.prior.copy(), k, exclude)

    def similar(self, movie_id: int, k: int) -> Retrieved:
        return self.take_top(np.empty(0), 0)

    def save(self, folder: Path) -> dict[str, str]:
        return {MOVIES_ARTIFACT: self.save_movies(folder)}

    @classmethod
    def load(cls, artifacts: dict[str, str], config: dict) -> PopularityRetriever:
        movies = cls.read_movies(artifacts)
        return cls(movies["movie_id"].to_numpy(), movies["popularity_prior"].to_numpy())


def normalise_layer(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float) -> np.ndarray:
    """Layer normalisation over the last axis, as Keras's LayerNormalization computes it."""
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def encode_sequences(weights: dict[str, np.ndarray], positions: np.ndarray, blocks: int,
                     epsilon: float) -> np.ndarray:
    """The sequential retriever's encoder (SASRec: causal self-attention blocks) in numpy, what its Keras twin in
    training computes: positions (batch, length) are table rows, 0 = padding on the left; returns (batch, length, d),
    each position having seen only itself and the positions before it."""
    table = weights["movie_table"]
    length = positions.shape[1]
    x = table[positions] * np.sqrt(table.shape[1]) + weights["position_table"][np.newaxis, -length:]
    real = positions > 0
    x = x * real[..., np.newaxis]
    # Query i may attend to key j when j <= i and j is a movie: a large negative elsewhere (never -inf: a padded
    # query sees no key at all and would give NaN; padded positions are never read).
    allowed = np.tril(np.ones((length, length), dtype=bool))[np.newaxis] & real[:, np.newaxis, :]
    for block in range(blocks):
        w = {name.split("/", 1)[1]: value for name, value in weights.items() if name.startswith(f"block{block}/")}
        h = normalise_layer(x, w["attention_norm_gamma"], w["attention_norm_beta"], epsilon)
        queries, keys, values = h @ w["query"], h @ w["key"], h @ w["value"]
        logits = queries @ keys.transpose(0, 2, 1) / np.sqrt(queries.shape[-1])
        logits = np.where(allowed, logits, -1e9)
        logits = logits - logits.max(axis=-1, keepdims=True)
        attention = np.exp(logits)
        attention = attention / attention.sum(axis=-1, keepdims=True)
        x = x + attention @ values
        h = normalise_layer(x, w["feed_norm_gamma"], w["feed_norm_beta"], epsilon)
        x = x + np.maximum(h @ w["feed_in"] + w["feed_in_bias"], 0) @ w["feed_out"] + w["feed_out_bias"]
        x = x * real[..., np.newaxis]
    return normalise_layer(x, weights["output_norm_gamma"], weights["output_norm_beta"], epsilon)


class SequentialRetriever(MovieScores):
    """A sequence model (SASRec): the user is what a causal self-attention encoder makes of their last `max_length`
    liked movies in time order; score = its dot product with each movie's vector (the encoder's own input table) +
    popularity_weight * prior. A user without likes gets the popular movies; similar(m) is what follows m alone."""

    retriever_type = "sequential"

    def __init__(self, movie_ids, weights: dict[str, np.ndarray], popularity_prior, popularity_weight: float,
                 max_length: int, blocks: int, epsilon: float):
        super().__init__(movie_ids, popularity_prior, popularity_weight)
        self.weights = {name: np.asarray(value, dtype=np.float32) for name, value in weights.items()}
        self.max_length, self.blocks, self.epsilon = int(max_length), int(blocks), float(epsilon)
        # Row 0 of the table is padding; movie i of movie_ids is row i + 1.
        self.movie_vectors = self.weights["movie_table"][1:]

    @property
    def config(self) -> dict:
        return {"popularity_weight": self.popularity_weight, "max_length": self.max_length, "blocks": self.blocks,
                "epsilon": self.epsilon}

    def encode(self, liked_latest_first) -> np.ndarray | None:
        """The user vector of liked movies given most recent first (None when none is known)."""
        rows = [position + 1 for position in self.positions_of(liked_latest_first)][:self.max_length]
        if not rows:
            return None
        sequence = np.zeros((1, self.max_length), dtype=np.int64)
        sequence[0, self.max_length - len(rows):] = rows[::-1]
        return encode_sequences(self.weights, sequence, self.blocks, self.epsilon)[0, -1]

    def retrieve(self, user: UserState, k: int, exclude: Collection[int] = ()) -> Retrieved:
        vector = self.encode(user.liked_movie_ids)
        scores = self.prior.astype(np.float64) if vector is None else self.movie_vectors @ vector + self.prior
        return self.take_top(scores, k, exclude)

    def similar(self, movie_id: int, k: int) -> Retrieved:
        if movie_id not in self.position:
            return self.take_top(np.empty(0), 0)
        scores = (self.movie_vectors @ self.encode([movie_id]) + self.prior).astype(np.float64)
        scores[self.position[movie_id]] = -np.inf
        return self.take_top(scores, k)

    def save(self, folder: Path) -> dict[str, str]:
        path = folder / "sequence_encoder.npz"
        np.savez(path, **{name.replace("/", "__"): value for name, value in self.weights.items()})
        return {MOVIES_ARTIFACT: self.save_movies(folder), "sequence_encoder": str(path)}

    @classmethod
    def load(cls, artifacts: dict[str, str], config: dict) -> SequentialRetriever:
        movies = cls.read_movies(artifacts)
        with np.load(artifacts["sequence_encoder"]) as saved:
            weights = {name.replace("__", "/"): saved[name] for name in saved.files}
        return cls(movies["movie_id"].to_numpy(), weights, movies["popularity_prior"].to_numpy(),
                   config["popularity_weight"], config["max_length"], config["blocks"], config["epsilon"])


RETRIEVER_TYPES = {kind.retriever_type: kind for kind in (EmbeddingRetriever, ItemItemRetriever, PopularityRetriever,
                                                          SequentialRetriever)}


def load_retriever(artifacts: dict[str, str], config: dict) -> Retriever:
    """Rebuild a saved retriever from its artifacts and config (whose `retriever_type` names the type)."""
    config = dict(config)
    retriever_type = config.pop("retriever_type")
    if retriever_type not in RETRIEVER_TYPES:
        raise ValueError(f"retriever_type {retriever_type!r}: expected one of {', '.join(RETRIEVER_TYPES)}")
    return RETRIEVER_TYPES[retriever_type].load(artifacts, config)
