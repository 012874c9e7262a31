"""The statistics of the champion gate: a weighted AUC that agrees with sklearn's, and paired bootstrap intervals
that find a real difference and do not find one where there is none."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.metrics import bootstrap_users, compare_aucs, compare_user_means, resample_users, weighted_auc

pytestmark = pytest.mark.unit


def test_weighted_auc_is_sklearns_with_and_without_weights_ties_included():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)  # rounded: many ties
    weights = rng.integers(0, 4, 300).astype(float)
    assert weighted_auc(scores, labels, np.ones(300)) == pytest.approx(roc_auc_score(labels, scores))
    assert weighted_auc(scores, labels, weights) == pytest.approx(roc_auc_score(labels, scores,
                                                                                sample_weight=weights))


def test_weighted_auc_by_hand():
    # Positives 0.9 and 0.4, negatives 0.5 and 0.1: pairs won 1 + 1 + 0 + 1 = 3 of 4.
    assert weighted_auc(np.array([0.9, 0.4, 0.5, 0.1]), np.array([1, 1, 0, 0]), np.ones(4)) == 0.75


def test_each_resample_draws_every_user_slot_once():
    counts = resample_users(50, 200, seed=0)
    assert counts.shape == (200, 50) and (counts.sum(axis=1) == 50).all()


def synthetic_rankers(gap: float, users: int = 300, per_user: int = 20, seed: int = 0):
    """Each user's examples: labels, a champion's scores (signal + noise) and a candidate that adds `gap` of
    signal."""
    rng = np.random.default_rng(seed)
    user_ids = np.repeat(np.arange(users), per_user)
    labels = rng.integers(0, 2, len(user_ids))
    champion = labels * 0.5 + rng.normal(0, 1, len(user_ids))
    candidate = champion + labels * gap
    return candidate, champion, labels, user_ids


def test_a_ranker_with_more_signal_wins_and_an_identical_one_does_not():
    candidate, champion, labels, users = synthetic_rankers(gap=0.3)
    better = compare_aucs(candidate, champion, labels, users, resamples=300)
    assert better.low > 0 and better.candidate == pytest.approx(roc_auc_score(labels, candidate))
    assert better.champion == pytest.approx(roc_auc_score(labels, champion)) and better.users == 300
    same = compare_aucs(champion, champion, labels, users, resamples=300)
    assert same.low == same.high == same.difference == 0


def test_user_means_a_real_gain_is_found_and_noise_is_not():
    rng = np.random.default_rng(5)
    champion = rng.random(600)
    assert compare_user_means(champion + 0.02 + rng.normal(0, 0.05, 600), champion).low > 0
    noise = compare_user_means(champion + rng.normal(0, 0.05, 600), champion)
    assert noise.low < 0 < noise.high
    # The interval's width is about 2 x 1.96 x sd / sqrt(n) = 0.008 for sd 0.05 and 600 users.
    assert noise.high - noise.low == pytest.approx(2 * 1.96 * 0.05 / np.sqrt(600), rel=0.15)


def test_the_generic_user_bootstrap_gives_the_paired_gates_interval_for_a_difference_of_means():
    rng = np.random.default_rng(3)
    candidate, champion = rng.random(300), rng.random(300) * 0.9
    paired = compare_user_means(candidate, champion, resamples=500, seed=7)
    low, high = bootstrap_users(lambda weights: weights @ (candidate - champion) / len(candidate), 300, 500, seed=7)
    assert (low, high) == pytest.approx((paired.low, paired.high))


def test_the_user_bootstrap_of_a_constant_collapses_and_of_a_mean_covers_it():
    assert bootstrap_users(lambda weights: 0.25, 50) == (0.25, 0.25)
    values = np.random.default_rng(0).normal(1.0, 1.0, 400)
    low, high = bootstrap_users(lambda weights: weights @ values / weights.sum(), len(values))
    # The normal approximation's 95 % interval of the mean, by hand: mean ± 1.96 sd / sqrt(n).
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert (low, high) == pytest.approx((values.mean() - half, values.mean() + half), abs=0.03)
