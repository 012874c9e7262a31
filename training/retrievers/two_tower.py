"""Two-tower retrieval model (Keras 3): a user tower over the user's as-of features and last liked movies, a movie tower
over the movie's static features, trained on training positives with in-batch negatives (sampled softmax).

Negatives drawn from the batch are popular movies in proportion to their popularity, so the logits are corrected by
each movie's log sampling frequency (Yi et al., RecSys 2019, "logQ correction"); without it the model learns to push
popular movies down. The same movie twice in one batch is not its own negative."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from eaglerec.contracts.features import (
    LIKED_MOVIES,
    MOVIE_GENRES,
    MOVIE_ID,
    USER_FEATURES,
    USER_GENRES,
    USER_ID,
    USER_NUMERIC,
    Feature,
)
from eaglerec.contracts.retrieval import EmbeddingRetriever
from training.retrievers import RetrievalSplit, TrainedRetriever, popularity_prior

USER_TOWER = USER_FEATURES
MOVIE_TOWER = (MOVIE_ID, *MOVIE_GENRES, Feature("release_year", "numeric"))
LOG_FREQUENCY = "movie_log_frequency"


@dataclass(frozen=True)
class Params:
    """What the two-tower model is; logged to MLflow with every run."""

    embedding_dim: int = 32
    hidden_units: int = 64
    temperature: float = 0.1
    use_user_id: bool = True
    # As in SkipGramParams. Validation Recall@10 with weight 0 / 0.3 / 1.0: 0.112 / 0.116 / 0.107 (the logQ
    # correction already restores most of the popularity that in-batch negatives remove).
    popularity_weight: float = 0.3
    epochs: int = 8
    batch_size: int = 1024
    learning_rate: float = 3e-3
    seed: int = 42


def suggest_params(trial) -> dict:
    """Its tuning search space (`eaglerec tune`)."""
    return {"embedding_dim": trial.suggest_categorical("embedding_dim", [16, 32, 64]),
            "hidden_units": trial.suggest_categorical("hidden_units", [32, 64, 128]),
            "temperature": trial.suggest_float("temperature", 0.05, 0.3, log=True),
            "popularity_weight": trial.suggest_float("popularity_weight", 0.0, 1.0),
            "epochs": trial.suggest_int("epochs", 4, 12),
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True)}


@keras.saving.register_keras_serializable(package="eaglerec")
class InBatchLogits(layers.Layer):
    """Logits of every user in the batch against every movie in it: u . m / temperature - log q(movie); a movie that
    appears again in the batch is masked out as a negative for the other rows."""

    def __init__(self, temperature: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature

    def call(self, user_vectors, movie_vectors, movie_ids, log_frequency):
        logits = ops.matmul(user_vectors, ops.transpose(movie_vectors)) / self.temperature
        logits = logits - ops.expand_dims(log_frequency, 0)
        same_movie = ops.equal(ops.expand_dims(movie_ids, 1), ops.expand_dims(movie_ids, 0))
        diagonal = ops.eye(ops.shape(movie_ids)[0], dtype="bool")
        return ops.where(ops.logical_and(same_movie, ops.logical_not(diagonal)), -1e9, logits)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def in_batch_softmax_loss(_, logits):
    """Cross-entropy of each row's own movie (the diagonal) against the batch; the y passed to fit is unused."""
    return ops.sparse_categorical_crossentropy(ops.arange(ops.shape(logits)[0]), logits, from_logits=True)


