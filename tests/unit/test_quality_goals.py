"""The quality goals on hand-made test answers: which model is 'best' (validation decides), the figures against
sklearn and hand arithmetic, the verdicts."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from eaglerec.contracts.catalogue import QualityGoals
from training.goals import GoalCheck, check_ranking_goals, check_retrieval_goals

pytestmark = pytest.mark.unit

GOALS = QualityGoals("ease", 1.3, 0.10, 0.81, ("din", "wide_and_deep"))


def ranker_answers(scores, labels, users) -> pd.DataFrame:
    rows = len(scores)
    return pd.DataFrame({"user_id": users, "movie_id": np.arange(rows), "rated_at": np.zeros(rows, dtype=int),
                         "label": labels, "score": scores})


def test_the_best_ranker_is_chosen_on_validation_and_its_auc_is_sklearns():
    rng = np.random.default_rng(0)
    labels, users = rng.integers(0, 2, 400), np.repeat(np.arange(40), 10)
    good = labels + rng.normal(0, 0.8, 400)  # better on test...
    fair = labels + rng.normal(0, 1.5, 400)
    answers = {"run-din": ranker_answers(fair, labels, users), "run-wd": ranker_answers(good, labels, users)}
    # ...but DIN was better on validation: the goal reports DIN, not the test maximum.
    table = pd.DataFrame({"model": ["din", "wide_and_deep", "logistic_regression"], "val AUC": [0.80, 0.79, 0.99]})
    best, order = check_ranking_goals(GOALS, table, {"din": "run-din", "wide_and_deep": "run-wd"}, answers.__getitem__)
    assert best.measured.startswith("din") and best.value == pytest.approx(roc_auc_score(labels, fair))
    assert best.low < best.value < best.high and best.verdict == "not met"
    assert order.value == pytest.approx(roc_auc_score(labels, fair) - roc_auc_score(labels, good))
    assert order.high < 0 and order.verdict == "not met"


def test_the_retrieval_ratio_is_the_ratio_of_mean_recalls_on_the_same_users():
    users = np.arange(4)
    best = pd.DataFrame({"user_id": users, "recall_at_10": [0.5, 0.5, 0.0, 0.2], "ndcg_at_10": [1.0, 0.5, 0.0, 0.3]})
    ease = pd.DataFrame({"user_id": users, "recall_at_10": [0.2, 0.2, 0.1, 0.1], "ndcg_at_10": [0.3, 0.3, 0.1, 0.1]})
    table = pd.DataFrame({"model": ["two_tower", "item2vec", "ease"], "val Recall@10": [0.11, 0.10, 0.30]})
    ratio, ndcg = check_retrieval_goals(GOALS, table, {"two_tower": "a", "item2vec": "b", "ease": "c"},
                                        {"a": best, "b": ease, "c": ease}.__getitem__)
    assert ratio.value == pytest.approx(1.2 / 0.6) and ratio.verdict.startswith("met")
    assert ndcg.value == pytest.approx(0.45) and ndcg.measured == "two_tower"


def test_verdicts_say_whether_the_estimate_or_the_whole_interval_meets_the_goal():
    assert GoalCheck("g", "m", 0.1, 0.12, 0.11, 0.13).verdict == "met (the whole interval)"
    assert GoalCheck("g", "m", 0.1, 0.12, 0.09, 0.13).verdict == "met (the estimate; the interval reaches below)"
    assert GoalCheck("g", "m", 0.1, 0.08, 0.07, 0.11).verdict == "not met"
    assert GoalCheck("g", "needs runs", 0.1).verdict == "not measured"
