"""The retriever contract: what every registered retriever answers, whatever it is made of.

A retriever declares its `retriever_type` and answers
- `retrieve(user, k, exclude)`: the user's top k movies, best first, the movies in `exclude` left out;
- `similar(movie_id, k)`: the k movies it would propose next to one movie (none if it knows nothing of that movie).

Four types exist: embedding tables, an item-by-item matrix, a popularity list and a sequence encoder (run in numpy
here, trained in Keras); a new kind of model adds a type here. A trained retriever is saved as artifacts (`save`)
and registered as an MLflow model whose config names its type (retriever_model.py); the service loads it back
through MLflow, so training evaluates and the service serves the same code on the same tables. Scores are numpy
arrays in the retriever's own movie order.

The two vector types (embedding tables, the sequence encoder) score a user as `movie vectors · query + prior`, by an
exact scan of every movie or, when registered with one, through an approximate nearest-neighbour index (VectorIndex,
HNSW) whose candidates they score exactly. From INDEX_MIN_MOVIES movies on, registration fits an index on the users
it will serve (fit_index) and ships it when it finds INDEX_TARGET_RECALL of the exact top 100 faster than the scan."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import pandas as pd

from eaglerec.contracts.names import LIKED_MOVIE_COUNT

MOVIES_ARTIFACT = "movies"
INDEX_ARTIFACT = "movie_index"
# From this many movies on, registering a vector retriever fits an index (fit_index) and keeps it if it is faster at
# INDEX_TARGET_RECALL; below, the exact scan always wins (make bench-retrieval, top 100 of 9.7k movies: 0.23 ms
# against 0.85 ms through the index; at 62k and 250k movies the scan is still 2.3x and 2.1x faster).
INDEX_MIN_MOVIES = 20_000
INDEX_TARGET_RECALL = 0.98


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


class VectorIndex:
    """An approximate nearest-neighbour index (usearch's HNSW, inner product) over rows of vectors, answering row
    positions. A vector retriever indexes [movie vector, prior, r] and asks with [query, 1, 0]: the inner product is
    then its own score (VectorScores.build_index). Built with every core (the graph may differ from build to build:
    its recall is measured when a retriever is registered), searched with one thread (a request is one query)."""

    CONNECTIVITY = 16  # HNSW's M
    EXPANSION_ADD = 128  # ef at construction
    # ef at search, tried smallest first when a retriever is registered (fit_index): the first reaching the recall
    # asked is kept. 512 reaches 0.98 of the exact top 100 on the seeded clustered vectors of the tests.
    EXPANSIONS = (64, 128, 256, 512, 1024, 2048, 4096)

    def __init__(self, index, expansion_search: int = 512):
        self.index = index
        self.expansion_search = expansion_search

    @property
    def expansion_search(self) -> int:
        return self.index.expansion_search

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self.index.expansion_search = int(value)

    @classmethod
    def build(cls, vectors: np.ndarray, expansion_search: int = 512) -> VectorIndex:
        from usearch.index import Index

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = Index(ndim=vectors.shape[1], metric="ip", dtype="f32", connectivity=cls.CONNECTIVITY,
                      expansion_add=cls.EXPANSION_ADD, expansion_search=expansion_search)
        index.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=0)
        return cls(index, expansion_search)

    def search(self, query: np.ndarray, count: int) -> np.ndarray:
        """Positions of the (about) count rows of highest inner product with query."""
        found = self.index.search(np.ascontiguousarray(query, dtype=np.float32), count, threads=1)
        return np.asarray(found.keys, dtype=np.int64)

    def save(self, path: Path) -> str:
        self.index.save(str(path))
        return str(path)

    @classmethod
    def load(cls, path: str, expansion_search: int) -> VectorIndex:
        from usearch.index import Index

        return cls(Index.restore(path), expansion_search)


@dataclass(frozen=True)
class IndexFit:
    """What fit_index measured on the retriever's own queries: the recall of the exact top k at the chosen ef, the
    median time of one query (top k) through the index and by the exact scan, and whether the index is kept."""

    recall: float
    expansion_search: int
    index_ms: float
    exact_ms: float
    used: bool

    def metrics(self) -> dict[str, float]:
        return {"index_recall_at_100": self.recall, "index_expansion_search": self.expansion_search,
                "index_query_ms": self.index_ms, "exact_query_ms": self.exact_ms, "index_used": float(self.used)}


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

    def take_top(self, scores: np.ndarray, k: int, exclude: Collection[int] = (),
                 positions: np.ndarray | None = None) -> Retrieved:
        """The k best-scored movies, excluded and -inf ones left out. scores are of every movie in table order, or
        of the movies at positions only."""
        scores = np.asarray(scores, dtype=np.float64)
        if len(exclude):
            excluded = self.positions_of(exclude)
            if positions is None:
                scores[excluded] = -np.inf
            else:
                scores[np.isin(positions, excluded)] = -np.inf
        k = min(k, len(scores))
        if k <= 0:
            return Retrieved(np.empty(0, np.int64), np.empty(0))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        best = best[np.isfinite(scores[best])]
        return Retrieved(self.movie_ids[best if positions is None else positions[best]], scores[best])


    def save_movies(self, folder: Path) -> str:
        path = folder / f"{MOVIES_ARTIFACT}.parquet"
        pd.DataFrame({"movie_id": self.movie_ids, "popularity_prior": self.popularity_prior}).to_parquet(
            path, index=False)
        return str(path)

    @staticmethod
    def read_movies(artifacts: dict[str, str]) -> pd.DataFrame:
        return pd.read_parquet(artifacts[MOVIES_ARTIFACT])


def share_found(exact: list[set[int]], found: list[set[int]]) -> float:
    """The share of the exact answers' movies that the found answers hold (answer by answer)."""
    return sum(len(truth & answer) for truth, answer in zip(exact, found, strict=True)) / max(sum(map(len, exact)), 1)


class VectorScores(MovieScores):
    """A vector type's scoring: movie vectors · query + prior, over every movie, or over the candidates of its
    index when it has one (each scored exactly, so only which movies are looked at is approximate)."""

    def __init__(self, movie_ids, popularity_prior, popularity_weight: float, index: VectorIndex | None = None):
        super().__init__(movie_ids, popularity_prior, popularity_weight)
        self.index = index

    @property
    def scored_vectors(self) -> np.ndarray:
        """The movie vectors a query is multiplied with, in table order."""
        raise NotImplementedError

    def query(self, user: UserState) -> np.ndarray | None:
        """The user's query vector (None when nothing is known of them)."""
        raise NotImplementedError

    def popular_scores(self) -> np.ndarray:
        """The scores of a user without a query vector."""
        raise NotImplementedError

    def retrieve(self, user: UserState, k: int, exclude: Collection[int] = ()) -> Retrieved:
        vector = self.query(user)
        if vector is None:
            return self.take_top(self.popular_scores(), k, exclude)
        return self.search(vector, k, exclude)

    def search(self, query: np.ndarray, k: int, exclude: Collection[int] = (), skip: int | None = None) -> Retrieved:
        """The top k of movie vectors · query + prior, excluded movies and the movie at position skip left out."""
        vectors = self.scored_vectors
        if self.index is None:
            scores = (vectors @ query + self.prior).astype(np.float64)
            if skip is not None:
                scores[skip] = -np.inf
            return self.take_top(scores, k, exclude)
        count = min(len(self.movie_ids), k + len(exclude) + (skip is not None))
        positions = self.index.search(np.append(query, np.array([1.0, 0.0], dtype=np.float32)), count)
        scores = (vectors[positions] @ query + self.prior[positions]).astype(np.float64)
        if skip is not None:
            scores[positions == skip] = -np.inf
        return self.take_top(scores, k, exclude, positions)

    def build_index(self, expansion_search: int = 512) -> VectorIndex:
        """Index [movie vector, prior, r] of every movie, searched with [query, 1, 0]: the inner product is the score.
        r = sqrt(R² - |[movie vector, prior]|²) (R the largest of those norms) gives every row the same norm, so the
        search for the largest inner product is one for the nearest angle, which HNSW's graph handles well (with
        rows of unequal norms, e.g. a heavy prior, it found 0.92 of the top 100 even at ef 4096)."""
        rows = np.hstack([self.scored_vectors, self.prior[:, None]]).astype(np.float64)
        squared = np.einsum("ij,ij->i", rows, rows)
        rest = np.sqrt(np.maximum(squared.max() - squared, 0.0))
        self.index = VectorIndex.build(np.hstack([rows, rest[:, None]]), expansion_search)
        return self.index

    def time_queries(self, queries: np.ndarray, k: int) -> tuple[list[set[int]], float]:
        """Each query's top k movie ids (no exclusions) and the median milliseconds of one search."""
        answers, seconds = [], []
        for query in queries:
            started = time.perf_counter()
            answers.append(set(self.search(query, k).movie_ids.tolist()))
            seconds.append(time.perf_counter() - started)
        return answers, 1000 * float(np.median(seconds))

    def fit_index(self, queries: np.ndarray, k: int = 100, target_recall: float = INDEX_TARGET_RECALL,
                  only_if_faster: bool = True) -> IndexFit:
        """Build the index and choose its ef at search: the smallest of VectorIndex.EXPANSIONS whose top k holds
        target_recall of the exact top k over queries (the users it will serve). Keep it when it reaches that recall
        and (only_if_faster) answers faster than the exact scan, median over the same queries; else scan exactly."""
        self.index = None
        exact, exact_ms = self.time_queries(queries, k)
        index = self.build_index()
        for expansion in VectorIndex.EXPANSIONS:
            index.expansion_search = expansion
            found, index_ms = self.time_queries(queries, k)
            recall = share_found(exact, found)
            if recall >= target_recall:
                break
        used = recall >= target_recall and (index_ms < exact_ms or not only_if_faster)
        self.index = index if used else None
        return IndexFit(recall, expansion, index_ms, exact_ms, used)

    def save_index(self, folder: Path) -> dict[str, str]:
        """The index artifact, when the retriever searches through one."""
        return {} if self.index is None else {INDEX_ARTIFACT: self.index.save(folder / f"{INDEX_ARTIFACT}.usearch")}

    @property
    def index_config(self) -> dict:
        return {} if self.index is None else {"index_expansion_search": self.index.expansion_search}

    @staticmethod
    def load_index(artifacts: dict[str, str], config: dict) -> VectorIndex | None:
        if INDEX_ARTIFACT not in artifacts:
            return None
        return VectorIndex.load(artifacts[INDEX_ARTIFACT], config["index_expansion_search"])

    def measure_index_recall(self, queries: np.ndarray, k: int = 100) -> float:
        """The share of the exact top k (no exclusions) that the index's top k finds, over queries (rows)."""
        index, self.index = self.index, None
        try:
            exact, _ = self.time_queries(queries, k)
        finally:
            self.index = index
        return share_found(exact, self.time_queries(queries, k)[0])


class EmbeddingRetriever(VectorScores):
    """Movie vectors and user vectors: score = cosine(user, movie) + popularity_weight * prior. A user without a
    vector of their own is the mean of their liked movies' vectors; a user with neither gets the popular movies."""

    retriever_type = "embedding"

    def __init__(self, movie_ids, movie_vectors: np.ndarray, popularity_prior, popularity_weight: float,
                 user_vectors: dict[int, np.ndarray], index: VectorIndex | None = None):
        super().__init__(movie_ids, popularity_prior, popularity_weight, index)
        self.movie_vectors = np.asarray(movie_vectors, dtype=np.float32)
        self.unit_vectors = normalise(self.movie_vectors)
        # As given (saved as such) and unit length (scored): normalised once, so a saved and loaded retriever
        # scores bit for bit as the one that was evaluated.
        self.given_user_vectors = {int(user): np.asarray(vector, dtype=np.float32)
                                   for user, vector in user_vectors.items()}
        self.user_vectors = {user: normalise(vector) for user, vector in self.given_user_vectors.items()}

    @property
    def config(self) -> dict:
        return {"popularity_weight": self.popularity_weight, **self.index_config}

    def mean_vector(self, movie_ids) -> np.ndarray | None:
        """The mean vector of these movies, summed in table order (the same movies give the same bits)."""
        positions = sorted(self.positions_of(movie_ids))
        return self.movie_vectors[positions].mean(axis=0) if positions else None

    def user_vector(self, user: UserState) -> np.ndarray | None:
        if user.user_id is not None and user.user_id in self.user_vectors:
            return self.user_vectors[user.user_id]
        mean = self.mean_vector(user.liked_movie_ids)
        return None if mean is None else normalise(mean)

    @property
    def scored_vectors(self) -> np.ndarray:
        return self.unit_vectors

    def query(self, user: UserState) -> np.ndarray | None:
        return self.user_vector(user)

    def popular_scores(self) -> np.ndarray:
        return self.popularity_prior.copy()

    def similar(self, movie_id: int, k: int) -> Retrieved:
        if movie_id not in self.position:
            return self.take_top(np.empty(0), 0)
        position = self.position[movie_id]
        return self.search(self.unit_vectors[position], k, skip=position)

    def save(self, folder: Path) -> dict[str, str]:
        path = folder / "movie_vectors.npy"
        np.save(path, self.movie_vectors)
        users = folder / "user_vectors.parquet"
        given = self.given_user_vectors
        pd.DataFrame({"user_id": np.fromiter(given, np.int64, len(given)),
                      "user_vector": list(given.values())}).to_parquet(users, index=False)
        return {MOVIES_ARTIFACT: self.save_movies(folder), "movie_vectors": str(path), "user_vectors": str(users),
                **self.save_index(folder)}

    @classmethod
    def load(cls, artifacts: dict[str, str], config: dict) -> EmbeddingRetriever:
        movies = cls.read_movies(artifacts)
        users = pd.read_parquet(artifacts["user_vectors"])
        return cls(movies["movie_id"].to_numpy(), np.load(artifacts["movie_vectors"]),
                   movies["popularity_prior"].to_numpy(), config["popularity_weight"],
                   dict(zip(users["user_id"].to_numpy(), users["user_vector"], strict=True)),
                   cls.load_index(artifacts, config))


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


class SequentialRetriever(VectorScores):
    """A sequence model (SASRec): the user is what a causal self-attention encoder makes of their last `max_length`
    liked movies in time order; score = its dot product with each movie's vector (the encoder's own input table) +
    popularity_weight * prior. A user without likes gets the popular movies; similar(m) is what follows m alone."""

    retriever_type = "sequential"

    def __init__(self, movie_ids, weights: dict[str, np.ndarray], popularity_prior, popularity_weight: float,
                 max_length: int, blocks: int, epsilon: float, index: VectorIndex | None = None):
        super().__init__(movie_ids, popularity_prior, popularity_weight, index)
        self.weights = {name: np.asarray(value, dtype=np.float32) for name, value in weights.items()}
        self.max_length, self.blocks, self.epsilon = int(max_length), int(blocks), float(epsilon)
        # Row 0 of the table is padding; movie i of movie_ids is row i + 1.
        self.movie_vectors = self.weights["movie_table"][1:]

    @property
    def config(self) -> dict:
        return {"popularity_weight": self.popularity_weight, "max_length": self.max_length, "blocks": self.blocks,
                "epsilon": self.epsilon, **self.index_config}

    def encode(self, liked_latest_first) -> np.ndarray | None:
        """The user vector of liked movies given most recent first (None when none is known)."""
        rows = [position + 1 for position in self.positions_of(liked_latest_first)][:self.max_length]
        if not rows:
            return None
        sequence = np.zeros((1, self.max_length), dtype=np.int64)
        sequence[0, self.max_length - len(rows):] = rows[::-1]
        return encode_sequences(self.weights, sequence, self.blocks, self.epsilon)[0, -1]

    @property
    def scored_vectors(self) -> np.ndarray:
        return self.movie_vectors

    def query(self, user: UserState) -> np.ndarray | None:
        return self.encode(user.liked_movie_ids)

    def popular_scores(self) -> np.ndarray:
        return self.prior.astype(np.float64)

    def similar(self, movie_id: int, k: int) -> Retrieved:
        if movie_id not in self.position:
            return self.take_top(np.empty(0), 0)
        return self.search(self.encode([movie_id]), k, skip=self.position[movie_id])

    def save(self, folder: Path) -> dict[str, str]:
        path = folder / "sequence_encoder.npz"
        np.savez(path, **{name.replace("/", "__"): value for name, value in self.weights.items()})
        return {MOVIES_ARTIFACT: self.save_movies(folder), "sequence_encoder": str(path), **self.save_index(folder)}

    @classmethod
    def load(cls, artifacts: dict[str, str], config: dict) -> SequentialRetriever:
        movies = cls.read_movies(artifacts)
        with np.load(artifacts["sequence_encoder"]) as saved:
            weights = {name.replace("__", "/"): saved[name] for name in saved.files}
        return cls(movies["movie_id"].to_numpy(), weights, movies["popularity_prior"].to_numpy(),
                   config["popularity_weight"], config["max_length"], config["blocks"], config["epsilon"],
                   cls.load_index(artifacts, config))


RETRIEVER_TYPES = {kind.retriever_type: kind for kind in (EmbeddingRetriever, ItemItemRetriever, PopularityRetriever,
                                                          SequentialRetriever)}


def load_retriever(artifacts: dict[str, str], config: dict) -> Retriever:
    """Rebuild a saved retriever from its artifacts and config (whose `retriever_type` names the type)."""
    config = dict(config)
    retriever_type = config.pop("retriever_type")
    if retriever_type not in RETRIEVER_TYPES:
        raise ValueError(f"retriever_type {retriever_type!r}: expected one of {', '.join(RETRIEVER_TYPES)}")
    return RETRIEVER_TYPES[retriever_type].load(artifacts, config)
