"""Retrievers: item2vec and DeepWalk (skip-gram with negative sampling in Keras 3) and the two-tower model, evaluated
against the popularity and co-occurrence baselines on the held-out positives of the split (DATA.md protocol). The
embedding retrievers are registered as `eaglerec-retriever` behind the champion gate; the champion's tables are
published where Feast's `movie_embeddings` and `user_embeddings` sources read them."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eaglerec.files import write_then_rename
from eaglerec.settings import Paths
from training.metrics import score_retriever
from training.registry import TEST_SET_TAG, promote_if_better
from training.tracking import hash_data_version, read_git_commit

RETRIEVER_EXPERIMENT = "eaglerec-retrievers"
RETRIEVER_MODEL_NAME = "eaglerec-retriever"
SKIPGRAM_MODELS = ("item2vec", "deepwalk")
EMBEDDING_MODELS = (*SKIPGRAM_MODELS, "two_tower")
RETRIEVERS = ("popularity", "cooccurrence", *EMBEDDING_MODELS)
CUTOFFS = (10, 50, 100)
# The champion gate's metric (on the test split of the same data version).
GATE_METRIC = "recall_at_10"
# What the logged retriever needs to load (models-from-code: no TensorFlow).
RETRIEVER_REQUIREMENTS = ["mlflow==3.17.2", "pandas<3", "numpy", "pyarrow"]
# Co-occurrence baseline: a user's most recent training positives, each voting for the movies seen near it.
RECENT_POSITIVES = 5


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
    # Retrieval score = cosine similarity + popularity_weight * popularity prior; tuned on validation Recall@10
    # (0 -> 1 took item2vec from 0.010 to 0.087): similarity alone surfaces obscure look-alikes.
    popularity_weight: float = 1.0
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
    # Also in retriever_model.py, which must load without EagleRec's code.
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def write_embeddings(paths: Paths, model_name: str, movie_ids: np.ndarray, movie_vectors: np.ndarray,
                     prior: np.ndarray, user_vectors: dict[int, np.ndarray]) -> dict[str, str]:
    """Write movie_embeddings (with each movie's popularity prior) and user_embeddings parquet, Feast's sources, for
    one model; write-then-rename."""
    folder = paths.embeddings / model_name
    folder.mkdir(parents=True, exist_ok=True)
    embedded_at = pd.Timestamp.now(tz="UTC")
    tables = {
        "movie_embeddings": pd.DataFrame({"movie_id": movie_ids.astype(np.int32),
                                          "movie_embedding": list(movie_vectors.astype(np.float32)),
                                          "popularity_prior": prior.astype(np.float32),
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


def count_popularity(split: RetrievalSplit, index: dict[int, int]) -> np.ndarray:
    """Training positives per movie, in catalogue order."""
    return np.bincount([index[m] for s in split.train_sequences.values() for m in s],
                       minlength=len(index)).astype(float)


def popularity_prior(popularity: np.ndarray) -> np.ndarray:
    """log1p(positives) scaled to [0, 1]: the popularity term added to similarity scores."""
    return np.log1p(popularity) / np.log1p(max(popularity.max(), 1.0))


def score_cooccurrence(split: RetrievalSplit, users: list[int], index: dict[int, int], popularity: np.ndarray,
                       window: int) -> np.ndarray:
    """Baseline: how often each movie is positively rated within `window` steps of the user's most recent training
    positives, in everyone's training sequences; popularity breaks ties (and is all a user without positives gets)."""
    from scipy.sparse import coo_matrix

    pairs = build_skipgram_pairs([[index[m] for m in s] for s in split.train_sequences.values()], window)
    counts = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(index),) * 2).tocsr()
    tie_break = popularity / (popularity.max() + 1)
    scores = np.tile(tie_break, (len(users), 1))
    for row, user in enumerate(users):
        recent = [index[m] for m in split.train_sequences.get(user, [])[-RECENT_POSITIVES:]]
        if recent:
            scores[row] += np.asarray(counts[recent].sum(axis=0)).ravel()
    return scores


@dataclass(frozen=True)
class RetrieverRun:
    model: str
    run_id: str
    metrics: dict[str, float]
    train_seconds: float
    version: str | None = None
    decision: str | None = None


