"""Every ranker of the catalogue trains on a small slice through the real harness: MLflow server, registry, gate."""

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from eaglerec.contracts.catalogue import load_catalogue
from eaglerec.contracts.names import CHAMPION
from tests.conftest import assert_gate_followed_its_intervals
from training.train import train_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SLICE = 0.1  # of the users
SMALL = {"embedding_dim": 8, "hidden_units": (32,), "epochs": 2, "batch_size": 256}
RANKERS = load_catalogue().names("ranker")
REGISTERED = [name for name in RANKERS if load_catalogue().entry(name).registered]
RANKER_MODEL = load_catalogue().kinds["ranker"].registered_model


def small_params(name: str) -> dict:
    from training.train import accepted_params

    return {key: value for key, value in SMALL.items() if key in accepted_params(name)}


@pytest.fixture(scope="module")
def runs(built_paths, tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)
    return {name: train_model(name, built_paths, small_params(name), user_fraction=SLICE) for name in RANKERS}


def load_registered(version: str, run_id: str, client):
    from eaglerec.contracts.encoding import FeatureEncoder

    model = mlflow.tensorflow.load_model(f"models:/{RANKER_MODEL}/{version}")
    encoder = FeatureEncoder.from_dict(json.loads(Path(client.download_artifacts(run_id, "feature_encoder.json"))
                                                  .read_text()))
    return model, encoder


def test_every_run_logs_params_metrics_tags_plots_and_encoder(runs, tracking_uri):
    client = MlflowClient(tracking_uri)
    for name, outcome in runs.items():
        run = client.get_run(outcome.run_id)
        for split in ("validation", "test"):
            assert 0 < run.data.metrics[f"{split}_auc"] < 1 and run.data.metrics[f"{split}_log_loss"] > 0
        assert run.data.metrics["train_examples_per_second"] > 0
        assert run.data.tags["feature_service"] == "ranker_v1" and len(run.data.tags["data_version"]) == 16
        assert run.data.tags["git_commit"] and run.data.params["model"] == name == run.data.tags["model"]
        assert run.data.tags["baseline"] == str(load_catalogue().entry(name).baseline).lower()
        artifacts = {item.path for item in client.list_artifacts(outcome.run_id, "plots")}
        assert "plots/roc_pr_test.png" in artifacts
        encoder = json.loads(Path(client.download_artifacts(outcome.run_id, "feature_encoder.json")).read_text())
        assert len(encoder["vocabularies"]["movie"]) == 9_742
    for name in REGISTERED:
        history = MlflowClient(tracking_uri).get_metric_history(runs[name].run_id, "val_auc")
        assert [point.step for point in history] == [1, 2]


def test_the_catalogue_decides_what_is_registered_and_the_gate_follows_its_intervals(runs, tracking_uri):
    client = MlflowClient(tracking_uri)
    versions = {runs[name].version for name in REGISTERED}
    assert len(versions) == len(REGISTERED) and None not in versions
    assert all(runs[name].version is None for name in RANKERS if name not in REGISTERED)
    assert all(client.get_model_version(RANKER_MODEL, runs[name].version).tags["model"] == name for name in REGISTERED)
    assert_gate_followed_its_intervals(client, RANKER_MODEL, [runs[name].version for name in REGISTERED])


def test_a_registered_ranker_loads_back_and_scores_like_the_run(runs, built_paths, tracking_uri):
    from training.data import load_ranking_data
    from training.metrics import score_ranker
    from training.rankers import predict_in_batches

    outcome = runs["din"]
    model, encoder = load_registered(outcome.version, outcome.run_id, MlflowClient(tracking_uri))
    test = load_ranking_data(built_paths, SLICE).test
    rescored = score_ranker(test["label"], predict_in_batches(model, encoder.encode(test)))
    assert rescored["auc"] == pytest.approx(outcome.metrics["test_auc"], abs=1e-6)


def test_a_champion_tested_on_other_data_is_rescored_on_the_candidates_test_set(runs, built_paths, tracking_uri):
    from training.data import load_ranking_data
    from training.metrics import score_ranker
    from training.rankers import predict_in_batches

    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias(RANKER_MODEL, CHAMPION)
    other_slice = 0.05  # another sample of users: another test set
    outcome = train_model("embedding_mlp", built_paths, small_params("embedding_mlp"), user_fraction=other_slice)

    model, encoder = load_registered(champion.version, champion.run_id, client)
    test = load_ranking_data(built_paths, other_slice).test
    expected = score_ranker(test["label"], predict_in_batches(model, encoder.encode(test)))["auc"]

    tags = client.get_model_version(RANKER_MODEL, outcome.version).tags
    assert tags["promotion_champion_version"] == champion.version
    assert float(tags["promotion_champion_score"]) == pytest.approx(expected, abs=1e-6)
    logged = client.get_run(champion.run_id).data.metrics["test_auc"]
    assert float(tags["promotion_champion_score"]) != pytest.approx(logged)


def test_catalogue_params_and_overrides_reach_the_run_and_unknown_ones_are_refused(tracking_uri):
    from eaglerec.contracts.catalogue import CatalogueError
    from training.train import resolve_params

    entry = load_catalogue().entry("din")
    assert resolve_params(entry, {"hidden_units": [8, 4]}).hidden_units == (8, 4)
    with pytest.raises(CatalogueError, match="unknown parameter.*learning_rat"):
        resolve_params(entry, {"learning_rat": 0.1})
    with pytest.raises(CatalogueError, match="retrievers train on every user"):
        train_model("item2vec", user_fraction=0.5)