def masked_mean(vectors, indexes):
    """Mean over the non-padding (index > 0) vectors of (batch, slots, dim); zero when every slot is padding."""
    mask = ops.expand_dims(ops.cast(ops.greater(indexes, 0), vectors.dtype), -1)
    return ops.sum(vectors * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


def build_tower(parts: list, params: Params, name: str):
    x = ops.concatenate(parts, axis=-1)
    x = layers.Dense(params.hidden_units, activation="relu", name=f"{name}_hidden")(x)
    x = layers.Dense(params.embedding_dim, name=f"{name}_output")(x)
    return layers.UnitNormalization(name=f"{name}_normalise")(x)


def build_two_tower(sizes: dict[str, int], params: Params) -> tuple[keras.Model, keras.Model, keras.Model]:
    """Return (user tower, movie tower, training model). The towers share the movie and genre tables, so a movie in
    a user's history and the same movie as a candidate start from one vector. All three are views of one graph (not
    nested models): Keras cannot save nested models that share layers."""
    keras.utils.set_random_seed(params.seed)
    movies = layers.Embedding(sizes["movie"], params.embedding_dim, name="movie_embedding")
    genres = layers.Embedding(sizes["genre"], params.embedding_dim, name="genre_embedding")

    def declare(features):
        return {f.name: keras.Input(shape=(), name=f.name, dtype="float32" if f.kind == "numeric" else "int32")
                for f in features}

    def stack(inputs, features):
        return ops.stack([inputs[f.name] for f in features], axis=1)

    user_inputs = declare(USER_TOWER)
    liked, user_genres = stack(user_inputs, LIKED_MOVIES), stack(user_inputs, USER_GENRES)
    user_parts = [masked_mean(movies(liked), liked), masked_mean(genres(user_genres), user_genres),
                  stack(user_inputs, USER_NUMERIC)]
    if params.use_user_id:
        user_parts.append(layers.Embedding(sizes["user"], params.embedding_dim, name="user_embedding")(
            user_inputs[USER_ID.name]))
    user_vector = build_tower(user_parts, params, "user_tower")

    movie_inputs = declare(MOVIE_TOWER)
    movie_genres = stack(movie_inputs, MOVIE_GENRES)
    movie_vector = build_tower([
        movies(movie_inputs[MOVIE_ID.name]), masked_mean(genres(movie_genres), movie_genres),
        ops.expand_dims(movie_inputs["release_year"], -1)], params, "movie_tower")

    log_frequency = keras.Input(shape=(), name=LOG_FREQUENCY, dtype="float32")
    logits = InBatchLogits(params.temperature, name="in_batch_logits")(
        user_vector, movie_vector, movie_inputs[MOVIE_ID.name], log_frequency)
    model = keras.Model({**user_inputs, **movie_inputs, LOG_FREQUENCY: log_frequency}, logits, name="two_tower")
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss=in_batch_softmax_loss)
    return (keras.Model(user_inputs, user_vector, name="user_tower"),
            keras.Model(movie_inputs, movie_vector, name="movie_tower"), model)


def fit_two_tower(model: keras.Model, inputs: dict[str, np.ndarray], params: Params, rng,
                  verbose: int = 0) -> list[float]:
    """Fit on shuffled positives; the last partial batch is dropped (a batch of one has no negatives)."""
    rows = len(inputs[MOVIE_ID.name])
    usable = rows - rows % params.batch_size if rows >= params.batch_size else rows
    losses = []
    for _ in range(params.epochs):
        order = rng.permutation(rows)[:usable]
        history = model.fit({name: values[order] for name, values in inputs.items()}, np.zeros(usable, np.float32),
                            batch_size=min(params.batch_size, usable), epochs=1, shuffle=False, verbose=verbose)
        losses.append(float(history.history["loss"][0]))
    return losses


@dataclass(frozen=True)
class TwoTowerVectors:
    """Movie vectors in catalogue order; user vectors as of the end of training (evaluation) and as of the latest
    data (written for Feast and serving)."""

    movie_vectors: np.ndarray
    evaluation_user_vectors: dict[int, np.ndarray]
    served_user_vectors: dict[int, np.ndarray]
    losses: list[float]
    # The towers, and examples of their encoded inputs, to log them as models.
    user_tower: keras.Model
    movie_tower: keras.Model
    user_example: dict[str, np.ndarray]
    movie_example: dict[str, np.ndarray]


