"""The training harness: train a ranker or baseline on the split, evaluate it, log everything to MLflow, and
register deep rankers behind the champion gate."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from eaglerec.settings import Paths
from training.data import load_ranking_data
from training.encoding import FeatureEncoder
from training.feature_spec import FEATURE_SERVICE, LABEL
from training.metrics import score_ranker
from training.registry import TEST_SET_TAG, promote_if_better
from training.tracking import hash_data_version, read_git_commit

RANKER_MODEL_NAME = "eaglerec-ranker"
RANKER_EXPERIMENT = "eaglerec-rankers"
BASELINES = ("popularity", "logistic_regression")
DEEP_RANKERS = ("embedding_mlp", "wide_and_deep", "neural_cf", "deepfm", "din")
# What the logged model needs to load; given explicitly because inferring it re-imports TensorFlow (~30 s).
MODEL_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "keras==3.15.1"]
PREDICT_BATCH = 8192


@dataclass(frozen=True)
class RankerRun:
    model: str
    run_id: str
    metrics: dict[str, float]
    train_seconds: float
    examples_per_second: float
    version: str | None = None
    decision: str | None = None


def predict_in_batches(model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Score with a direct model call (not predict(): ~100x its overhead on small batches), batch by batch."""
    rows = len(next(iter(inputs.values())))
    parts = [np.asarray(model({name: values[start:start + PREDICT_BATCH] for name, values in inputs.items()}))
             for start in range(0, rows, PREDICT_BATCH)]
    return np.concatenate(parts).ravel()


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


def train_ranker(model_name: str, paths: Paths | None = None, params=None, user_fraction: float = 1.0,
                 verbose: int = 0, gate: bool = True) -> RankerRun:
    """Train one ranker or baseline on the train split, score validation and test, log it all to MLflow; register a
    deep ranker and, unless gate is False (rankers trained in parallel are gated later, one at a time), run the
    champion gate."""
    import keras
    import mlflow

    from training.rankers import RANKER_BUILDERS, RankerParams

    if model_name not in (*DEEP_RANKERS, *BASELINES):
        raise ValueError(f"model {model_name!r}: expected one of {', '.join((*DEEP_RANKERS, *BASELINES))}")
    paths = paths or Paths.from_env()
    params = params or RankerParams()
    data = load_ranking_data(paths, user_fraction)
    encoder = FeatureEncoder.fit(data.train, data.movie_ids, data.genres)
    inputs = {split: encoder.encode(getattr(data, split)) for split in ("train", "validation", "test")}
    labels = {split: getattr(data, split)[LABEL].to_numpy() for split in ("train", "validation", "test")}
    data_version = hash_data_version(paths.marts)

    mlflow.set_experiment(RANKER_EXPERIMENT)
    with mlflow.start_run(run_name=model_name) as run:
        # Runs compare only on the same test set: the same marts and the same sample of users.
        test_set = f"{data_version}:test:users={user_fraction}"
        mlflow.set_tags({"model": model_name, "feature_service": FEATURE_SERVICE, "data_version": data_version,
                         "git_commit": read_git_commit(), TEST_SET_TAG: test_set})
        mlflow.log_params({"model": model_name, "user_fraction": user_fraction, "train_examples": len(data.train),
                           **(asdict(params) if model_name in DEEP_RANKERS else {})})
        started = time.perf_counter()
        history = None
        if model_name in DEEP_RANKERS:
            model = RANKER_BUILDERS[model_name]({kind: encoder.vocabulary_size(kind) for kind in ("user", "movie",
                                                                                                 "genre")}, params)
            # Stop when validation AUC stops improving and keep the best epoch: tuned on validation, never on test.
            stopping = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=params.patience,
                                                     restore_best_weights=True)
            fitted = model.fit(inputs["train"], labels["train"], batch_size=params.batch_size, epochs=params.epochs,
                               validation_data=(inputs["validation"], labels["validation"]), verbose=verbose,
                               callbacks=[stopping])
            history = fitted.history
            epochs_run = len(history["loss"])
            mlflow.log_metric("epochs_run", epochs_run)
            for epoch in range(epochs_run):
                mlflow.log_metrics({name: float(values[epoch]) for name, values in history.items()}, step=epoch + 1)

            def score(split):
                return predict_in_batches(model, inputs[split])
        else:
            from training.baselines import LogisticRegressionRanker, PopularityRanker

            baseline = (PopularityRanker().fit(data.train) if model_name == "popularity" else
                        LogisticRegressionRanker().fit(data.train, inputs["train"], len(data.genres)))

            def score(split):
                return baseline.predict(getattr(data, split), inputs[split])
        train_seconds = time.perf_counter() - started
        metrics = {}
        for split in ("validation", "test"):
            metrics.update({f"{split}_{name}": value for name, value in score_ranker(labels[split],
                                                                                    score(split)).items()})
        epochs_run = len(history["loss"]) if history else 1
        examples_per_second = len(data.train) * epochs_run / train_seconds
        mlflow.log_metrics({**metrics, "train_seconds": train_seconds,
                            "train_examples_per_second": examples_per_second})
        log_curves(labels["test"], score("test"), history)
        mlflow.log_dict(encoder.to_dict(), "feature_encoder.json")
        version = decision = None
        if model_name in DEEP_RANKERS:
            version, decision = register_ranker(model, inputs["test"], data.test, gate)
    return RankerRun(model_name, run.info.run_id, metrics, train_seconds, examples_per_second, version, decision)


def score_registered_ranker(version, test) -> float:
    """Return the test AUC of a registered ranker version, with its own encoder, on another run's test frame."""
    import mlflow

    model = mlflow.tensorflow.load_model(f"models:/{version.name}/{version.version}")
    encoder = FeatureEncoder.from_dict(mlflow.artifacts.load_dict(f"runs:/{version.run_id}/feature_encoder.json"))
    return score_ranker(test[LABEL].to_numpy(), predict_in_batches(model, encoder.encode(test)))["auc"]


def register_ranker(model, test_inputs: dict[str, np.ndarray], test, gate: bool = True) -> tuple[str, str | None]:
    """Log the Keras model with signature and input example, register it, and run the champion gate on AUC
    (a champion tested on other data is re-scored on this run's test set first)."""
    import mlflow
    from mlflow.models import infer_signature

    example = {name: values[:5] for name, values in test_inputs.items()}
    signature = infer_signature(example, predict_in_batches(model, example))
    info = mlflow.tensorflow.log_model(model, name="model", signature=signature, input_example=example,
                                       pip_requirements=MODEL_REQUIREMENTS, registered_model_name=RANKER_MODEL_NAME)
    version = str(info.registered_model_version)
    if not gate:
        return version, None
    decision = promote_if_better(mlflow.MlflowClient(), RANKER_MODEL_NAME, version, "auc",
                                 score_champion=lambda champion: score_registered_ranker(champion, test))
    return version, decision.describe()
