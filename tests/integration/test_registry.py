"""The champion gate against a real MLflow tracking server and model registry: both ways, and its refusals."""

import mlflow
import pytest
from mlflow import MlflowClient

from training.registry import CHALLENGER, CHAMPION, TEST_SET_TAG, PromotionError, promote_if_better

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