def latest_rows(frame, key: str):
    return frame.sort_values("valid_from").groupby(key).tail(1).set_index(key)


def train_two_tower_vectors(paths, catalogue_movie_ids: np.ndarray, params: Params, rng,
                            verbose: int = 0, refit: bool = False) -> TwoTowerVectors:
    """Train on the training positives of rating_examples (as-of user features, so no leakage into the towers; a
    refit: every positive) and embed the catalogue and the users."""
    import pandas as pd

    from eaglerec.contracts.encoding import FeatureEncoder
    from training.data import load_ranking_data

    data = load_ranking_data(paths, refit=refit)
    encoder = FeatureEncoder.fit(data.train, data.movie_ids, data.genres)
    positives = data.train[data.train["label"] == 1]
    frequency = positives["movie_id"].map(positives["movie_id"].value_counts()).to_numpy() / len(positives)
    user_tower, movie_tower, model = build_two_tower(
        {kind: encoder.vocabulary_size(kind) for kind in ("user", "movie", "genre")}, params)
    inputs = {**encoder.encode(positives, USER_TOWER), **encoder.encode(positives, MOVIE_TOWER),
              LOG_FREQUENCY: np.log(frequency).astype(np.float32)}
    losses = fit_two_tower(model, inputs, params, rng, verbose)

    movies = latest_rows(pd.read_parquet(paths.marts / "movie_profiles.parquet"), "movie_id")
    movie_inputs = encoder.encode(movies.reindex(catalogue_movie_ids).reset_index(), MOVIE_TOWER)
    movie_vectors = np.asarray(movie_tower(movie_inputs))
    states = {}
    if not refit:  # a refit is not evaluated
        # A user's state at the end of training: the features of their first event after it (as of that event).
        after_training = pd.concat([data.validation, data.test]).sort_values(["rated_at", "movie_id"])
        states["evaluation"] = after_training.groupby("user_id").head(1)
    states["served"] = latest_rows(pd.read_parquet(paths.marts / "user_profiles.parquet"), "user_id").reset_index()
    vectors = {"evaluation": {}}
    for name, state in states.items():
        user_inputs = encoder.encode(state, USER_TOWER)
        embedded = np.asarray(user_tower(user_inputs))
        vectors[name] = dict(zip(state["user_id"].astype(int), embedded, strict=True))
    return TwoTowerVectors(movie_vectors, vectors["evaluation"], vectors["served"], losses, user_tower, movie_tower,
                           {name: values[:5] for name, values in user_inputs.items()},
                           {name: values[:5] for name, values in movie_inputs.items()})


def log_towers(trained: TwoTowerVectors) -> None:
    """Log the two towers as Keras models (signature and input example) in the active run: the user tower turns
    fresh user features into a vector, the movie tower embeds a new movie."""
    from mlflow.models import infer_signature

    from training.tracking import log_keras_model

    for name, tower, example in (("user_tower", trained.user_tower, trained.user_example),
                                 ("movie_tower", trained.movie_tower, trained.movie_example)):
        log_keras_model(tower, name, example, infer_signature(example, np.asarray(tower(example))))


def train(split: RetrievalSplit, params: Params, verbose: int = 0) -> TrainedRetriever:
    """Train the towers; serve users as of the latest data, evaluate them as of the end of training."""
    trained = train_two_tower_vectors(split.paths, split.movie_ids, params, np.random.default_rng(params.seed),
                                      verbose, split.refit)
    log_towers(trained)
    prior = popularity_prior(split.count_popularity())

    def retriever(user_vectors):
        return EmbeddingRetriever(split.movie_ids, trained.movie_vectors, prior, params.popularity_weight, user_vectors)

    return TrainedRetriever(retriever(trained.served_user_vectors),
                            None if split.refit else retriever(trained.evaluation_user_vectors), tuple(trained.losses))
