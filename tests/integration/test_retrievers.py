"""Retrievers of the catalogue through the real harness (bundled split, real MLflow server and registry): metrics
against direct computations, the registered retriever (loaded as the service loads it) against what training
evaluated, the gate, re-scoring a champion, the comparison table and `promote`."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from eaglerec.contracts.catalogue import load_catalogue
from eaglerec.contracts.names import CHALLENGER, CHAMPION
from eaglerec.contracts.retrieval import UserState
from tests.conftest import assert_gate_followed_its_intervals, own_tracking_server
from training.compare import GATE_COLUMN, compare_models, write_comparison
from training.promotion import promote
from training.retrieval import load_registered_retriever, score_registered_retriever
from training.retrievers import load_retrieval_split
from training.train import train_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RETRIEVERS = load_catalogue().names("retriever")
RETRIEVER_MODEL = load_catalogue().kinds["retriever"].registered_model
SMALL = {"two_tower": {"embedding_dim": 8, "hidden_units": 16, "epochs": 1},
         "item2vec": {"embedding_dim": 8, "epochs": 1},
         "deepwalk": {"embedding_dim": 8, "epochs": 1, "walks_per_movie": 1},
         "ease": {"lambdas": (100.0, 500.0)}, "item_knn": {"neighbours": (20, 100)},
         "sasrec": {"embedding_dim": 8, "blocks": 1, "max_length": 10, "epochs": 1}}


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """A registry of this module's own: its tests assert which version the gate made champion, which depends on
    every retriever registered before (the session's serving fixture registers one that can tie the best here)."""
    with own_tracking_server(tmp_path_factory, "mlflow_retrievers") as uri:
        yield uri


@pytest.fixture(scope="module")
def runs(built_paths, tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)
    return {name: train_model(name, built_paths, SMALL.get(name)) for name in RETRIEVERS}


def registered(runs, name: str):
    return load_registered_retriever(f"models:/{RETRIEVER_MODEL}/{runs[name].version}")


def test_most_popular_recall_matches_a_direct_count(runs, built_paths):
    events = pd.read_parquet(built_paths.marts / "rating_events.parquet")
    train = events[events.split == "train"]
    popular = train[train.label == 1].movie_id.value_counts()
    test_positives = events[(events.split == "test") & (events.label == 1)]
    rated = train.groupby("user_id").movie_id.agg(set)
    recalls = []
    for user, group in test_positives.groupby("user_id"):
        if user not in rated.index:
            continue
        # Ties in popularity could order differently; compare with the count of the tenth movie included.
        candidates = popular[~popular.index.isin(rated[user])]
        top = set(candidates.index[:10])
        recalls.append(len(top & set(group.movie_id)) / len(group))
    assert runs["most_popular"].metrics["test_recall_at_10"] == pytest.approx(np.mean(recalls), abs=0.01)


def test_cooccurrence_scores_are_counts_of_movies_liked_next_to_the_last_five_likes(runs, built_paths):
    from collections import Counter

    split = load_retrieval_split(built_paths)
    retriever = registered(runs, "cooccurrence")
    assert retriever.retriever_type == "item_item"
    user = 7
    recent = set(split.train_sequences[user][-5:])
    near_recent = Counter()  # every liked movie at most 3 places from one of the user's five latest likes
    for sequence in split.train_sequences.values():
        for i, movie in enumerate(sequence):
            if movie in recent:
                near_recent.update(sequence[j] for j in range(max(0, i - 3), min(len(sequence), i + 4)) if j != i)
    popularity = pd.Series(split.count_popularity(), index=split.movie_ids)
    expected = popularity / (popularity.max() + 1) + pd.Series(near_recent).reindex(split.movie_ids).fillna(0)
    expected = expected.drop(list(split.rated_in_train[user])).sort_values(ascending=False)
    found = retriever.retrieve(split.user_state(user), 20, split.rated_in_train[user])
    # The prior is stored as float32 with the retriever's tables.
    np.testing.assert_allclose(found.scores, expected.to_numpy()[:20], rtol=1e-6)


def test_item2vec_users_are_the_mean_of_their_liked_training_movies(runs, built_paths):
    split = load_retrieval_split(built_paths)
    retriever = registered(runs, "item2vec")
    assert retriever.retriever_type == "embedding"
    user = 7
    vectors = retriever.movie_vectors[[retriever.position[m] for m in split.train_sequences[user]]]
    mean = vectors.mean(axis=0)
    np.testing.assert_allclose(retriever.user_vectors[user], mean / np.linalg.norm(mean), rtol=1e-5)
    # So the same user, described only by their liked movies, gets the same answer.
    assert retriever.retrieve(split.user_state(user), 10).movie_ids.tolist() == \
        retriever.retrieve(split.user_state(user, anonymous=True), 10).movie_ids.tolist()


def test_retriever_runs_log_validation_and_test_metrics_type_and_the_embedding_map(runs, tracking_uri):
    client = MlflowClient(tracking_uri)
    for name, outcome in runs.items():
        run = client.get_run(outcome.run_id)
        for split in ("validation", "test"):
            for metric in ("recall_at_10", "ndcg_at_10", "hit_rate_at_100", "coverage_at_100"):
                assert 0 <= run.data.metrics[f"{split}_{metric}"] <= 1
        assert run.data.tags["retriever_type"] in ("embedding", "item_item", "popularity", "sequential")
        version = client.get_model_version(RETRIEVER_MODEL, outcome.version)
        assert (version.tags["model"], version.tags["retriever_type"]) == (name, run.data.tags["retriever_type"])
        if run.data.tags["retriever_type"] == "embedding":
            artifacts = {item.path for item in client.list_artifacts(outcome.run_id, "plots")}
            assert "plots/movie_embedding_map.png" in artifacts, name
    # The tuned baselines log the value validation chose, the best of the candidates' validation scores.
    for name, value in (("ease", "lambda"), ("item_knn", "neighbours")):
        run = client.get_run(runs[name].run_id)
        tried = {key.rsplit("_", 1)[1]: score for key, score in run.data.metrics.items()
                 if key.startswith(f"tuning_validation_recall_at_10_{value}_")}
        assert len(tried) == 2 and float(run.data.params[f"tuned_{value}"]) == max(
            (score, float(candidate)) for candidate, score in tried.items())[1]


def test_the_gate_promoted_exactly_the_retrievers_surely_better_than_the_champion_then(runs, tracking_uri):
    client = MlflowClient(tracking_uri)
    competing = [name for name in RETRIEVERS if load_catalogue().entry(name).registered]
    assert all(runs[name].version for name in competing)
    assert_gate_followed_its_intervals(client, RETRIEVER_MODEL, [runs[name].version for name in competing])
    # The paired comparison scored each candidate as its run did: champion + difference = its logged test recall.
    for name in competing[1:]:
        tags = client.get_model_version(RETRIEVER_MODEL, runs[name].version).tags
        paired = float(tags["promotion_champion_score"]) + float(tags["promotion_difference"])
        assert paired == pytest.approx(runs[name].metrics["test_recall_at_10"], abs=1e-5), name


def test_every_registered_retriever_answers_as_training_evaluated_it(runs, built_paths):
    """Loaded through MLflow as the service loads it, each registered retriever reproduces its logged test recall
    (item2vec and the baselines: the served users are the evaluated ones), and answers the pyfunc frame API the same."""
    from training.retrieval import evaluate_retriever

    split = load_retrieval_split(built_paths)
    for name in ("most_popular", "cooccurrence", "item2vec"):
        retriever = registered(runs, name)
        assert evaluate_retriever(retriever, split)["test_recall_at_10"] == pytest.approx(
            runs[name].metrics["test_recall_at_10"], abs=1e-12), name
    model = mlflow.pyfunc.load_model(f"models:/{RETRIEVER_MODEL}/{runs['item2vec'].version}")
    exclude = [1, 260, 296]
    known = model.predict(pd.DataFrame({"user_id": [7], "exclude": [exclude]}), params={"k": 10})
    anonymous = model.predict(pd.DataFrame({"liked_movie_ids": [[4993, 5952]]}), params={"k": 10})
    retriever = model.unwrap_python_model().retriever
    assert known.movie_ids[0] == retriever.retrieve(UserState(7), 10, exclude).movie_ids.tolist()
    assert anonymous.movie_ids[0] == retriever.retrieve(UserState(None, (4993, 5952)), 10).movie_ids.tolist()
    assert not set(known.movie_ids[0]) & set(exclude) and len(anonymous.movie_ids[0]) == 10


def test_the_two_tower_run_logs_both_towers_as_models(runs):
    for tower in ("user_tower", "movie_tower"):
        model = mlflow.tensorflow.load_model(f"runs:/{runs['two_tower'].run_id}/{tower}")
        assert model.name == tower


def test_re_scoring_a_champion_on_other_data_reproduces_item2vec_own_test_recall(runs, built_paths, tracking_uri):
    # item2vec's user vectors are the mean of training positives, the rule the re-scoring uses for any champion.
    version = MlflowClient(tracking_uri).get_model_version(RETRIEVER_MODEL, runs["item2vec"].version)
    assert score_registered_retriever(version, load_retrieval_split(built_paths), "recall_at_10") == pytest.approx(
        runs["item2vec"].metrics["test_recall_at_10"], abs=1e-12)


def test_promote_gates_an_older_version_again(runs, built_paths, tracking_uri):
    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias(RETRIEVER_MODEL, CHAMPION).version
    loser = runs["most_popular"].version  # the same list for everyone: far behind any personal champion
    decision = promote("retriever", loser, built_paths)
    assert not decision.promoted and decision.champion_version == champion and decision.comparison.high < 0
    assert client.get_model_version_by_alias(RETRIEVER_MODEL, CHALLENGER).version == loser
    assert promote("retriever", champion, built_paths).describe().endswith("is already the champion")


def test_the_comparison_table_lists_every_retriever_with_its_logged_figures(runs, built_paths, tracking_uri):
    comparison = compare_models(built_paths)
    table = comparison.tables["retrievers"].set_index("model")
    assert set(table.index) == set(RETRIEVERS)
    for name, outcome in runs.items():
        assert table.at[name, "Recall@10"] == pytest.approx(outcome.metrics["test_recall_at_10"])
    assert list(table["Recall@10"]) == sorted(table["Recall@10"], reverse=True)
    # Each run's registry version and alias, linked to the MLflow UI.
    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias(RETRIEVER_MODEL, CHAMPION).version
    for name, outcome in runs.items():
        assert table.at[name, "version"] == f"v{outcome.version}"
        assert (table.at[name, "alias"] == "champion") == (outcome.version == champion)
        assert table.at[name, "alias"] in ("champion", "challenger", "")
        tags = client.get_model_version(RETRIEVER_MODEL, outcome.version).tags
        if "promotion_interval" in tags:
            assert table.at[name, GATE_COLUMN].startswith(f"{float(tags['promotion_difference']):+.4f} [")
    # The quality goals: the best retriever is the non-baseline one best on validation, set against EASE on test.
    goals = {check.goal.split(" >=")[0]: check for check in comparison.goals}
    best = max((name for name in runs if not load_catalogue().entry(name).baseline),
               key=lambda name: runs[name].metrics["validation_recall_at_10"])
    ratio = goals["best retriever Recall@10"]
    assert ratio.value is not None, ratio.measured
    assert ratio.value == pytest.approx(runs[best].metrics["test_recall_at_10"] / runs["ease"].metrics[
        "test_recall_at_10"]) and ratio.low <= ratio.value <= ratio.high and ratio.measured.startswith(best)
    ndcg = goals["best retriever NDCG@10"]
    assert ndcg.value == pytest.approx(runs[best].metrics["test_ndcg_at_10"]) and ndcg.low <= ndcg.value <= ndcg.high
    assert goals["best ranker AUC"].verdict == "not measured"  # no ranker in this registry
    written = write_comparison(comparison, built_paths)
    markdown = written["md"].read_text()
    assert "## Quality goals" in markdown and f"| {ratio.goal} | {ratio.measured} | {ratio.value:.4f} |" in markdown
    assert f"| two_tower | {runs['two_tower'].metrics['test_recall_at_10']:.4f} |" in markdown
    two_tower = runs["two_tower"].version
    assert f"[v{two_tower}]({tracking_uri}/#/models/{RETRIEVER_MODEL}/versions/{two_tower})" in markdown
    html = written["html"].read_text()
    assert "<table" in html and f"<a href='{tracking_uri}/#/experiments/" in html and "run_url" not in html
    client = MlflowClient(tracking_uri)
    run = client.search_runs([client.get_experiment_by_name("eaglerec-comparisons").experiment_id])[0]
    assert {item.path for item in client.list_artifacts(run.info.run_id)} == {"model_comparison.md",
                                                                              "model_comparison.html"}


def test_from_the_index_threshold_on_a_retriever_is_registered_with_its_index_and_served_through_it(
        runs, built_paths, tracking_uri, monkeypatch):
    """Lowered below the bundled catalogue's size, the threshold makes item2vec's registration fit the HNSW index on
    its users (kept even if slower than the scan, which it is at 9.7k movies): the fit's figures logged on the run, the
    index shipped as the version's artifact, loaded back by the loader the service uses with the chosen ef, and
    answering as the exact scan does for (nearly) every test user. Runs last: it adds a version to the registry."""
    from eaglerec.contracts import retrieval
    from training import retrieval as harness
    from training.retrieval import evaluate_retriever, log_registered_retriever

    monkeypatch.setattr(retrieval, "INDEX_MIN_MOVIES", 1_000)
    monkeypatch.setattr(harness, "INDEX_ONLY_IF_FASTER", False)
    split = load_retrieval_split(built_paths)
    entry = load_catalogue().entry("item2vec")
    mlflow.set_experiment(entry.kind.experiment)
    with mlflow.start_run(run_name="item2vec with its index") as run:
        version = log_registered_retriever(entry, registered(runs, "item2vec"), split)
    client = MlflowClient(tracking_uri)
    logged = client.get_run(run.info.run_id).data
    assert logged.metrics["index_recall_at_100"] >= 0.98 and logged.metrics["index_used"] == 1.0
    assert logged.tags["retrieval_search"] == "index" and logged.metrics["exact_query_ms"] > 0
    model_folder = Path(mlflow.artifacts.download_artifacts(f"models:/{RETRIEVER_MODEL}/{version}"))
    assert (model_folder / "artifacts" / "movie_index.usearch").stat().st_size > 0
    served, exact = load_registered_retriever(f"models:/{RETRIEVER_MODEL}/{version}"), registered(runs, "item2vec")
    assert exact.index is None and served.index.expansion_search == logged.metrics["index_expansion_search"]
    users = sorted(split.relevant["test"])
    same = sum(served.retrieve(split.user_state(user), 10).movie_ids.tolist()
               == exact.retrieve(split.user_state(user), 10).movie_ids.tolist() for user in users)
    assert same >= 0.98 * len(users), (same, len(users))
    assert evaluate_retriever(served, split)["test_recall_at_10"] == pytest.approx(
        runs["item2vec"].metrics["test_recall_at_10"], abs=0.005)
