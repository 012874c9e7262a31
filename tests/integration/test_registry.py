"""The champion gate against a real MLflow tracking server and model registry: both ways on synthetic paired scores
whose answer is known (a real improvement, a worse model, noise, a gain below the minimum), and rollback."""

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from training.metrics import compare_user_means
from training.registry import CHALLENGER, CHAMPION, TEST_SET_TAG, PromotionError, promote_if_better, roll_back

pytestmark = pytest.mark.integration


class ConstantScorer(mlflow.pyfunc.PythonModel):
    """The smallest model the registry will hold."""

    def predict(self, context, model_input, params=None):
        return [0.5] * len(model_input)


@pytest.fixture
def client(tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri)


def register_version(name: str, test_auc: float, test_set: str = "marts-a") -> str:
    mlflow.set_experiment("registry-tests")
    with mlflow.start_run():
        mlflow.set_tag(TEST_SET_TAG, test_set)
        mlflow.log_metric("test_auc", test_auc)
        info = mlflow.pyfunc.log_model(name="model", python_model=ConstantScorer(), pip_requirements=[],
                                       registered_model_name=name)
    return str(info.registered_model_version)


def alias_of(client, name: str, alias: str) -> str:
    return client.get_model_version_by_alias(name, alias).version


def paired(shift: float, noise: float = 0.02, users: int = 500, seed: int = 1):
    """A compare function for the gate: per-user scores of a champion (0.3 ± 0.1) and of a candidate `shift` above it
    with independent per-user noise; the known answer is whether shift clears the interval."""
    rng = np.random.default_rng(seed)
    champion = rng.normal(0.3, 0.1, users)
    candidate = champion + shift + rng.normal(0, noise, users)
    return lambda champion_version, same_test_set: compare_user_means(candidate, champion)


def test_the_champion_moves_only_when_the_interval_of_the_difference_is_above_zero(client, request):
    name = f"ranker-{request.node.name[:20]}"
    first = register_version(name, 0.70)
    assert promote_if_better(client, name, first, "auc", paired(0.0)).promoted  # the first champion
    assert alias_of(client, name, CHAMPION) == first

    # Worse, and equal within noise: both become challenger, the interval recorded.
    worse = register_version(name, 0.65)
    decision = promote_if_better(client, name, worse, "auc", paired(-0.05))
    assert not decision.promoted and decision.comparison.high < 0
    assert alias_of(client, name, CHAMPION) == first and alias_of(client, name, CHALLENGER) == worse
    noise = register_version(name, 0.7001)
    decision = promote_if_better(client, name, noise, "auc", paired(0.0))
    assert not decision.promoted and decision.comparison.low < 0 < decision.comparison.high
    tags = client.get_model_version(name, noise).tags
    low, high = (float(value) for value in tags["promotion_interval"].strip("[]").split(","))
    assert (low, high) == pytest.approx((decision.comparison.low, decision.comparison.high), abs=1e-6)
    assert "not wholly above 0: it becomes challenger" in tags["promotion_decision"]

    better = register_version(name, 0.80)
    decision = promote_if_better(client, name, better, "auc", paired(0.05))
    assert decision.promoted and decision.comparison.low > 0 and alias_of(client, name, CHAMPION) == better
    tags = client.get_model_version(name, better).tags
    assert tags["promotion_champion_version"] == first
    assert float(tags["promotion_champion_score"]) == pytest.approx(decision.comparison.champion)
    assert "beats champion" in tags["promotion_decision"] and "% interval [+0.0" in tags["promotion_decision"]
    description = client.get_model_version(name, better).description
    assert "test auc 0.8000" in description and tags["promotion_decision"] in description
    metrics = client.get_run(client.get_model_version(name, better).run_id).data.metrics
    assert metrics["champion_difference_low_auc"] == pytest.approx(decision.comparison.low)


def test_a_minimum_gain_keeps_a_small_sure_improvement_out(client, request):
    name = f"ranker-{request.node.name[:20]}"
    first = register_version(name, 0.70)
    promote_if_better(client, name, first, "auc", paired(0.0))
    small = register_version(name, 0.71)
    # +0.01 with little noise: surely above 0, surely below a required gain of 0.02.
    decision = promote_if_better(client, name, small, "auc", paired(0.01, noise=0.001), min_gain=0.02)
    assert not decision.promoted and decision.comparison.low > 0 and decision.comparison.high < 0.02
    assert promote_if_better(client, name, small, "auc", paired(0.01, noise=0.001)).promoted


def test_the_gate_tells_compare_whether_the_champion_was_tested_on_the_same_data(client, request):
    name = f"ranker-{request.node.name[:20]}"
    first = register_version(name, 0.90, test_set="marts-a")
    promote_if_better(client, name, first, "auc", paired(0.0))
    seen = []
    for test_set in ("marts-a", "marts-b"):
        candidate = register_version(name, 0.75, test_set=test_set)
        promote_if_better(client, name, candidate, "auc",
                          lambda champion, same: seen.append((champion.version, same)) or paired(-0.1)(champion, same))
    assert seen == [(first, True), (first, False)]


def test_a_rollback_gives_champion_back_to_the_previous_one_or_a_named_version_and_records_why(client, request):
    name = f"ranker-{request.node.name[:20]}"
    first = register_version(name, 0.70)
    promote_if_better(client, name, first, "auc", paired(0.0))
    second = register_version(name, 0.80)
    promote_if_better(client, name, second, "auc", paired(0.1))
    third = register_version(name, 0.60)
    promote_if_better(client, name, third, "auc", paired(-0.2))  # worse: challenger, never champion
    assert (alias_of(client, name, CHAMPION), alias_of(client, name, CHALLENGER)) == (second, third)

    done = roll_back(client, name, "AUC fell online")
    assert (done.from_version, done.to_version) == (second, first) and alias_of(client, name, CHAMPION) == first
    assert "AUC fell online" in client.get_model_version(name, first).tags["rollback"]
    assert client.get_model_version(name, second).tags["rolled_back"] == done.record

    # A named version, even the challenger: it stops being the challenger (one version, one side of the A/B test).
    assert roll_back(client, name, "try it", to_version=third).to_version == third
    assert alias_of(client, name, CHAMPION) == third and CHALLENGER not in client.get_registered_model(name).aliases
    # The default goes to the latest earlier champion: second (v2 < v3 and was champion).
    assert roll_back(client, name, "back").to_version == second
    with pytest.raises(PromotionError, match="already the champion"):
        roll_back(client, name, "again", to_version=second)
    with pytest.raises(PromotionError, match="has no version 99"):
        roll_back(client, name, "nowhere", to_version="99")


def test_a_rollback_without_an_earlier_champion_says_what_to_do(client, request):
    name = f"ranker-{request.node.name[:20]}"
    with pytest.raises(PromotionError, match="no champion"):
        roll_back(client, name, "nothing yet")
    only = register_version(name, 0.70)
    promote_if_better(client, name, only, "auc", paired(0.0))
    with pytest.raises(PromotionError, match="name the version to serve with --to N"):
        roll_back(client, name, "no earlier")
