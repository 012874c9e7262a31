"""Turn feature frames into model inputs: ids and genres to vocabulary indexes (0 = unknown or missing), numerics
standardised with training statistics. The encoder is plain data (JSON) logged beside each model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from eaglerec.contracts.features import FEATURES, LOG_SCALED


@dataclass
class FeatureEncoder:
    """Vocabularies and numeric statistics learnt from the training split."""

    vocabularies: dict[str, list] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    stddevs: dict[str, float] = field(default_factory=dict)
    _lookups: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def fit(cls, train: pd.DataFrame, catalogue_movie_ids: list[int], genres: list[str]) -> FeatureEncoder:
        encoder = cls(vocabularies={"user": sorted(int(u) for u in train["user_id"].unique()),
                                    "movie": sorted(int(m) for m in catalogue_movie_ids),
                                    "genre": sorted(genres)})
        for feature in FEATURES:
            if feature.kind == "numeric":
                values = encoder.scale(feature.name, train[feature.name].astype(float))
                encoder.means[feature.name] = float(np.nanmean(values))
                encoder.stddevs[feature.name] = float(np.nanstd(values)) or 1.0
        return encoder

    @classmethod
    def fit_frames(cls, frames, catalogue_movie_ids: list[int], genres: list[str]) -> FeatureEncoder:
        """`fit` over the training split given in parts (streamed from parquet): one pass, memory of one part.
        Means and deviations come from sums in float64 (equal to `fit`'s within rounding)."""
        users: set[int] = set()
        numeric = [feature.name for feature in FEATURES if feature.kind == "numeric"]
        sums = {name: np.zeros(3) for name in numeric}  # count, sum, sum of squares of the non-missing values
        for frame in frames:
            users.update(frame["user_id"].unique().tolist())
            for name in numeric:
                values = cls.scale(name, frame[name].astype(float)).to_numpy()
                values = values[~np.isnan(values)]
                sums[name] += (len(values), values.sum(), np.square(values).sum())
        encoder = cls(vocabularies={"user": sorted(int(u) for u in users),
                                    "movie": sorted(int(m) for m in catalogue_movie_ids),
                                    "genre": sorted(genres)})
        for name, (count, total, squares) in sums.items():
            mean = total / count if count else float("nan")
            encoder.means[name] = float(mean)
            encoder.stddevs[name] = float(np.sqrt(max(squares / count - mean * mean, 0.0))) if count else 1.0
            encoder.stddevs[name] = encoder.stddevs[name] or 1.0
        return encoder

    def vocabulary_size(self, kind: str) -> int:
        """Rows of an embedding table for `kind`: the vocabulary plus index 0 for unknown or missing."""
        return len(self.vocabularies[kind]) + 1

    @staticmethod
    def scale(name: str, values: pd.Series) -> pd.Series:
        return np.log1p(values) if name in LOG_SCALED else values

    def encode(self, frame: pd.DataFrame, features=FEATURES) -> dict[str, np.ndarray]:
        """Return one array per feature (all of the spec unless given): int32 indexes for ids and genres, float32
        standardised numerics."""
        inputs = {}
        for feature in features:
            column = frame[feature.name]
            if feature.kind == "numeric":
                values = (self.scale(feature.name, column.astype(float)) - self.means[feature.name])
                values = values / self.stddevs[feature.name]
                # A missing statistic (no history yet) becomes the training mean.
                inputs[feature.name] = values.fillna(0.0).to_numpy(dtype=np.float32)
            else:
                # get_indexer gives -1 for unknown and missing values: +1 makes them index 0.
                inputs[feature.name] = (self.lookup(feature.kind).get_indexer(column) + 1).astype(np.int32)
        return inputs

    def encode_row(self, row: dict, features=FEATURES) -> dict[str, np.ndarray]:
        """`encode` for one row given as a dict (absent = missing), without pandas: serving's per-request path. A
        unit test checks it equals `encode`."""
        inputs = {}
        for feature in features:
            value = row.get(feature.name)
            missing = value is None or (isinstance(value, float) and np.isnan(value))
            if feature.kind == "numeric":
                if missing:
                    scaled = 0.0
                else:
                    value = float(np.log1p(value)) if feature.name in LOG_SCALED else float(value)
                    scaled = (value - self.means[feature.name]) / self.stddevs[feature.name]
                inputs[feature.name] = np.array([scaled], dtype=np.float32)
            else:
                index = 0 if missing else self.index_of(feature.kind).get(value, 0)
                inputs[feature.name] = np.array([index], dtype=np.int32)
        return inputs

    def index_of(self, kind: str) -> dict:
        """value -> vocabulary index (1-based) of a kind, built once."""
        key = f"dict:{kind}"
        if key not in self._lookups:
            self._lookups[key] = {value: index for index, value in enumerate(self.vocabularies[kind], start=1)}
        return self._lookups[key]

    def lookup(self, kind: str) -> pd.Index:
        """The vocabulary as a pandas Index (built once: serving encodes one user row per request)."""
        if kind not in self._lookups:
            self._lookups[kind] = pd.Index(self.vocabularies[kind])
        return self._lookups[kind]

    def to_dict(self) -> dict:
        return {"vocabularies": self.vocabularies, "means": self.means, "stddevs": self.stddevs}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureEncoder:
        return cls(**data)
