"""The models the service serves, loaded from the MLflow registry by alias: the ranker's champion and challenger (the
A/B variants), the latest NeuralCF (SparrowRecSys's `model=neuralcf`), and the champion retriever's embedding tables.
A `ModelSet` is immutable: a reload builds a new one and swaps the reference."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.encoding import FeatureEncoder
from training.feature_spec import FEATURES, MOVIE_FEATURES, USER_FEATURES

# Registered model names: the contract with training (ARCHITECTURE.md), overridable for experiments.
RANKER_MODEL_NAME = os.environ.get("EAGLEREC_RANKER_MODEL", "eaglerec-ranker")
RETRIEVER_MODEL_NAME = os.environ.get("EAGLEREC_RETRIEVER_MODEL", "eaglerec-retriever")
CHAMPION, CHALLENGER = "champion", "challenger"
# Ranker kinds also loaded at their latest version, for requests that name one (SparrowRecSys's model=neuralcf,
# benchmarks); every deep ranker costs ~1-2 s of start-up.
EXTRA_RANKERS = tuple(kind for kind in os.environ.get("EAGLEREC_EXTRA_RANKERS", "neural_cf,din").split(",") if kind)


class ModelLoadError(Exception):
    """A registered model the service needs is missing or unreadable; the message names it."""


@dataclass(frozen=True)
class Ranker:
    """One registered ranker, compiled for batched calls, with the movie side of its inputs encoded once."""

    label: str  # e.g. "din v21"
    model_kind: str
    version: str
    score_batch: object  # inputs dict -> scores
    encoder: FeatureEncoder
    movie_inputs: dict[str, np.ndarray]  # catalogue order

    def score(self, user_inputs: dict[str, np.ndarray], positions: np.ndarray) -> np.ndarray:
        """Score the movies at `positions` for one user in one model call (not predict(): ~100x its overhead)."""
        rows = len(positions)
        inputs = {name: values[positions] for name, values in self.movie_inputs.items()}
        inputs.update({name: np.repeat(values, rows) for name, values in user_inputs.items()})
        return np.asarray(self.score_batch({feature.name: inputs[feature.name] for feature in FEATURES})).ravel()


@dataclass(frozen=True)
class Retriever:
    """The champion retriever's tables: unit movie vectors (zero where a movie has none) and user vectors."""

    label: str
    movie_vectors: np.ndarray
    has_vector: np.ndarray
    prior: np.ndarray  # popularity_weight * popularity_prior, catalogue order
    user_vectors: dict[int, np.ndarray]


@dataclass(frozen=True)
class ModelSet:
    rankers: dict[str, Ranker]  # variant -> ranker; "champion" always, "challenger" when registered
    extra_rankers: dict[str, Ranker]  # model kind -> latest version, for the SparrowRecSys `model` parameter
    retriever: Retriever

    def describe(self) -> dict[str, str]:
        return {**{f"ranker_{variant}": ranker.label for variant, ranker in self.rankers.items()},
                "retriever": self.retriever.label}


def compile_ranker(model):
    """The Keras model as one concrete TensorFlow function (any candidate count): called with tensors it skips the
    polymorphic dispatch, 2.2 ms against 4.7 ms for 800 DIN candidates here."""
    import tensorflow as tf

    signature = {feature.name: tf.TensorSpec([None], tf.float32 if feature.kind == "numeric" else tf.int32,
                                             name=feature.name) for feature in FEATURES}
    concrete = tf.function(lambda inputs: model(inputs, training=False),
                           input_signature=[signature]).get_concrete_function()
    return lambda inputs: concrete({name: tf.constant(values) for name, values in inputs.items()})


def load_ranker(client, version, catalogue) -> Ranker:
    import mlflow

    model = mlflow.tensorflow.load_model(f"models:/{version.name}/{version.version}")
    encoder = FeatureEncoder.from_dict(mlflow.artifacts.load_dict(f"runs:/{version.run_id}/feature_encoder.json"))
    kind = client.get_run(version.run_id).data.tags.get("model", "ranker")
    movie_inputs = encoder.encode(catalogue.features, MOVIE_FEATURES)
    ranker = Ranker(f"{kind} v{version.version}", kind, str(version.version), compile_ranker(model), encoder,
                    movie_inputs)
    ranker.score(encoder.encode_row({}, USER_FEATURES), np.arange(2))  # the first call is slower: not on a request
    return ranker


def find_alias(client, model_name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def load_retriever(version, catalogue) -> Retriever:
    import mlflow

    uri = f"models:/{version.name}/{version.version}"
    weight = mlflow.models.get_model_info(uri).flavors["python_function"].get("config", {}).get(
        "popularity_weight", 0.0)
    folder = Path(mlflow.artifacts.download_artifacts(uri)) / "artifacts"
    movies = pd.read_parquet(folder / "movie_embeddings.parquet").set_index("movie_id")
    users = pd.read_parquet(folder / "user_embeddings.parquet")
    dimension = len(movies["movie_embedding"].iloc[0])
    vectors = np.zeros((len(catalogue.movie_ids), dimension), dtype=np.float32)
    has_vector = catalogue.movies.index.isin(movies.index)
    vectors[has_vector] = np.stack(movies["movie_embedding"].reindex(catalogue.movie_ids[has_vector]).to_list())
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    prior = movies["popularity_prior"].reindex(catalogue.movie_ids).fillna(0.0).to_numpy(dtype=np.float32)
    user_vectors = {int(user): np.asarray(vector, dtype=np.float32) / max(float(np.linalg.norm(vector)), 1e-12)
                    for user, vector in zip(users["user_id"], users["user_embedding"], strict=True)}
    kind = mlflow.MlflowClient().get_run(version.run_id).data.tags.get("model", "retriever")
    return Retriever(f"{kind} v{version.version}", vectors, has_vector, weight * prior, user_vectors)


def load_model_set(catalogue, tracking_uri: str) -> ModelSet:
    """Load the champion (and challenger) ranker and the champion retriever; raise ModelLoadError if one is missing."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    rankers = {}
    for alias in (CHAMPION, CHALLENGER):
        if version := find_alias(client, RANKER_MODEL_NAME, alias):
            rankers[alias] = load_ranker(client, version, catalogue)
    retriever_version = find_alias(client, RETRIEVER_MODEL_NAME, CHAMPION)
    if CHAMPION not in rankers or retriever_version is None:
        raise ModelLoadError(f"no `champion` alias on {RANKER_MODEL_NAME} or {RETRIEVER_MODEL_NAME} at "
                             f"{tracking_uri}: train first (make train)")
    latest = {}
    for version in client.search_model_versions(f"name = '{RANKER_MODEL_NAME}'"):
        kind = client.get_run(version.run_id).data.tags.get("model")
        if kind in EXTRA_RANKERS and (kind not in latest or int(version.version) > int(latest[kind].version)):
            latest[kind] = version
    extra = {kind: load_ranker(client, version, catalogue) for kind, version in latest.items()}
    return ModelSet(rankers, extra, load_retriever(retriever_version, catalogue))