def train_retriever(model_name: str, paths: Paths | None = None, params=None, verbose: int = 0,
                    gate: bool = True) -> RetrieverRun:
    """Train one retriever on the training positives, evaluate Recall/NDCG/hit rate/coverage on validation and test,
    log it to MLflow; register the embedding retrievers and (unless gate is False) run the champion gate on test
    Recall@10."""
    import mlflow

    from training.two_tower import TwoTowerParams, train_two_tower_vectors

    if model_name not in RETRIEVERS:
        raise ValueError(f"retriever {model_name!r}: expected one of {', '.join(RETRIEVERS)}")
    paths = paths or Paths.from_env()
    params = params or (TwoTowerParams() if model_name == "two_tower" else EmbeddingParams())
    rng = np.random.default_rng(params.seed)
    split = load_retrieval_split(paths)
    index = {int(movie): position for position, movie in enumerate(split.movie_ids)}
    users = sorted(set(split.relevant["validation"]) | set(split.relevant["test"]))
    mlflow.set_experiment(RETRIEVER_EXPERIMENT)
    with mlflow.start_run(run_name=model_name) as run:
        data_version = hash_data_version(paths.marts)
        mlflow.set_tags({"model": model_name, "data_version": data_version, "git_commit": read_git_commit(),
                         TEST_SET_TAG: f"{data_version}:test", "feature_view": "movie_embeddings"})
        mlflow.log_params({"model": model_name, "evaluation_users": len(users), **asdict(params)})
        started = time.perf_counter()
        popularity = count_popularity(split, index)
        movie_vectors = None
        if model_name == "popularity":
            scores = np.tile(popularity, (len(users), 1))
        elif model_name == "cooccurrence":
            scores = score_cooccurrence(split, users, index, popularity, params.window)
        else:
            if model_name == "two_tower":
                trained = train_two_tower_vectors(paths, split.movie_ids, params, rng, verbose)
                movie_vectors, losses = trained.movie_vectors, trained.losses
                evaluation_vectors, served_vectors = trained.evaluation_user_vectors, trained.served_user_vectors
                log_towers(trained)
            else:
                sequences = [[index[movie] for movie in movies] for movies in split.train_sequences.values()]
                if model_name == "deepwalk":
                    sequences = generate_random_walks(sequences, len(index), params, rng)
                movie_vectors, losses = train_movie_vectors(sequences, len(index), params, rng, verbose)
                evaluation_vectors = served_vectors = average_user_vectors(split, movie_vectors, index)
            for epoch, loss in enumerate(losses, start=1):
                mlflow.log_metric("loss", loss, step=epoch)
            scores = score_by_vectors(movie_vectors, evaluation_vectors, users, popularity_prior(popularity),
                                      params.popularity_weight)
        train_seconds = time.perf_counter() - started
        metrics = evaluate_scores(scores, users, split, index)
        mlflow.log_metrics({**metrics, "train_seconds": train_seconds})
        version = decision = None
        if movie_vectors is not None:
            log_embedding_map(split.movie_ids, movie_vectors, paths)
            written = write_embeddings(paths, model_name, split.movie_ids, movie_vectors,
                                       popularity_prior(popularity), served_vectors)
            version, decision = register_retriever(written, params.popularity_weight, paths, gate)
    return RetrieverRun(model_name, run.info.run_id, metrics, train_seconds, version, decision)


def log_towers(trained) -> None:
    """Log the two towers as Keras models (signature and input example) beside the retriever: the user tower turns
    fresh user features into a vector, the movie tower embeds a new movie."""
    import mlflow
    from mlflow.models import infer_signature

    from training.train import MODEL_REQUIREMENTS

    for name, tower, example in (("user_tower", trained.user_tower, trained.user_example),
                                 ("movie_tower", trained.movie_tower, trained.movie_example)):
        mlflow.tensorflow.log_model(tower, name=name, input_example=example, pip_requirements=MODEL_REQUIREMENTS,
                                    signature=infer_signature(example, np.asarray(tower(example))))


