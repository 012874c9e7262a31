"""The champion gate against a real MLflow tracking server and model registry: both ways, and its refusals."""

import mlflow
import pytest
from mlflow import MlflowClient

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


def test_the_champion_moves_only_to_a_strictly_better_version(client, request):
    name = f"ranker-{request.node.name[:20]}"
    first = register_version(name, 0.70)
    assert promote_if_better(client, name, first, "auc").promoted
    assert alias_of(client, name, CHAMPION) == first

    worse = register_version(name, 0.65)
    decision = promote_if_better(client, name, worse, "auc")
    assert not decision.promoted and decision.champion_score == pytest.approx(0.70)
    assert alias_of(client, name, CHAMPION) == first and alias_of(client, name, CHALLENGER) == worse

    tie = register_version(name, 0.70)
    assert not promote_if_better(client, name, tie, "auc").promoted

    better = register_version(name, 0.80)
    decision = promote_if_better(client, name, better, "auc")
    assert decision.promoted and alias_of(client, name, CHAMPION) == better
    tags = client.get_model_version(name, better).tags
    assert tags["promotion_champion_version"] == first and float(tags["promotion_champion_score"]) == 0.70
    assert "beats champion" in tags["promotion_decision"]
    description = client.get_model_version(name, better).description
    assert "test auc 0.8000" in description and tags["promotion_decision"] in description
    assert client.get_run(client.get_model_version(name, better).run_id).data.metrics["champion_test_auc"] == 0.70


def test_lower_is_better_metrics_compare_the_other_way(client, request):
    name = f"ranker-{request.node.name[:20]}"
    first = register_version(name, 0.60)
    promote_if_better(client, name, first, "auc", higher_is_better=False)
    lower = register_version(name, 0.50)
    assert promote_if_better(client, name, lower, "auc", higher_is_better=False).promoted


def test_a_champion_from_another_test_set_is_rescored_or_the_gate_refuses(client, request):
    name = f"ranker-{request.node.name[:20]}"
    first = register_version(name, 0.90, test_set="marts-a")
    promote_if_better(client, name, first, "auc")
    candidate = register_version(name, 0.75, test_set="marts-b")

    with pytest.raises(PromotionError, match="re-score the champion"):
        promote_if_better(client, name, candidate, "auc")
    assert alias_of(client, name, CHAMPION) == first

    decision = promote_if_better(client, name, candidate, "auc", score_champion=lambda champion: 0.72)
    assert decision.promoted and decision.champion_score == 0.72


def test_a_rollback_gives_champion_back_to_the_previous_one_or_a_named_version_and_records_why(client, request):
    name = f"ranker-{request.node.name[:20]}"
    first = register_version(name, 0.70)
    promote_if_better(client, name, first, "auc")
    second = register_version(name, 0.80)
    promote_if_better(client, name, second, "auc")
    third = register_version(name, 0.60)
    promote_if_better(client, name, third, "auc")  # worse: challenger, never champion
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
    promote_if_better(client, name, only, "auc")
    with pytest.raises(PromotionError, match="name the version to serve with --to N"):
        roll_back(client, name, "no earlier")
