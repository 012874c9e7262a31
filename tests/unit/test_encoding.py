"""The feature encoder: hand-worked indexes and standardisation, and serving's one-row path equal to the frame path."""

import math

import numpy as np
import pandas as pd
import pytest

from eaglerec.contracts.encoding import FeatureEncoder
from eaglerec.contracts.features import FEATURES, USER_FEATURES

pytestmark = pytest.mark.unit


def make_encoder() -> FeatureEncoder:
    means = {f.name: 1.0 for f in FEATURES if f.kind == "numeric"}
    stddevs = {f.name: 2.0 for f in FEATURES if f.kind == "numeric"}
    return FeatureEncoder({"user": [7, 9], "movie": [1, 5, 296], "genre": ["Comedy", "Drama"]}, means, stddevs)


def test_ids_map_to_one_based_indexes_and_numerics_are_standardised():
    encoder = make_encoder()
    frame = pd.DataFrame({"user_id": [9, 8], "user_liked_movie_1": [296.0, np.nan], "user_genre_1": ["Drama", None],
                          "user_avg_rating": [4.0, np.nan], "user_rating_count": [math.e - 1, 0.0]})
    features = [f for f in USER_FEATURES if f.name in frame]
    encoded = encoder.encode(frame, features)
    assert encoded["user_id"].tolist() == [2, 0]  # 8 is unknown
    assert encoded["user_liked_movie_1"].tolist() == [3, 0]
    assert encoded["user_genre_1"].tolist() == [2, 0]
    np.testing.assert_allclose(encoded["user_avg_rating"], [(4.0 - 1) / 2, 0.0])
    np.testing.assert_allclose(encoded["user_rating_count"], [(1.0 - 1) / 2, (0.0 - 1) / 2])  # log1p(e - 1) = 1


def test_the_one_row_path_equals_the_frame_path():
    encoder = make_encoder()
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(50):
        row = {}
        for feature in USER_FEATURES:
            if rng.random() < 0.2:
                continue  # absent
            if feature.kind == "numeric":
                row[feature.name] = float(rng.uniform(0, 100))
            elif feature.kind == "genre":
                row[feature.name] = str(rng.choice(["Comedy", "Drama", "Horror"]))
            else:
                row[feature.name] = int(rng.choice([1, 5, 7, 9, 296, 1000]))
        rows.append(row)
    frame = pd.DataFrame(rows).reindex(columns=[f.name for f in USER_FEATURES])
    whole = encoder.encode(frame, USER_FEATURES)
    for position, row in enumerate(rows):
        one = encoder.encode_row(row, USER_FEATURES)
        for feature in USER_FEATURES:
            assert one[feature.name].dtype == whole[feature.name].dtype
            np.testing.assert_allclose(one[feature.name], whole[feature.name][position:position + 1], rtol=1e-6)


def test_fitting_on_parts_equals_fitting_on_the_whole_frame():
    # Hand-checked on one column: user_avg_rating 2, 4, NaN, 6 over two parts -> mean 4, population deviation
    # sqrt(8/3); and on random columns against fit() on the concatenated frame (NaNs, log-scaled counts).
    rng = np.random.default_rng(5)
    columns = {f.name: rng.uniform(0, 50, 40) for f in FEATURES if f.kind == "numeric"}
    frame = pd.DataFrame({"user_id": rng.integers(1, 9, 40), **columns})
    frame.loc[[3, 17, 30], "movie_avg_rating"] = np.nan
    frame.loc[:3, "user_avg_rating"] = [2.0, 4.0, np.nan, 6.0]
    parts = [frame.iloc[:2], frame.iloc[2:4], frame.iloc[4:]]
    hand = FeatureEncoder.fit_frames([parts[0], parts[1]], [1, 5], ["Drama"])
    assert hand.means["user_avg_rating"] == pytest.approx(4.0)
    assert hand.stddevs["user_avg_rating"] == pytest.approx(math.sqrt(8 / 3))
    whole, streamed = FeatureEncoder.fit(frame, [5, 1], ["Drama"]), FeatureEncoder.fit_frames(parts, [5, 1], ["Drama"])
    assert streamed.vocabularies == whole.vocabularies
    assert streamed.means == pytest.approx(whole.means, rel=1e-12)
    assert streamed.stddevs == pytest.approx(whole.stddevs, rel=1e-9)
