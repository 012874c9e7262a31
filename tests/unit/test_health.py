"""Monitoring's measures on data where the answer is known: PSI by hand, drift found when the data shifts and not
when it does not, the skew comparison's notion of equal."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitoring.health import measure_drift, population_stability_index, same_value


def test_psi_by_hand_on_two_bins_and_on_categories():
    expected = np.array([0.0] * 50 + [1.0] * 50)
    actual = np.array([0.0] * 80 + [1.0] * 20)
    # Two bins (edges 0, 0.5, 1): shares (0.5, 0.5) against (0.8, 0.2).
    by_hand = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert population_stability_index(expected, actual, edges=np.array([0.0, 0.5, 1.0])) == pytest.approx(by_hand)
    genres = population_stability_index(np.array(["a", "a", "b", "b"]), np.array(["a", "a", "a", "b"]))
    assert genres == pytest.approx((0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5))
    assert population_stability_index(expected, expected) == pytest.approx(0.0)


def events(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame({
        "rating": np.clip(np.round((rng.normal(3.5 + shift, 1.0, n)) * 2) / 2, 0.5, 5.0),
        "release_year": rng.normal(1995 + 10 * shift, 10, n).round(),
        "movie_popularity": rng.exponential(2 + 2 * shift, n),
        "primary_genre": rng.choice(["Drama", "Comedy", "Action"], n, p=[0.5, 0.3, 0.2] if not shift else
                                    [0.2, 0.3, 0.5]),
    })


def test_drift_is_found_in_shifted_data_and_not_in_a_sample_of_the_same():
    rng = np.random.default_rng(5)
    train = events(rng, 20_000, 0.0)
    same = measure_drift(train, events(rng, 2_000, 0.0)).set_index("feature")
    shifted = measure_drift(train, events(rng, 2_000, 1.0)).set_index("feature")
    assert (same["psi"] < 0.05).all() and (same["ks_p_value"].dropna() > 0.001).all()
    assert (shifted["psi"] > 0.25).all() and (shifted["ks_p_value"].dropna() < 1e-6).all()


@pytest.mark.parametrize(("online", "offline", "equal"), [
    (3.5, 3.5000000001, True), (3.5, 3.6, False), (None, float("nan"), True), (None, 3.0, False),
    ([1, 2], np.array([1, 2], dtype=np.int32), True), ([1, 2], np.array([2, 1]), False), ([], None, True),
    ("Drama", "Drama", True), ("Drama", None, False), (7, 7, True),
])
def test_skew_compares_values_as_the_two_stores_hold_them(online, offline, equal):
    assert same_value(online, offline) is equal
