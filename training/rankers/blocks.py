"""What the Keras rankers share: their hyperparameters, functional building blocks reading the feature spec, and the
training loop (early stopping on validation AUC). Each ranker is P(rating >= 3.5 | user, movie, as-of features)."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers, ops

from eaglerec.contracts.features import FEATURES, NUMERIC
from training.rankers import RankerInputs, TrainedRanker, predict_in_batches

CATEGORICAL = tuple(feature for feature in FEATURES if feature.kind != "numeric")


@dataclass(frozen=True)
class RankerParams:
    """What a Keras ranker is; logged to MLflow with every run."""

    embedding_dim: int = 16
    hidden_units: tuple[int, ...] = (128, 64)
    attention_units: tuple[int, ...] = (36,)
    dropout: float = 0.1
    learning_rate: float = 1e-3
    batch_size: int = 512
    # At most this many epochs; training stops once validation AUC has not improved for `patience` epochs.
    epochs: int = 10
    patience: int = 1
    wide_bins: int = 10_000


# The tuning search space every Keras ranker shares (`eaglerec tune`); hidden layers as text, Optuna's choices being
# plain values. Epochs stay the maximum: early stopping on validation picks the epoch inside each trial.
HIDDEN_UNITS = {"64": (64,), "128,64": (128, 64), "256,128": (256, 128), "256,128,64": (256, 128, 64)}


def suggest_params(trial) -> dict:
    return {"embedding_dim": trial.suggest_categorical("embedding_dim", [8, 16, 32]),
            "hidden_units": HIDDEN_UNITS[trial.suggest_categorical("hidden_units", list(HIDDEN_UNITS))],
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "learning_rate": trial.suggest_float("learning_rate", 3e-4, 3e-3, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [256, 512, 1024])}


def build_inputs() -> dict[str, keras.KerasTensor]:
    return {feature.name: keras.Input(shape=(), name=feature.name,
                                      dtype="float32" if feature.kind == "numeric" else "int32")
            for feature in FEATURES}


def build_tables(sizes: dict[str, int], dim: int, prefix: str = "") -> dict[str, layers.Embedding]:
    """One embedding table per kind, shared by every feature of that kind (movie_id and liked movies share movies)."""
    return {kind: layers.Embedding(size, dim, name=f"{prefix}{kind}_embedding") for kind, size in sizes.items()}


def stack_numeric(inputs) -> keras.KerasTensor:
    return ops.stack([inputs[feature.name] for feature in NUMERIC], axis=1)


def build_mlp(x, units: tuple[int, ...], dropout: float, name: str):
    for index, width in enumerate(units):
        x = layers.Dense(width, activation="relu", name=f"{name}_dense_{index}")(x)
        x = layers.Dropout(dropout, name=f"{name}_dropout_{index}")(x)
    return x


def build_deep_score(x, params: RankerParams):
    """The MLP tower and its sigmoid output."""
    hidden = build_mlp(x, params.hidden_units, params.dropout, "deep")
    return layers.Dense(1, activation="sigmoid", name="score")(hidden)


def embed_categorical(inputs, tables) -> list:
    return [tables[feature.kind](inputs[feature.name]) for feature in CATEGORICAL]


def compile_ranker(model: keras.Model, params: RankerParams) -> keras.Model:
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc"), keras.metrics.AUC(curve="PR", name="pr_auc")])
    return model


def fit_keras_ranker(model: keras.Model, inputs: RankerInputs, params: RankerParams, verbose: int = 0
                     ) -> TrainedRanker:
    """Fit a compiled ranker on the training split; stop when validation AUC stops improving and keep the best
    epoch (tuned on validation, never on test), which a refit on all data then trains for."""
    def score(split: str):
        return predict_in_batches(model, inputs.encoded[split])

    if inputs.refit:
        fitted = model.fit(inputs.encoded["train"], inputs.labels["train"], batch_size=params.batch_size,
                           epochs=params.epochs, verbose=verbose)
        return TrainedRanker(score=score, keras_model=model, history=fitted.history)
    stopping = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=params.patience,
                                             restore_best_weights=True)
    validation = (inputs.encoded["validation"], inputs.labels["validation"])
    fitted = model.fit(inputs.encoded["train"], inputs.labels["train"], batch_size=params.batch_size,
                       epochs=params.epochs, validation_data=validation, verbose=verbose, callbacks=[stopping])
    return TrainedRanker(score=score, keras_model=model, history=fitted.history,
                         refit_overrides={"epochs": stopping.best_epoch + 1})
