"""Refit for serving through the real harness and registry (bundled marts, a real MLflow server): the served versions
are trained again on all ratings with what validation chose, registered and linked both ways, never gated, and are
what the service loads. The REST chain test (test_orchestration.py) checks the recommender answers with the refit."""

import ast
import json
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from bentos.recommender.models import find_served, load_retriever
from eaglerec.contracts.catalogue import load_catalogue
from eaglerec.contracts.names import CHAMPION
from eaglerec.contracts.retrieval import UserState
from eaglerec.settings import Paths
from tests.conftest import own_tracking_server
from training.compare import compare_models
from training.promotion import promote, promote_pending
from training.refit import RefitError, refit_served, refit_version
from training.registry import PromotionError, roll_back
from training.retrieval import load_registered_retriever
from training.train import train_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KINDS = load_catalogue().kinds
RANKER_MODEL, RETRIEVER_MODEL = KINDS["ranker"].registered_model, KINDS["retriever"].registered_model
SLICE = 0.2


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """A registry of this module's own: which versions are served (and so refit) depends on every version before."""
    with own_tracking_server(tmp_path_factory, "mlflow_refit") as uri:
        yield uri


@pytest.fixture(scope="module")
def home(built_paths, tmp_path_factory) -> Paths:
    """A copy of the built marts: the last test changes their data version."""
    copied = Paths(tmp_path_factory.mktemp("refit") / "home")
    shutil.copytree(built_paths.marts, copied.marts)
    return copied


@pytest.fixture(scope="module")
def trained(home, tracking_uri):
    """NeuralCF (the first ranker: champion, and the latest of a serve_latest entry) on a slice, with room to stop
    early; most_popular then EASE as retrievers (EASE beats popularity surely: champion). Then `refit` as the deploy
    runs it, and the non-served most_popular by version."""
    mlflow.set_tracking_uri(tracking_uri)
    runs = {"neural_cf": train_model("neural_cf", home, {"embedding_dim": 8, "hidden_units": (16,), "epochs": 4,
                                                                "batch_size": 256}, user_fraction=SLICE),
            "most_popular": train_model("most_popular", home),
            "ease": train_model("ease", home, {"lambdas": (100.0, 500.0)})}
    served = refit_served(paths=home)
    popular = refit_version("retriever", runs["most_popular"].version, home)
    return {"runs": runs, "served": served, "popular": popular, "again": refit_served(paths=home)}


def test_each_served_version_is_refit_once_and_linked_both_ways(trained, tracking_uri):
    client = MlflowClient(tracking_uri)
    runs = trained["runs"]
    assert client.get_model_version_by_alias(RETRIEVER_MODEL, CHAMPION).version == runs["ease"].version
    assert sorted((refit.model, refit.evaluated_version) for refit in trained["served"]) == sorted(
        [("neural_cf", runs["neural_cf"].version), ("ease", runs["ease"].version)])
    assert trained["again"] == []  # nothing is refit twice
    for refit in [*trained["served"], trained["popular"]]:
        evaluated = client.get_model_version(refit.model_name, refit.evaluated_version)
        linked = client.get_model_version(refit.model_name, refit.refit_version)
        assert evaluated.tags["refit_version"] == linked.version and linked.tags["refit_of"] == evaluated.version
        assert linked.tags["model"] == refit.model and linked.run_id == refit.run_id
        run = client.get_run(refit.run_id)
        # A refit has nothing held out: no validation or test figure, no test set to be compared on.
        assert not [name for name in run.data.metrics if name.startswith(("test_", "validation_"))]
        assert "test_set" not in run.data.tags and run.data.tags["refit_of_run"] == evaluated.run_id


def test_the_ranker_refit_trains_the_best_validation_epoch_on_every_example_of_its_users(trained, home,
                                                                                         tracking_uri):
    client = MlflowClient(tracking_uri)
    evaluated_run = trained["runs"]["neural_cf"].run_id
    refit = next(refit for refit in trained["served"] if refit.model == "neural_cf")
    validation_auc = [metric.value for metric in sorted(client.get_metric_history(evaluated_run, "val_auc"),
                                                        key=lambda metric: metric.step)]
    run = client.get_run(refit.run_id)
    assert run.data.metrics["epochs_run"] == int(np.argmax(validation_auc)) + 1
    # Every example (train, validation and test) of the same seeded sample of users.
    examples = pd.read_parquet(home.marts / "rating_examples.parquet", columns=["user_id", "split"])
    users = examples["user_id"].drop_duplicates().sample(frac=SLICE, random_state=42)
    sampled = examples[examples["user_id"].isin(users)]
    assert int(run.data.params["train_examples"]) == len(sampled)
    assert int(client.get_run(evaluated_run).data.params["train_examples"]) == int((sampled["split"] == "train").sum())


