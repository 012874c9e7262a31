"""Baseline: logistic regression on the encoded features (standardised numerics, one-hot genres)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.rankers import RankerInputs, TrainedRanker


@dataclass(frozen=True)
class Params:
    max_iter: int = 1000


def one_hot_features(encoded: dict[str, np.ndarray], genre_count: int) -> np.ndarray:
    numeric = [values[:, None] for values in encoded.values() if values.dtype == np.float32]
    one_hot = [np.eye(genre_count + 1, dtype=np.float32)[encoded[name]] for name in encoded if "genre" in name]
    return np.concatenate(numeric + one_hot, axis=1)


def train(inputs: RankerInputs, params: Params, verbose: int = 0) -> TrainedRanker:
    from sklearn.linear_model import LogisticRegression

    genre_count = len(inputs.data.genres)
    model = LogisticRegression(max_iter=params.max_iter).fit(
        one_hot_features(inputs.encoded["train"], genre_count), inputs.labels["train"])
    return TrainedRanker(score=lambda split: model.predict_proba(
        one_hot_features(inputs.encoded[split], genre_count))[:, 1])
