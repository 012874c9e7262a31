"""Baseline: a movie's training positives, calibrated to a probability by a one-feature logistic regression."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from eaglerec.contracts.features import LABEL
from training.rankers import RankerInputs, TrainedRanker


@dataclass(frozen=True)
class Params:
    """No hyperparameters."""


def count_features(positives: pd.Series, frame: pd.DataFrame) -> np.ndarray:
    """log1p of each event's movie's training positives, as a one-column matrix."""
    return np.log1p(frame["movie_id"].map(positives).fillna(0).to_numpy())[:, None]


def train(inputs: RankerInputs, params: Params, verbose: int = 0) -> TrainedRanker:
    from sklearn.linear_model import LogisticRegression

    train_frame = inputs.data.train
    positives = train_frame[train_frame[LABEL] == 1].groupby("movie_id").size()
    calibration = LogisticRegression().fit(count_features(positives, train_frame), train_frame[LABEL])
    return TrainedRanker(score=lambda split: calibration.predict_proba(
        count_features(positives, getattr(inputs.data, split)))[:, 1])
