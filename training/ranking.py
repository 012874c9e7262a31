"""The ranker harness: every ranker of the catalogue trains on the same gated split and encoding, is scored on
validation and test, and is logged to MLflow; an entry that competes is registered behind the champion gate."""

from __future__ import annotations

import time
from dataclasses import asdict
from importlib import import_module

import numpy as np
import pandas as pd

from eaglerec.contracts.catalogue import CatalogueError, ModelEntry
from eaglerec.contracts.encoding import FeatureEncoder
from eaglerec.contracts.features import LABEL
from eaglerec.contracts.names import ENCODER_ARTIFACT, MODEL_TAG, RANKER_SERVICE, TEST_SET_TAG
from eaglerec.settings import Paths
from training.data import load_ranking_data
from training.metrics import PairedDifference, compare_aucs, score_ranker
from training.rankers import SPLITS, RankerInputs, TrainedRanker, predict_in_batches
from training.registry import PromotionError, promote_if_better
from training.tracking import (
    TrainedRun,
    describe_lineage,
    describe_refit,
    load_test_answers,
    log_keras_model,
    log_test_answers,
    log_training_config,
    name_run,
    read_git_commit,
    read_live_data,
    use_experiment,
)


def load_ranker_inputs(paths: Paths, user_fraction: float = 1.0, refit: bool = False) -> RankerInputs:
    """The gated split (a seeded sample of users when user_fraction < 1), encoded with the training part's encoder;
    for a refit, every example is training."""
    data = load_ranking_data(paths, user_fraction, refit=refit)
    encoder = FeatureEncoder.fit(data.train, data.movie_ids, data.genres)
    frames = {split: getattr(data, split) for split in SPLITS}
    return RankerInputs(data, encoder, {split: encoder.encode(frame) for split, frame in frames.items()},
                        {split: frame[LABEL].to_numpy() for split, frame in frames.items()}, refit)


def log_curves(labels: np.ndarray, scores: np.ndarray, history: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    from sklearn.metrics import precision_recall_curve, roc_curve

    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(10, 4))
    false_positive, true_positive, _ = roc_curve(labels, scores)
    roc_axis.plot(false_positive, true_positive)
    roc_axis.plot([0, 1], [0, 1], linestyle="--", color="grey")
    roc_axis.set(title="ROC (test)", xlabel="false positive rate", ylabel="true positive rate")
    precision, recall, _ = precision_recall_curve(labels, scores)
    pr_axis.plot(recall, precision)
    pr_axis.set(title="Precision-recall (test)", xlabel="recall", ylabel="precision")
    mlflow.log_figure(figure, "plots/roc_pr_test.png")
    plt.close(figure)
    if history:
        figure, axis = plt.subplots(figsize=(5, 4))
        for name, values in history.items():
            axis.plot(range(1, len(values) + 1), values, label=name)
        axis.set(title="Training curves", xlabel="epoch")
        axis.legend()
        mlflow.log_figure(figure, "plots/training_curves.png")
        plt.close(figure)


def train_ranker(entry: ModelEntry, params, paths: Paths, user_fraction: float = 1.0, verbose: int = 0,
                 gate: bool = True) -> TrainedRun:
    """Train one ranker of the catalogue on the train split, score validation and test, log it all to MLflow;
    register it if its entry competes and, unless gate is False (rankers trained in parallel are gated later, one at
    a time), run the champion gate."""
    import mlflow

    module = import_module(entry.module)
    inputs = load_ranker_inputs(paths, user_fraction)
    lineage = describe_lineage(paths)
    data_version = lineage["data_version"]
    use_experiment(entry.kind.experiment)
    with mlflow.start_run(run_name=name_run(entry.name, lineage)) as run:
        # Runs compare only on the same test set: the same marts and the same sample of users.
        mlflow.set_tags({**lineage, MODEL_TAG: entry.name, "baseline": str(entry.baseline).lower(),
                         "feature_service": RANKER_SERVICE, "git_commit": read_git_commit(),
                         TEST_SET_TAG: f"{data_version}:test:users={user_fraction}"})
        mlflow.log_params({"model": entry.name, "user_fraction": user_fraction,
                           "train_examples": len(inputs.data.train), **read_live_data(paths.marts), **asdict(params)})
        started = time.perf_counter()
        trained = module.train(inputs, params, verbose)
        train_seconds = time.perf_counter() - started
        if trained.history:
            mlflow.log_metric("epochs_run", trained.epochs_run)
            for epoch in range(trained.epochs_run):
                mlflow.log_metrics({name: float(values[epoch]) for name, values in trained.history.items()},
                                   step=epoch + 1)
        scores = {split: trained.score(split) for split in ("validation", "test")}
        metrics = {f"{split}_{name}": value for split in scores
                   for name, value in score_ranker(inputs.labels[split], scores[split]).items()}
        examples_per_second = len(inputs.data.train) * trained.epochs_run / train_seconds
        mlflow.log_metrics({**metrics, "train_seconds": train_seconds,
                            "train_examples_per_second": examples_per_second})
        log_curves(inputs.labels["test"], scores["test"], trained.history)
        answers = describe_test_examples(inputs.data.test, scores["test"])
        log_test_answers(answers)
        mlflow.log_dict(inputs.encoder.to_dict(), ENCODER_ARTIFACT)
        log_training_config(entry.name, params, trained.refit_overrides, user_fraction)
        version = decision = None
        if entry.registered:
            version, decision = register_ranker(entry, trained, inputs, answers, gate)
    return TrainedRun(entry.name, run.info.run_id, metrics, train_seconds, examples_per_second, version, decision)


