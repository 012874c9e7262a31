"""Movie and user embeddings: item2vec and DeepWalk (skip-gram with negative sampling in Keras 3), evaluated as
retrievers against popularity on the held-out positives of the split (DATA.md protocol)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from eaglerec.files import write_then_rename
from eaglerec.settings import Paths
from training.metrics import score_retriever
from training.tracking import hash_data_version, read_git_commit

RETRIEVER_EXPERIMENT = "eaglerec-retrievers"
EMBEDDING_MODELS = ("item2vec", "deepwalk")
RETRIEVERS = ("popularity", *EMBEDDING_MODELS)
CUTOFFS = (10, 50, 100)


@dataclass(frozen=True)
class EmbeddingParams:
    """What an embedding model is; logged to MLflow with every run."""

    embedding_dim: int = 32
    window: int = 3
    negatives: int = 4
    epochs: int = 3
    batch_size: int = 4096
    learning_rate: float = 5e-3
    walks_per_movie: int = 5
    walk_length: int = 10
    seed: int = 42


def build_skipgram_pairs(sequences: list[list[int]], window: int) -> np.ndarray:
    """Return (target, context) index pairs of every two items at most `window` apart in a sequence."""
    pairs = []
    for sequence in sequences:
        items = np.asarray(sequence)
        for offset in range(1, window + 1):
            if len(items) > offset:
                pairs.append(np.stack([items[:-offset], items[offset:]], axis=1))
                pairs.append(np.stack([items[offset:], items[:-offset]], axis=1))
    return np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)


def sample_negatives(pairs: np.ndarray, counts: np.ndarray, negatives: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Add `negatives` random contexts per pair, drawn from the unigram distribution to the power 3/4 (word2vec)."""
    weights = np.power(counts, 0.75)
    noise = rng.choice(len(counts), size=len(pairs) * negatives, p=weights / weights.sum())
    targets = np.concatenate([pairs[:, 0], np.repeat(pairs[:, 0], negatives)])
    contexts = np.concatenate([pairs[:, 1], noise])
    labels = np.concatenate([np.ones(len(pairs)), np.zeros(len(noise))]).astype(np.float32)
    return np.stack([targets, contexts], axis=1), labels


def build_skipgram(vocabulary_size: int, params: EmbeddingParams):
    """Skip-gram: sigmoid(target vector . context vector); the target table is the embedding."""
    import keras
    from keras import layers, ops

    target = keras.Input(shape=(), dtype="int32", name="target")
    context = keras.Input(shape=(), dtype="int32", name="context")
    target_vector = layers.Embedding(vocabulary_size, params.embedding_dim, name="movie_embedding")(target)
    context_vector = layers.Embedding(vocabulary_size, params.embedding_dim, name="context_embedding")(context)
    score = layers.Activation("sigmoid", name="score")(ops.sum(target_vector * context_vector, axis=1, keepdims=True))
    model = keras.Model({"target": target, "context": context}, score, name="skipgram")
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss="binary_crossentropy")
    return model


def generate_random_walks(sequences: list[list[int]], vocabulary_size: int, params: EmbeddingParams,
                          rng) -> list[list[int]]:
    """DeepWalk's corpus: random walks over the graph of consecutive positive ratings, steps weighted by how often
    each transition occurs; walks start at every movie with an outgoing edge, `walks_per_movie` times."""
    edges = pd.DataFrame(np.concatenate([np.stack([np.asarray(s[:-1]), np.asarray(s[1:])], axis=1)
                                         for s in sequences if len(s) > 1]), columns=["source", "target"])
    weighted = edges.groupby(["source", "target"]).size().rename("weight").reset_index()
    neighbours = {source: (group["target"].to_numpy(), (group["weight"] / group["weight"].sum()).to_numpy())
                  for source, group in weighted.groupby("source")}
    walks = []
    for start in np.repeat(np.array(sorted(neighbours)), params.walks_per_movie):
        walk = [int(start)]
        while len(walk) < params.walk_length and walk[-1] in neighbours:
            targets, probabilities = neighbours[walk[-1]]
            walk.append(int(rng.choice(targets, p=probabilities)))
        walks.append(walk)
    return walks