def score_by_vectors(movie_vectors: np.ndarray, user_vectors: dict[int, np.ndarray], users: list[int],
                     prior: np.ndarray, popularity_weight: float) -> np.ndarray:
    """Cosine similarity of each user's vector to every movie plus the weighted popularity prior; a user without a
    vector gets the popular movies, as in serving (retriever_model.py scores the same way)."""
    movie_unit_vectors = normalise(movie_vectors)
    return np.stack([movie_unit_vectors @ normalise(user_vectors[user]) + popularity_weight * prior
                     if user in user_vectors else prior for user in users])


def evaluate_scores(scores: np.ndarray, users: list[int], split: RetrievalSplit,
                    index: dict[int, int]) -> dict[str, float]:
    """Retrieval metrics on validation (to tune on) and test (the final comparison only)."""
    recommended = recommend_by_scores(scores, users, split, index, max(CUTOFFS))
    return {f"{name}_{metric}": value for name in ("validation", "test") for metric, value in
            score_retriever(recommended, split.relevant[name], len(index), CUTOFFS).items()}


def score_registered_retriever(version, paths: Paths) -> float:
    """Test Recall@10 of a registered retriever on the current split, for a champion tested on other data. Its user
    vectors are rebuilt the way every retriever can: the mean of its vectors of the user's training positives; the
    popularity prior is the current one, with the champion's weight."""
    import mlflow

    uri = f"models:/{version.name}/{version.version}"
    popularity_weight = mlflow.models.get_model_info(uri).flavors["python_function"]["config"]["popularity_weight"]
    folder = mlflow.artifacts.download_artifacts(uri)
    movies = pd.read_parquet(Path(folder) / "artifacts" / "movie_embeddings.parquet").set_index("movie_id")
    split = load_retrieval_split(paths)
    index = {int(movie): position for position, movie in enumerate(split.movie_ids)}
    dimension = len(movies["movie_embedding"].iloc[0])
    # A movie new to the catalogue has no vector in the old champion: zeros, so it is never its nearest neighbour.
    movie_vectors = np.stack([vector if isinstance(vector, np.ndarray) else np.zeros(dimension, np.float32)
                              for vector in movies["movie_embedding"].reindex(split.movie_ids)])
    users = sorted(split.relevant["test"])
    scores = score_by_vectors(movie_vectors, average_user_vectors(split, movie_vectors, index), users,
                              popularity_prior(count_popularity(split, index)), popularity_weight)
    recommended = recommend_by_scores(scores, users, split, index, 10)
    return score_retriever(recommended, split.relevant["test"], len(index), (10,))[GATE_METRIC]


def register_retriever(tables: dict[str, str], popularity_weight: float, paths: Paths,
                       gate: bool = True) -> tuple[str, str | None]:
    """Log the embedding tables as the retriever model, register it, run the champion gate on test Recall@10 and,
    if it becomes champion, publish its tables to Feast's sources."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

    users = pd.read_parquet(tables["user_embeddings"], columns=["user_id"])["user_id"].head(2).astype(np.int64)
    example = pd.DataFrame({"user_id": users, "exclude": [[1], []]})
    signature = ModelSignature(
        Schema([ColSpec("long", "user_id"), ColSpec(Array("long"), "exclude", required=False)]),
        Schema([ColSpec("long", "user_id"), ColSpec(Array("long"), "movie_ids")]),
        ParamSchema([ParamSpec("k", "long", 10)]))
    info = mlflow.pyfunc.log_model(name="model", python_model=str(Path(__file__).with_name("retriever_model.py")),
                                   artifacts=tables, model_config={"popularity_weight": popularity_weight},
                                   signature=signature, input_example=example,
                                   pip_requirements=RETRIEVER_REQUIREMENTS,
                                   registered_model_name=RETRIEVER_MODEL_NAME)
    version = str(info.registered_model_version)
    if not gate:
        return version, None
    decision = promote_if_better(mlflow.MlflowClient(), RETRIEVER_MODEL_NAME, version, GATE_METRIC,
                                 score_champion=lambda champion: score_registered_retriever(champion, paths))
    if decision.promoted:
        publish_embeddings(tables, paths)
    return version, decision.describe()


def publish_embeddings(tables: dict[str, str], paths: Paths) -> None:
    """Copy the champion's tables to the paths Feast's embedding sources read (write-then-rename each)."""
    for name, source in tables.items():
        with write_then_rename(paths.embeddings / f"{name}.parquet") as partial:
            shutil.copyfile(source, partial)
