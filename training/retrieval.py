"""The retriever harness: every retriever of the catalogue learns from the same training positives and is evaluated
through the retriever contract (eaglerec/contracts/retrieval.py) on validation and test (DATA.md protocol: each
user's held-out liked movies, movies rated in training excluded); an entry that competes is registered as an MLflow
model of the contract behind the champion gate. The service loads that model: it serves what was evaluated."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from importlib import import_module
from pathlib import Path

import numpy as np
import pandas as pd

import eaglerec.contracts
from eaglerec.contracts import retrieval as retrieval_contract
from eaglerec.contracts.catalogue import ModelEntry
from eaglerec.contracts.names import MODEL_TAG, TEST_SET_TAG
from eaglerec.contracts.retrieval import EmbeddingRetriever, Retriever, VectorScores
from eaglerec.settings import Paths
from training.metrics import PairedDifference, compare_user_means, score_retriever, score_users
from training.registry import PromotionError, promote_if_better
from training.retrievers import RetrievalSplit, load_retrieval_split
from training.tracking import (
    TrainedRun,
    describe_lineage,
    describe_refit,
    load_test_answers,
    log_test_answers,
    log_training_config,
    name_run,
    read_git_commit,
    read_live_data,
    use_experiment,
)

CUTOFFS = (10, 50, 100)
# MLflow runs this file to load a registered retriever; it needs the eaglerec package (contracts) besides these.
RETRIEVER_MODEL_CODE = Path(eaglerec.contracts.__file__).with_name("retriever_model.py")
RETRIEVER_REQUIREMENTS = ["mlflow==3.17.2", "pandas<3", "numpy", "pyarrow", "scipy", "usearch==2.26.6"]
INDEX_FIT_USERS = 1_000
# False (tests): ship an index that reaches the recall even when the exact scan is faster.
INDEX_ONLY_IF_FASTER = True


def recommend(retriever: Retriever, split: RetrievalSplit, users, top: int, anonymous: bool = False
              ) -> dict[int, list[int]]:
    """Each user's top movies through the contract, as of the end of training, movies rated in training excluded."""
    return {user: retriever.retrieve(split.user_state(user, anonymous), top,
                                     split.rated_in_train.get(user, ())).movie_ids.tolist() for user in users}


def evaluate_retriever(retriever: Retriever, split: RetrievalSplit) -> dict[str, float]:
    """Retrieval metrics on validation (to tune on) and test (the final comparison only)."""
    users = sorted(set(split.relevant["validation"]) | set(split.relevant["test"]))
    recommended = recommend(retriever, split, users, max(CUTOFFS))
    return {f"{name}_{metric}": value for name in ("validation", "test") for metric, value in
            score_retriever(recommended, split.relevant[name], len(split.index), CUTOFFS).items()}


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


def train_retriever(entry: ModelEntry, params, paths: Paths, verbose: int = 0, gate: bool = True) -> TrainedRun:
    """Train one retriever of the catalogue, evaluate Recall/NDCG/hit rate/coverage on validation and test through
    the retriever contract, log it to MLflow; register it if its entry competes and (unless gate is False) run the
    champion gate on the kind's gate metric."""
    import mlflow

    module = import_module(entry.module)
    split = load_retrieval_split(paths)
    use_experiment(entry.kind.experiment)
    lineage = describe_lineage(paths)
    with mlflow.start_run(run_name=name_run(entry.name, lineage)) as run:
        evaluation_users = len(set(split.relevant["validation"]) | set(split.relevant["test"]))
        mlflow.set_tags({**lineage, MODEL_TAG: entry.name, "baseline": str(entry.baseline).lower(),
                         "git_commit": read_git_commit(), TEST_SET_TAG: f"{lineage['data_version']}:test"})
        mlflow.log_params({"model": entry.name, "evaluation_users": evaluation_users, **read_live_data(paths.marts),
                           **asdict(params)})
        started = time.perf_counter()
        trained = module.train(split, params, verbose)
        train_seconds = time.perf_counter() - started
        mlflow.set_tag("retriever_type", trained.served.retriever_type)
        # Chosen on validation by the module; test was not looked at.
        mlflow.log_params({f"tuned_{name}": value for name, value in trained.tuned.items()})
        mlflow.log_metrics({f"tuning_validation_recall_at_10_{name}": score
                            for name, score in trained.tuning_scores.items()})
        for epoch, loss in enumerate(trained.losses, start=1):
            mlflow.log_metric("loss", loss, step=epoch)
        evaluated = trained.evaluated or trained.served
        metrics = evaluate_retriever(evaluated, split)
        mlflow.log_metrics({**metrics, "train_seconds": train_seconds})
        answers = describe_test_users(evaluated, split)
        log_test_answers(answers)
        if isinstance(trained.served, EmbeddingRetriever):
            log_embedding_map(trained.served.movie_ids, trained.served.movie_vectors, paths)
        log_training_config(entry.name, params, trained.refit_overrides)
        version = decision = None
        if entry.registered:
            version, decision = register_retriever(entry, trained.served, split, answers, gate)
    return TrainedRun(entry.name, run.info.run_id, metrics, train_seconds, None, version, decision)