def train_movie_vectors(sequences: list[list[int]], vocabulary_size: int, params: EmbeddingParams, rng,
                        verbose: int = 0) -> tuple[np.ndarray, list[float]]:
    """Train skip-gram on index sequences; return the movie vectors (row = index) and the loss per epoch."""
    pairs = build_skipgram_pairs(sequences, params.window)
    counts = np.bincount(np.concatenate([np.asarray(s) for s in sequences]), minlength=vocabulary_size) + 1e-3
    examples, labels = sample_negatives(pairs, counts, params.negatives, rng)
    order = rng.permutation(len(labels))
    model = build_skipgram(vocabulary_size, params)
    history = model.fit({"target": examples[order, 0].astype(np.int32), "context": examples[order, 1].astype(np.int32)},
                        labels[order], batch_size=params.batch_size, epochs=params.epochs, verbose=verbose)
    return np.asarray(model.get_layer("movie_embedding").embeddings), history.history["loss"]


@dataclass(frozen=True)
class RetrievalSplit:
    """Train positives per user (what embeddings and popularity learn from), and what each user is evaluated on."""

    train_sequences: dict[int, list[int]]
    rated_in_train: dict[int, set[int]]
    # Per evaluated split (validation, test): each user's positives in it.
    relevant: dict[str, dict[int, set[int]]]
    movie_ids: np.ndarray


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
    return RetrievalSplit({int(user): list(movies) for user, movies in sequences.itertuples(index=False)
                           if len(movies)}, rated, relevant, catalogue)


def recommend_by_scores(scores: np.ndarray, users: list[int], split: RetrievalSplit, index: dict[int, int],
                        top: int) -> dict[int, list[int]]:
    """Top movies per user from a (users x catalogue) score matrix, movies rated in training excluded."""
    recommended = {}
    for row, user in enumerate(users):
        user_scores = scores[row].copy()
        user_scores[[index[movie] for movie in split.rated_in_train.get(user, ()) if movie in index]] = -np.inf
        best = np.argpartition(-user_scores, top)[:top]
        recommended[user] = split.movie_ids[best[np.argsort(-user_scores[best])]].tolist()
    return recommended


def average_user_vectors(split: RetrievalSplit, movie_vectors: np.ndarray,
                         index: dict[int, int]) -> dict[int, np.ndarray]:
    """A user's vector: the mean of the vectors of the movies they rated positively in training."""
    return {user: movie_vectors[[index[movie] for movie in movies]].mean(axis=0)
            for user, movies in split.train_sequences.items()}


def normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def write_embeddings(paths: Paths, model_name: str, movie_ids: np.ndarray, movie_vectors: np.ndarray,
                     user_vectors: dict[int, np.ndarray]) -> dict[str, str]:
    """Write movie_embeddings and user_embeddings parquet (Feast's sources) for one model; write-then-rename."""
    folder = paths.home / "embeddings" / model_name
    folder.mkdir(parents=True, exist_ok=True)
    embedded_at = pd.Timestamp.now(tz="UTC")
    tables = {
        "movie_embeddings": pd.DataFrame({"movie_id": movie_ids.astype(np.int32),
                                          "movie_embedding": list(movie_vectors.astype(np.float32)),
                                          "embedded_at": embedded_at}),
        "user_embeddings": pd.DataFrame({"user_id": np.array(list(user_vectors), dtype=np.int32),
                                         "user_embedding": [v.astype(np.float32) for v in user_vectors.values()],
                                         "embedded_at": embedded_at}),
    }
    written = {}
    for name, table in tables.items():
        path = folder / f"{name}.parquet"
        with write_then_rename(path) as partial:
            table.to_parquet(partial, index=False)
        written[name] = str(path)
    return written