def test_a_retriever_refit_learns_from_every_liked_movie(trained, home, tracking_uri):
    events = pd.read_parquet(home.marts / "rating_events.parquet")
    liked = events[events["label"] == 1]
    counts = {"all": liked["movie_id"].value_counts(), "train": liked[liked["split"] == "train"]["movie_id"]
              .value_counts()}
    popular = trained["popular"]
    nobody = UserState(None, ())
    for uri, which in ((f"models:/{RETRIEVER_MODEL}/{popular.refit_version}", "all"),
                       (f"models:/{RETRIEVER_MODEL}/{popular.evaluated_version}", "train")):
        top = load_registered_retriever(uri).retrieve(nobody, 20).movie_ids
        # The most liked movies of all ratings for the refit, of the training ones for the evaluated version.
        assert counts[which].reindex(top).tolist() == counts[which].head(20).tolist(), which
    assert counts["all"].head(20).tolist() != counts["train"].head(20).tolist()
    # EASE's refit takes the λ validation chose, and tunes nothing itself.
    client = MlflowClient(tracking_uri)
    ease = next(refit for refit in trained["served"] if refit.model == "ease")
    chosen = float(client.get_run(trained["runs"]["ease"].run_id).data.params["tuned_lambda"])
    refit_run = client.get_run(ease.run_id)
    assert ast.literal_eval(refit_run.data.params["lambdas"]) == (chosen,)
    assert not [name for name in refit_run.data.metrics if name.startswith("tuning_")]


def test_the_service_loads_the_refit_the_aliased_version_links(trained, home, tracking_uri):
    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias(RETRIEVER_MODEL, CHAMPION)
    refit = champion.tags["refit_version"]
    served, _, label = find_served(client, champion)
    assert served.version == refit and label == f"ease v{champion.version} (refit v{refit})"
    loaded = load_retriever(client, champion)
    state = UserState(None, (296, 318, 593))
    expected = load_registered_retriever(f"models:/{RETRIEVER_MODEL}/{refit}").retrieve(state, 10)
    assert loaded.label == label and loaded.retriever.retrieve(state, 10).movie_ids.tolist() == \
        expected.movie_ids.tolist()
    ranker = client.get_model_version_by_alias(RANKER_MODEL, CHAMPION)
    assert find_served(client, ranker)[0].version == ranker.tags["refit_version"]
    # The comparison table says which refit an alias serves.
    retrievers = compare_models(home).tables["retrievers"].set_index("model")
    assert retrievers.loc["ease", "alias"] == f"champion (serves refit v{refit})"


def test_refits_are_never_gated_nor_given_an_alias(trained, home, tracking_uri):
    client = MlflowClient(tracking_uri)
    refit = next(refit for refit in trained["served"] if refit.model == "ease")
    assert all(decision.candidate_version != refit.refit_version for decision in promote_pending("retriever",
                                                                                                 home))
    with pytest.raises(PromotionError, match="refit on all ratings of"):
        promote("retriever", refit.refit_version, home)
    with pytest.raises(PromotionError, match="refit on all ratings of"):
        roll_back(client, RETRIEVER_MODEL, "test", refit.refit_version)
    with pytest.raises(RefitError, match="is itself the refit"):
        refit_version("retriever", refit.refit_version, home)
    assert client.get_model_version_by_alias(RETRIEVER_MODEL, CHAMPION).version == refit.evaluated_version


def test_a_served_version_is_refit_again_when_new_ratings_change_the_marts(trained, home, tracking_uri):
    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias(RETRIEVER_MODEL, CHAMPION)
    before = champion.tags["refit_version"]
    # A features run with new ratings writes new marts: their build record, hence their data version, changes.
    record = home.marts / "_build.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "live_events": 1}))
    again = refit_served(["retriever"], home)
    assert [(refit.model, refit.evaluated_version) for refit in again] == [("ease", champion.version)]
    after = client.get_model_version_by_alias(RETRIEVER_MODEL, CHAMPION).tags["refit_version"]
    assert after == again[0].refit_version != before
    assert refit_served(["retriever"], home) == []  # the same marts: nothing to do
