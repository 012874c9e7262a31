"""Rankers, one module per model (the catalogue, eaglerec/contracts/models.toml, names each). A ranker module has
`Params` (a frozen dataclass of its hyperparameters, logged to MLflow) and one entry point,
`train(inputs: RankerInputs, params, verbose) -> TrainedRanker`. The harness (training/ranking.py) gives every
ranker the same inputs and scores, logs and registers what it returns; blocks.py holds the shared Keras parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from training.data import RankingData

SPLITS = ("train", "validation", "test")
PREDICT_BATCH = 8192


@dataclass(frozen=True)
class RankerInputs:
    """What every ranker trains on: the gated split, the encoder fitted on its training part, each split encoded
    (feature name -> array) and labelled."""

    data: RankingData
    encoder: object  # eaglerec.contracts.encoding.FeatureEncoder
    encoded: dict[str, dict[str, np.ndarray]]
    labels: dict[str, np.ndarray]
    # A refit for serving: `train` holds every example (validation and test are empty), and a ranker trains with the
    # configuration validation chose for it (its `refit_overrides`), since nothing is left to stop early on.
    refit: bool = False

    @property
    def sizes(self) -> dict[str, int]:
        """Embedding table rows per vocabulary kind."""
        return {kind: self.encoder.vocabulary_size(kind) for kind in ("user", "movie", "genre")}


@dataclass(frozen=True)
class TrainedRanker:
    """A fitted ranker: `score(split)` gives P(label 1) for every event of a split. A Keras model, when there is one,
    is what gets registered; `history` holds its per-epoch metrics."""

    score: Callable[[str], np.ndarray]
    keras_model: object | None = None
    history: dict[str, list[float]] | None = None
    # What validation chose (e.g. the best epoch), as overrides of `Params`: a refit on all data trains with them.
    refit_overrides: dict = field(default_factory=dict)

    @property
    def epochs_run(self) -> int:
        return len(self.history["loss"]) if self.history else 1


def predict_in_batches(model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Score with a direct model call (not predict(): ~100x its overhead on small batches), batch by batch."""
    rows = len(next(iter(inputs.values())))
    parts = [np.asarray(model({name: values[start:start + PREDICT_BATCH] for name, values in inputs.items()}))
             for start in range(0, rows, PREDICT_BATCH)]
    return np.concatenate(parts).ravel()