def refit_retriever(entry: ModelEntry, params, paths: Paths, evaluated_version, verbose: int = 0) -> TrainedRun:
    """Train an evaluated retriever's configuration (params with what validation chose) on every liked movie, log it
    as a refit run (no held-out figures: there is nothing held out) and register it, ungated."""
    import mlflow

    module = import_module(entry.module)
    split = load_retrieval_split(paths, refit=True)
    use_experiment(entry.kind.experiment)
    lineage = describe_lineage(paths)
    with mlflow.start_run(run_name=f"{name_run(entry.name, lineage)} · refit") as run:
        mlflow.set_tags({**lineage, MODEL_TAG: entry.name, "git_commit": read_git_commit(),
                         **describe_refit(evaluated_version)})
        mlflow.log_params({"model": entry.name, "train_users": len(split.train_sequences),
                           "train_positives": sum(map(len, split.train_sequences.values())),
                           **read_live_data(paths.marts), **asdict(params)})
        started = time.perf_counter()
        trained = module.train(split, params, verbose)
        train_seconds = time.perf_counter() - started
        mlflow.set_tag("retriever_type", trained.served.retriever_type)
        for epoch, loss in enumerate(trained.losses, start=1):
            mlflow.log_metric("loss", loss, step=epoch)
        mlflow.log_metric("train_seconds", train_seconds)
        version = log_registered_retriever(entry, trained.served, split)
    return TrainedRun(entry.name, run.info.run_id, {}, train_seconds, None, version)


def load_registered_retriever(uri: str) -> Retriever:
    """The retriever of a registered version (models:/name/version), loaded as the service loads it."""
    import mlflow

    return mlflow.pyfunc.load_model(uri).unwrap_python_model().retriever


def score_registered_retriever(version, split: RetrievalSplit, metric: str) -> float:
    """A registered retriever version's test metric on another split. Users are described to it by their liked
    training movies only, not by id: the version may have learnt its users from other data."""
    retriever = load_registered_retriever(f"models:/{version.name}/{version.version}")
    cutoff = int(metric.rsplit("_", 1)[1])
    recommended = recommend(retriever, split, sorted(split.relevant["test"]), cutoff, anonymous=True)
    return score_retriever(recommended, split.relevant["test"], len(split.index), (cutoff,))[metric]


def describe_test_users(retriever: Retriever, split: RetrievalSplit, cutoff: int = 10,
                        anonymous: bool = False) -> pd.DataFrame:
    """Each test user's metrics at cutoff (the run's test answers the champion gate pairs)."""
    users = sorted(split.relevant["test"])
    scores = score_users(recommend(retriever, split, users, cutoff, anonymous), split.relevant["test"], cutoff, users)
    return pd.DataFrame({"user_id": users, **scores})