def log_embedding_map(movie_ids: np.ndarray, movie_vectors: np.ndarray, paths: Paths) -> None:
    """Log a 2-D PCA map of the movie vectors, coloured by each movie's first genre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    catalogue = pd.read_parquet(paths.marts / "movie_catalog.parquet", columns=["movie_id", "genres"])
    first_genre = catalogue.set_index("movie_id")["genres"].str[0].reindex(movie_ids)
    centred = movie_vectors - movie_vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    points = centred @ components[:2].T
    figure, axis = plt.subplots(figsize=(8, 7))
    for genre in first_genre.value_counts().index[:10]:
        chosen = (first_genre == genre).to_numpy()
        axis.scatter(points[chosen, 0], points[chosen, 1], s=3, label=genre, alpha=0.6)
    axis.set(title="Movie embeddings (PCA), coloured by first genre")
    axis.legend(markerscale=4, fontsize=8)
    mlflow.log_figure(figure, "plots/movie_embedding_map.png")
    plt.close(figure)


@dataclass(frozen=True)
class RetrieverRun:
    model: str
    run_id: str
    metrics: dict[str, float]
    train_seconds: float


def train_retriever(model_name: str, paths: Paths | None = None, params: EmbeddingParams | None = None,
                    verbose: int = 0) -> RetrieverRun:
    """Train popularity, item2vec or DeepWalk on train positives; evaluate Recall/NDCG/hit rate/coverage; log it."""
    import mlflow

    if model_name not in RETRIEVERS:
        raise ValueError(f"retriever {model_name!r}: expected one of {', '.join(RETRIEVERS)}")
    paths, params = paths or Paths.from_env(), params or EmbeddingParams()
    rng = np.random.default_rng(params.seed)
    split = load_retrieval_split(paths)
    index = {int(movie): position for position, movie in enumerate(split.movie_ids)}
    users = sorted(set(split.relevant["validation"]) | set(split.relevant["test"]))
    mlflow.set_experiment(RETRIEVER_EXPERIMENT)
    with mlflow.start_run(run_name=model_name) as run:
        data_version = hash_data_version(paths.marts)
        mlflow.set_tags({"model": model_name, "data_version": data_version, "git_commit": read_git_commit(),
                         "test_set": f"{data_version}:test", "feature_view": "movie_embeddings"})
        mlflow.log_params({"model": model_name, "evaluation_users": len(users),
                           **(asdict(params) if model_name in EMBEDDING_MODELS else {})})
        started = time.perf_counter()
        popularity = np.bincount([index[m] for s in split.train_sequences.values() for m in s],
                                 minlength=len(index)).astype(float)
        if model_name == "popularity":
            scores = np.tile(popularity, (len(users), 1))
        else:
            sequences = [[index[movie] for movie in movies] for movies in split.train_sequences.values()]
            if model_name == "deepwalk":
                sequences = generate_random_walks(sequences, len(index), params, rng)
            movie_vectors, losses = train_movie_vectors(sequences, len(index), params, rng, verbose)
            for epoch, loss in enumerate(losses, start=1):
                mlflow.log_metric("loss", loss, step=epoch)
            user_vectors = average_user_vectors(split, movie_vectors, index)
            movie_unit_vectors = normalise(movie_vectors)
            # A user with no positive in training has no vector: they get the popular movies, as in serving.
            scores = np.stack([movie_unit_vectors @ normalise(user_vectors[user]) if user in user_vectors
                               else popularity for user in users])
        train_seconds = time.perf_counter() - started
        recommended = recommend_by_scores(scores, users, split, index, max(CUTOFFS))
        # Tune on validation; test is for the final comparison only.
        metrics = {f"{name}_{metric}": value for name in ("validation", "test") for metric, value in
                   score_retriever(recommended, split.relevant[name], len(index), CUTOFFS).items()}
        mlflow.log_metrics({**metrics, "train_seconds": train_seconds})
        if model_name in EMBEDDING_MODELS:
            log_embedding_map(split.movie_ids, movie_vectors, paths)
            written = write_embeddings(paths, model_name, split.movie_ids, movie_vectors, user_vectors)
            for path in written.values():
                mlflow.log_artifact(path, "embeddings")
    return RetrieverRun(model_name, run.info.run_id, metrics, train_seconds)