def refit_ranker(entry: ModelEntry, params, paths: Paths, user_fraction: float, evaluated_version,
                 verbose: int = 0) -> TrainedRun:
    """Train an evaluated ranker's configuration (params with what validation chose) on every example of the same
    users, log it as a refit run (no held-out figures: there is nothing held out) and register it, ungated."""
    import mlflow

    module = import_module(entry.module)
    inputs = load_ranker_inputs(paths, user_fraction, refit=True)
    lineage = describe_lineage(paths)
    use_experiment(entry.kind.experiment)
    with mlflow.start_run(run_name=f"{name_run(entry.name, lineage)} · refit") as run:
        mlflow.set_tags({**lineage, MODEL_TAG: entry.name, "feature_service": RANKER_SERVICE,
                         "git_commit": read_git_commit(), **describe_refit(evaluated_version)})
        mlflow.log_params({"model": entry.name, "user_fraction": user_fraction,
                           "train_examples": len(inputs.data.train), **read_live_data(paths.marts), **asdict(params)})
        started = time.perf_counter()
        trained = module.train(inputs, params, verbose)
        train_seconds = time.perf_counter() - started
        for epoch, loss in enumerate((trained.history or {}).get("loss", []), start=1):
            mlflow.log_metric("loss", float(loss), step=epoch)
        mlflow.log_metrics({"epochs_run": trained.epochs_run, "train_seconds": train_seconds})
        mlflow.log_dict(inputs.encoder.to_dict(), ENCODER_ARTIFACT)
        version = log_registered_ranker(entry, trained, inputs.encoded["train"])
    return TrainedRun(entry.name, run.info.run_id, {}, train_seconds, None, version)


def predict_registered_ranker(version, test) -> np.ndarray:
    """A registered ranker version's scores, with its own encoder, of another run's test frame."""
    import mlflow

    model = mlflow.tensorflow.load_model(f"models:/{version.name}/{version.version}")
    encoder = FeatureEncoder.from_dict(mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{ENCODER_ARTIFACT}"))
    return predict_in_batches(model, encoder.encode(test))


# What names a test example: the point-in-time join returns the test frame in no fixed order.
EXAMPLE_KEY = ["user_id", "movie_id", "rated_at"]


def describe_test_examples(test, scores: np.ndarray) -> pd.DataFrame:
    """Each test example's score, by its key (the run's test answers the champion gate pairs)."""
    return pd.DataFrame({**{column: test[column].to_numpy() for column in EXAMPLE_KEY},
                         "label": test[LABEL].to_numpy(), "score": np.asarray(scores, dtype=float)})


def compare_rankers(candidate: pd.DataFrame, champion_version, test, metric: str,
                    same_test_set: bool) -> PairedDifference:
    """Candidate and champion on the same test examples: the AUC difference with a bootstrap interval over users (a
    user's examples stay together). The champion's scores are its own run's when it was tested on the same set, else
    it scores the candidate's test frame here (`test`, loaded only then: a callable)."""
    if metric != "auc":
        raise PromotionError(f"the ranker gate compares AUC, paired over users; the catalogue asks for {metric}")
    champion = load_test_answers(champion_version.run_id) if same_test_set else None
    if champion is None:
        frame = test()
        champion = describe_test_examples(frame, predict_registered_ranker(champion_version, frame))
    paired = candidate.merge(champion[[*EXAMPLE_KEY, "score"]], on=EXAMPLE_KEY, suffixes=("", "_champion"),
                             validate="one_to_one")
    if len(paired) != len(candidate):
        raise PromotionError(f"the champion's test answers cover {len(paired)} of the candidate's {len(candidate)} "
                             "examples: not the same test set")
    return compare_aucs(paired["score"].to_numpy(), paired["score_champion"].to_numpy(), paired["label"].to_numpy(),
                        paired["user_id"].to_numpy())


def log_registered_ranker(entry: ModelEntry, trained: TrainedRanker, encoded: dict[str, np.ndarray]) -> str:
    """Log the Keras model with signature and input example (from `encoded`) and register it; return its version."""
    import mlflow
    from mlflow.models import infer_signature

    if trained.keras_model is None:
        raise CatalogueError(f"{entry.name}: `registered = true` in the catalogue, but {entry.module}.train returned "
                             "no Keras model to register")
    example = {name: values[:5] for name, values in encoded.items()}
    signature = infer_signature(example, predict_in_batches(trained.keras_model, example))
    info = log_keras_model(trained.keras_model, "model", example, signature, entry.kind.registered_model)
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_model_version_tag(entry.kind.registered_model, version, MODEL_TAG, entry.name)
    return version


def register_ranker(entry: ModelEntry, trained: TrainedRanker, inputs: RankerInputs, answers: pd.DataFrame,
                    gate: bool = True) -> tuple[str, str | None]:
    """Log and register the Keras model, and run the champion gate (a champion tested on other data is re-scored on
    this run's test set first)."""
    import mlflow

    version = log_registered_ranker(entry, trained, inputs.encoded["test"])
    if not gate:
        return version, None
    metric = entry.kind.gate_metric
    decision = promote_if_better(mlflow.MlflowClient(), entry.kind.registered_model, version, metric,
                                 lambda champion, same: compare_rankers(answers, champion, lambda: inputs.data.test,
                                                                        metric, same), entry.kind.gate_min_gain)
    return version, decision.describe()