def compare_retrievers(candidate: pd.DataFrame, champion_version, split: RetrievalSplit, metric: str,
                       same_test_set: bool) -> PairedDifference:
    """Candidate and champion on the same test users, paired: the difference of their mean per-user metric with a
    bootstrap interval over users. The champion's answers are its own run's when it was tested on the same data
    (a served model may know later ratings of its users: re-scoring it on this test set would leak them); else it is
    re-scored here, its users described by their liked training movies only."""
    champion = load_test_answers(champion_version.run_id) if same_test_set else None
    if champion is None:
        served = load_registered_retriever(f"models:/{champion_version.name}/{champion_version.version}")
        champion = describe_test_users(served, split, int(metric.rsplit("_", 1)[1]), anonymous=True)
    paired = candidate.merge(champion, on="user_id", suffixes=("", "_champion"), validate="one_to_one")
    if len(paired) != len(candidate):
        raise PromotionError(f"the champion's test answers cover {len(paired)} of the candidate's {len(candidate)} "
                             "users: not the same test set")
    return compare_user_means(paired[metric].to_numpy(), paired[f"{metric}_champion"].to_numpy())


def register_retriever(entry: ModelEntry, retriever: Retriever, split: RetrievalSplit, answers: pd.DataFrame,
                       gate: bool = True) -> tuple[str, str | None]:
    """Log and register the retriever and run the champion gate on its test answers."""
    import mlflow

    version = log_registered_retriever(entry, retriever, split)
    if not gate:
        return version, None
    metric = entry.kind.gate_metric
    decision = promote_if_better(mlflow.MlflowClient(), entry.kind.registered_model, version, metric,
                                 lambda champion, same: compare_retrievers(answers, champion, split, metric, same),
                                 entry.kind.gate_min_gain)
    return version, decision.describe()


def log_registered_retriever(entry: ModelEntry, retriever: Retriever, split: RetrievalSplit) -> str:
    """Log the retriever as an MLflow model of the contract (its tables as artifacts, its type in the config) and
    register it; return its version."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

    users = sorted(split.train_sequences)[:2]
    example = pd.DataFrame({"user_id": users, "liked_movie_ids": [split.train_sequences[users[0]][-5:], []],
                            "exclude": [[1], []]})
    signature = ModelSignature(
        Schema([ColSpec("long", "user_id", required=False), ColSpec(Array("long"), "liked_movie_ids", required=False),
                ColSpec(Array("long"), "exclude", required=False)]),
        Schema([ColSpec("long", "user_id"), ColSpec(Array("long"), "movie_ids"), ColSpec(Array("double"), "scores")]),
        ParamSchema([ParamSpec("k", "long", 10)]))
    if isinstance(retriever, VectorScores) and len(retriever.movie_ids) >= retrieval_contract.INDEX_MIN_MOVIES:
        # Index or exact scan, measured on (up to 1,000 of) the users it will serve, on this machine.
        states = (split.user_state(user) for user in sorted(split.train_sequences)[:INDEX_FIT_USERS])
        queries = [query for query in map(retriever.query, states) if query is not None]
        if queries:
            fit = retriever.fit_index(np.stack(queries), only_if_faster=INDEX_ONLY_IF_FASTER)
            mlflow.log_metrics(fit.metrics())
            mlflow.set_tag("retrieval_search", "index" if fit.used else "exact")
    with tempfile.TemporaryDirectory() as folder:
        info = mlflow.pyfunc.log_model(name="model", python_model=str(RETRIEVER_MODEL_CODE),
                                       artifacts=retriever.save(Path(folder)),
                                       model_config={"retriever_type": retriever.retriever_type, **retriever.config},
                                       signature=signature, input_example=example,
                                       pip_requirements=RETRIEVER_REQUIREMENTS,
                                       registered_model_name=entry.kind.registered_model)
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    # Which model and which retriever type a version is, shown in the registry.
    for key, value in ((MODEL_TAG, entry.name), ("retriever_type", retriever.retriever_type)):
        client.set_model_version_tag(entry.kind.registered_model, version, key, value)
    return version
