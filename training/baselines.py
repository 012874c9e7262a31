"""Baselines in the same harness as the deep rankers: popularity and logistic regression on the same features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.feature_spec import LABEL


class PopularityRanker:
    """Scores a movie by its training positives, calibrated to a probability by a one-feature logistic regression."""

    def fit(self, train: pd.DataFrame) -> PopularityRanker:
        from sklearn.linear_model import LogisticRegression

        self.positives = train[train[LABEL] == 1].groupby("movie_id").size()
        self.calibration = LogisticRegression().fit(self.features(train), train[LABEL])
        return self

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        return np.log1p(frame["movie_id"].map(self.positives).fillna(0).to_numpy())[:, None]

    def predict(self, frame: pd.DataFrame, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.calibration.predict_proba(self.features(frame))[:, 1]


class LogisticRegressionRanker:
    """Logistic regression on the encoded features: standardised numerics and one-hot genres."""

    def fit(self, train: pd.DataFrame, inputs: dict[str, np.ndarray], genre_count: int) -> LogisticRegressionRanker:
        from sklearn.linear_model import LogisticRegression

        self.genre_count = genre_count
        self.model = LogisticRegression(max_iter=1000).fit(self.features(inputs), train[LABEL])
        return self

    def features(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        numeric = [values[:, None] for name, values in inputs.items() if values.dtype == np.float32]
        genre_columns = [name for name in inputs if "genre" in name]
        one_hot = [np.eye(self.genre_count + 1, dtype=np.float32)[inputs[name]] for name in genre_columns]
        return np.concatenate(numeric + one_hot, axis=1)

    def predict(self, frame: pd.DataFrame, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.model.predict_proba(self.features(inputs))[:, 1]
