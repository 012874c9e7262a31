"""Metrics against examples worked by hand."""

import math

import pytest

from training.metrics import score_ranker, score_retriever

pytestmark = pytest.mark.unit


def test_ranker_metrics_match_a_hand_worked_example():
    # Positives scored 0.9 and 0.4, negatives 0.6 and 0.2. Of the 4 positive-negative pairs, 3 are ordered
    # right (0.9>0.6, 0.9>0.2, 0.4>0.2): AUC = 3/4. Ranked by score: +, -, +, -; precision at each positive is
    # 1/1 and 2/3, so average precision = (1 + 2/3) / 2 = 5/6. Log loss = -(ln .9 + ln .4 + ln .4 + ln .8) / 4.
    metrics = score_ranker([1, 0, 1, 0], [0.9, 0.6, 0.4, 0.2])
    assert metrics["auc"] == pytest.approx(0.75)
    assert metrics["pr_auc"] == pytest.approx(5 / 6)
    assert metrics["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.4) + math.log(0.8)) / 4)


def test_retriever_metrics_match_a_hand_worked_example():
    recommended = {1: [3, 2, 1, 4], 2: [1, 2, 3, 4], 3: [9]}
    relevant = {1: {1, 3}, 2: {5}, 3: set()}  # user 3 has nothing held out: not evaluated
    metrics = score_retriever(recommended, relevant, catalogue_size=10, cutoffs=(2, 3))

    ideal_two = 1 + 1 / math.log2(3)
    # User 1 at K=2: hit at rank 1 only -> recall 1/2, DCG 1. User 2: nothing.
    assert metrics["recall_at_2"] == pytest.approx((0.5 + 0) / 2)
    assert metrics["ndcg_at_2"] == pytest.approx((1 / ideal_two + 0) / 2)
    assert metrics["hit_rate_at_2"] == pytest.approx(0.5)
    assert metrics["coverage_at_2"] == pytest.approx(len({3, 2, 1}) / 10)
    # User 1 at K=3: hits at ranks 1 and 3 -> recall 1, DCG 1 + 1/log2(4) = 1.5.
    assert metrics["recall_at_3"] == pytest.approx((1 + 0) / 2)
    assert metrics["ndcg_at_3"] == pytest.approx((1.5 / ideal_two + 0) / 2)
    assert metrics["coverage_at_3"] == pytest.approx(len({3, 2, 1}) / 10)


def test_a_user_without_recommendations_counts_as_misses():
    metrics = score_retriever({}, {7: {1}}, catalogue_size=5, cutoffs=(10,))
    assert metrics == {"recall_at_10": 0.0, "ndcg_at_10": 0.0, "hit_rate_at_10": 0.0, "coverage_at_10": 0.0}


def test_no_relevant_movie_at_all_is_an_error():
    with pytest.raises(ValueError, match="no user has a relevant movie"):
        score_retriever({1: [1]}, {1: set()}, catalogue_size=5)
