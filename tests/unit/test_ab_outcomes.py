"""A/B outcomes: hits and mean ratings by hand on a tiny log, intervals against scipy's bootstrap, verdicts both ways
on synthetic traffic where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from eaglerec.event_log import ImpressionLog, LoggedRating, RatingLog
from monitoring.ab_outcomes import bootstrap_ratio, build_ab_report, join_outcomes, summarise_variants

T = 1_764_000_000.0
HOUR = 3600.0


def impression(request_id: str, user: int, variant: str, at: float, movies: list[int]) -> dict:
    return {"request_id": request_id, "served_at": at, "user_id": user, "variant": variant, "experiment": "ab",
            "items": [{"movie_id": m, "position": n + 1, "score": 1.0, "source": "retriever"}
                      for n, m in enumerate(movies)]}


def test_hits_and_mean_ratings_by_hand_on_a_tiny_log(tmp_path):
    impressions = ImpressionLog(tmp_path)
    for row in (impression("r1", 1, "champion", T, [10, 11]),  # user 1 rates 10 (4.0) an hour later: hit
                impression("r2", 1, "champion", T + 10 * HOUR, [12]),  # 12 rated 2.0: rated, no hit
                impression("r3", 2, "champion", T, [10]),  # rated 5.0 after the 24 h window: nothing
                impression("r4", 3, "challenger", T, [20]),  # rated 3.5 three days later, naming r4: hit
                impression("r5", 3, "challenger", T, [21])):  # 21 rated before the impression: nothing
        impressions.record(row)
    impressions.flush()
    log = RatingLog(tmp_path)
    for key, user, movie, rating, logged_at, request_id in (
            ("a", 1, 10, 4.0, T + HOUR, None), ("b", 1, 12, 2.0, T + 11 * HOUR, None),
            ("c", 2, 10, 5.0, T + 30 * HOUR, None), ("d", 3, 20, 3.5, T + 72 * HOUR, "r4"),
            ("e", 3, 21, 5.0, T - HOUR, None), ("f", 1, 99, 5.0, T + HOUR, None)):  # 99 was never shown
        log.append(LoggedRating(key, user, movie, rating, int(logged_at), logged_at, request_id))

    report = build_ab_report(tmp_path, window_hours=24)
    rows = report.table.set_index("variant")
    assert rows.loc["champion", ["users", "impressions", "hits", "rated_shown"]].tolist() == [2, 3, 1, 2]
    assert rows.loc["champion", "hit_rate"].value == pytest.approx(1 / 3)
    assert rows.loc["champion", "mean_rating"].value == pytest.approx((4.0 + 2.0) / 2)
    assert rows.loc["challenger", ["users", "impressions", "hits", "rated_shown"]].tolist() == [1, 2, 1, 1]
    assert rows.loc["challenger", "hit_rate"].value == pytest.approx(1 / 2)
    assert rows.loc["challenger", "mean_rating"].value == pytest.approx(3.5)
    assert "<td>challenger</td>" in report.to_html()
    assert report.verdicts["ab"]["verdict"] in ("challenger better", "challenger worse", "not yet significant")


def test_the_hit_rate_interval_matches_scipys_percentile_bootstrap():
    rng = np.random.default_rng(3)
    impressions = rng.integers(1, 6, size=300).astype(float)
    hits = rng.binomial(impressions.astype(int), 0.3).astype(float)
    ours = bootstrap_ratio(hits, impressions, np.random.default_rng(0), resamples=4000)
    low, high = np.percentile(ours, [2.5, 97.5])
    theirs = stats.bootstrap((hits, impressions), lambda h, n, axis: h.sum(axis=axis) / n.sum(axis=axis),
                             paired=True, vectorized=True, n_resamples=4000, method="percentile",
                             confidence_level=0.95, random_state=1).confidence_interval
    assert low == pytest.approx(theirs.low, abs=0.01) and high == pytest.approx(theirs.high, abs=0.01)


def synthetic_outcomes(champion_rate: float, challenger_rate: float, users: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for variant, rate in (("champion", champion_rate), ("challenger", challenger_rate)):
        for user in range(users):
            for _ in range(3):
                hit = bool(rng.random() < rate)
                rows.append({"experiment": "ab", "variant": variant, "user_id": f"{variant}-{user}", "hit": hit,
                             "rating_sum": 4.0 if hit else 0.0, "rated": int(hit)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("champion", "challenger", "verdict"), [
    (0.20, 0.35, "challenger better"),
    (0.35, 0.20, "challenger worse"),
    (0.30, 0.30, "not yet significant"),
])
def test_the_verdict_follows_the_interval_of_the_difference(champion, challenger, verdict):
    table, verdicts = summarise_variants(synthetic_outcomes(champion, challenger))
    assert verdicts["ab"]["verdict"] == verdict
    difference = verdicts["ab"]["difference"]
    assert difference.low < difference.value < difference.high
    assert abs(difference.value - (challenger - champion)) < 0.08  # 1,200 impressions a variant: within ~4 SE


def test_an_impression_without_later_ratings_counts_as_shown_and_missed():
    impressions = pd.DataFrame([impression("r1", 1, "champion", T, [10])])
    events = pd.DataFrame(columns=["user_id", "movie_id", "rating", "logged_at", "request_id"])
    outcomes = join_outcomes(impressions, events, 24)
    assert outcomes[["hit", "rated"]].values.tolist() == [[False, 0]]
