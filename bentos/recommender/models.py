"""The models the service serves, from the MLflow registry: the ranker's `champion` and `challenger` (the A/B
variants), the latest version of every ranker the catalogue marks `serve_latest` (requests may name one), and the
retriever's `champion` through the retriever contract. Each is loaded as its refit on all ratings when the registry
links one (REFIT_VERSION_TAG), else as evaluated. A `ModelSet` is immutable: a reload builds a new one and swaps
the reference."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from bentos.recommender.movie_catalog import MovieCatalog
from eaglerec.contracts.catalogue import load_catalogue
from eaglerec.contracts.encoding import FeatureEncoder
from eaglerec.contracts.features import FEATURES, MOVIE_FEATURES, USER_FEATURES
from eaglerec.contracts.names import (
    CHALLENGER,
    CHAMPION,
    ENCODER_ARTIFACT,
    MODEL_TAG,
    REFIT_OF_TAG,
    REFIT_VERSION_TAG,
)
from eaglerec.contracts.retrieval import Retriever

LOGGER = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """A registered model the service needs is missing or unreadable; the message names it."""


# The user's side of a ranker call, packed in two vectors (one per dtype) in this order.
USER_NUMERIC = tuple(feature for feature in USER_FEATURES if feature.kind == "numeric")
USER_INDEXES = tuple(feature for feature in USER_FEATURES if feature.kind != "numeric")


@dataclass(frozen=True)
class Ranker:
    """One registered ranker, compiled for one call per request: the movie side of its inputs is encoded once and
    held by the compiled function, which takes the candidates' catalogue positions and the user's two packed
    vectors."""

    label: str  # e.g. "din v21", or "din v21 (refit v23)" when serving its refit on all ratings
    model_name: str  # its catalogue name
    version: str
    score_batch: object  # inputs dict (one array per feature, a row each) -> scores
    score_packed: object  # (positions, user numerics, user indexes) -> scores
    encoder: FeatureEncoder

    def score(self, user_inputs: dict[str, np.ndarray], positions: np.ndarray) -> np.ndarray:
        """Score the movies at `positions` for one user in one model call (not predict(): ~100x its overhead)."""
        numeric = np.concatenate([user_inputs[feature.name] for feature in USER_NUMERIC]).astype(np.float32)
        indexes = np.concatenate([user_inputs[feature.name] for feature in USER_INDEXES]).astype(np.int32)
        return self.score_packed(np.asarray(positions, np.int32), numeric, indexes).numpy()

    def rank(self, user_id: int, state: dict, positions: np.ndarray) -> np.ndarray:
        """P(like) of each movie at `positions` for a user in the given online state."""
        return self.score(self.encoder.encode_row({**state, "user_id": user_id}, USER_FEATURES), positions)


@dataclass(frozen=True)
class LoadedRetriever:
    label: str  # e.g. "two_tower v7"
    retriever: Retriever


@dataclass(frozen=True)
class ModelSet:
    rankers: dict[str, Ranker]  # variant -> ranker; "champion" always, "challenger" when registered
    named_rankers: dict[str, Ranker]  # catalogue name -> its latest version, for requests that name a ranker
    retriever: LoadedRetriever

    def describe(self) -> dict[str, str]:
        return {**{f"ranker_{variant}": ranker.label for variant, ranker in self.rankers.items()},
                "retriever": self.retriever.label}


def share_cores(workers: int) -> None:
    """TensorFlow's thread pools sized to this worker's share of the cores: with one pool as large as the machine
    per worker, two workers' model calls spin against each other (CPU per call 10.9 ms against 8.5 ms for DIN here,
    one worker alone). Must run before TensorFlow's first operation; after it, the pools stay as they are."""
    import tensorflow as tf

    threads = max(1, (os.cpu_count() or 1) // workers)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        LOGGER.warning("TensorFlow already started: its thread pools stay as they are")


def compile_ranker(model, movie_inputs: dict[str, np.ndarray]) -> tuple[object, object]:
    """The Keras model as two concrete TensorFlow functions (any candidate count): over a dict of per-row inputs,
    and packed: over candidate positions into the movie inputs, which it holds as constants, and the user's side as
    two vectors, repeated in the graph. A concrete function called with tensors skips the polymorphic dispatch (2.2
    ms against 4.7 ms for 800 DIN candidates here); packed, it also skips 24 conversions and the gathers in NumPy."""
    import tensorflow as tf

    signature = {feature.name: tf.TensorSpec([None], tf.float32 if feature.kind == "numeric" else tf.int32,
                                             name=feature.name) for feature in FEATURES}
    by_dict = tf.function(lambda inputs: model(inputs, training=False),
                          input_signature=[signature]).get_concrete_function()
    tables = {name: tf.constant(values) for name, values in movie_inputs.items()}

    def score_packed(positions, numeric, indexes):
        rows = tf.shape(positions)[:1]
        inputs = {name: tf.gather(table, positions) for name, table in tables.items()}
        inputs.update({feature.name: tf.broadcast_to(numeric[i], rows) for i, feature in enumerate(USER_NUMERIC)})
        inputs.update({feature.name: tf.broadcast_to(indexes[i], rows) for i, feature in enumerate(USER_INDEXES)})
        return tf.reshape(model(inputs, training=False), [-1])

    packed = tf.function(score_packed, input_signature=[
        tf.TensorSpec([None], tf.int32), tf.TensorSpec([len(USER_NUMERIC)], tf.float32),
        tf.TensorSpec([len(USER_INDEXES)], tf.int32)]).get_concrete_function()
    return (lambda inputs: by_dict({name: tf.constant(values) for name, values in inputs.items()}),
            lambda positions, numeric, indexes: packed(tf.constant(positions), tf.constant(numeric),
                                                       tf.constant(indexes)))


def find_served(client, version) -> tuple[object, str, str]:
    """What serves for an evaluated version: its refit on all ratings when training registered one (the registry
    links it), else the version itself; with its catalogue name and its label."""
    name = client.get_run(version.run_id).data.tags.get(MODEL_TAG, "model")
    label = f"{name} v{version.version}"
    if refit := (version.tags or {}).get(REFIT_VERSION_TAG):
        return client.get_model_version(version.name, refit), name, f"{label} (refit v{refit})"
    return version, name, label


def load_ranker(client, version, catalog: MovieCatalog) -> Ranker:
    import mlflow

    served, name, label = find_served(client, version)
    model = mlflow.tensorflow.load_model(f"models:/{served.name}/{served.version}")
    encoder = FeatureEncoder.from_dict(mlflow.artifacts.load_dict(f"runs:/{served.run_id}/{ENCODER_ARTIFACT}"))
    ranker = Ranker(label, name, str(version.version),
                    *compile_ranker(model, encoder.encode(catalog.features, MOVIE_FEATURES)), encoder)
    ranker.score(encoder.encode_row({}, USER_FEATURES), np.arange(2))  # the first call is slower: not on a request
    return ranker


def load_retriever(client, version) -> LoadedRetriever:
    """The retriever of a registered version, through the contract: MLflow runs its model code, which rebuilds the
    declared retriever type from the version's artifacts."""
    import mlflow

    served, _, label = find_served(client, version)
    model = mlflow.pyfunc.load_model(f"models:/{served.name}/{served.version}")
    return LoadedRetriever(label, model.unwrap_python_model().retriever)


def find_alias(client, model_name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def load_model_set(catalog: MovieCatalog, tracking_uri: str, ranker_model: str, retriever_model: str) -> ModelSet:
    """Load the champion (and challenger) ranker, the named rankers and the champion retriever; raise
    ModelLoadError if a champion is missing."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    rankers = {}
    for alias in (CHAMPION, CHALLENGER):
        if version := find_alias(client, ranker_model, alias):
            rankers[alias] = load_ranker(client, version, catalog)
    retriever_version = find_alias(client, retriever_model, CHAMPION)
    if CHAMPION not in rankers or retriever_version is None:
        raise ModelLoadError(f"no `champion` alias on {ranker_model} or {retriever_model} at {tracking_uri}: "
                             "train first (make train)")
    serve_latest = {entry.name for entry in load_catalogue().models.values() if entry.serve_latest}
    latest = {}
    for version in client.search_model_versions(f"name = '{ranker_model}'"):
        if REFIT_OF_TAG in (version.tags or {}):  # a refit serves through the version it refits
            continue
        name = client.get_run(version.run_id).data.tags.get(MODEL_TAG)
        if name in serve_latest and (name not in latest or int(version.version) > int(latest[name].version)):
            latest[name] = version
    named = {name: load_ranker(client, version, catalog) for name, version in latest.items()}
    return ModelSet(rankers, named, load_retriever(client, retriever_version))
