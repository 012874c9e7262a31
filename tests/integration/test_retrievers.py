"""Retrievers through the real harness (bundled split, real MLflow server and registry): metrics against direct
computations, the registered retriever model against the training-side scoring, the gate, publishing for Feast,
re-scoring a champion, the comparison table and `promote`."""

import filecmp

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import running_tracking_server
from training.compare import compare_models, write_comparison
from training.embeddings import (
    EMBEDDING_MODELS,
    RETRIEVER_MODEL_NAME,
    RETRIEVERS,
    EmbeddingParams,
    load_retrieval_split,
    score_registered_retriever,
    train_retriever,
)
from training.promotion import promote
from training.registry import CHALLENGER, CHAMPION
from training.two_tower import TwoTowerParams

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARAMS = {"two_tower": TwoTowerParams(embedding_dim=8, hidden_units=16, epochs=1)}
SKIPGRAM = EmbeddingParams(embedding_dim=8, epochs=1, walks_per_movie=1)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """A registry of this module's own: its tests assert which version the gate made champion, which depends on
    every retriever registered before (the session's serving fixture registers one that can tie the best here)."""
    previous = mlflow.get_tracking_uri()
    with running_tracking_server(tmp_path_factory.mktemp("mlflow_retrievers")) as uri:
        yield uri
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def runs(built_paths, tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)
    return {name: train_retriever(name, built_paths, PARAMS.get(name, SKIPGRAM)) for name in RETRIEVERS}


def test_popularity_recall_matches_a_direct_count(runs, built_paths):
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
    assert runs["popularity"].metrics["test_recall_at_10"] == pytest.approx(np.mean(recalls), abs=0.01)


def test_item2vec_writes_feast_tables_and_user_vectors_are_mean_of_train_positives(runs, built_paths):
    folder = built_paths.embeddings / "item2vec"
    movies = pd.read_parquet(folder / "movie_embeddings.parquet").set_index("movie_id")
    users = pd.read_parquet(folder / "user_embeddings.parquet").set_index("user_id")
    split = load_retrieval_split(built_paths)

    assert len(movies) == 9_742 and len(movies.movie_embedding.iloc[0]) == SKIPGRAM.embedding_dim
    assert movies.popularity_prior.between(0, 1).all() and movies.popularity_prior.max() == 1
    user_id = 7
    expected = np.mean(np.stack(movies.loc[split.train_sequences[user_id], "movie_embedding"].to_list()), axis=0)
    np.testing.assert_allclose(users.at[user_id, "user_embedding"], expected, rtol=1e-5)


def test_retriever_runs_log_validation_and_test_metrics_and_the_embedding_map(runs, tracking_uri):
    client = MlflowClient(tracking_uri)
    for outcome in runs.values():
        metrics = client.get_run(outcome.run_id).data.metrics
        for split in ("validation", "test"):
            for name in ("recall_at_10", "ndcg_at_10", "hit_rate_at_100", "coverage_at_100"):
                assert 0 <= metrics[f"{split}_{name}"] <= 1
    for name in EMBEDDING_MODELS:
        artifacts = {item.path for item in client.list_artifacts(runs[name].run_id, "plots")}
        assert "plots/movie_embedding_map.png" in artifacts


def test_the_champion_is_the_best_embedding_retriever_and_its_tables_are_published_for_feast(runs, built_paths,
                                                                                              tracking_uri):
    client = MlflowClient(tracking_uri)
    registered = {name: runs[name] for name in EMBEDDING_MODELS}
    assert all(outcome.version for outcome in registered.values())
    # Versions were gated in training order; the strictly-better rule keeps the first of equal scores.
    best = max(EMBEDDING_MODELS, key=lambda name: (registered[name].metrics["test_recall_at_10"],
                                                    -EMBEDDING_MODELS.index(name)))
    champion = client.get_model_version_by_alias(RETRIEVER_MODEL_NAME, CHAMPION)
    assert champion.run_id == registered[best].run_id
    for table in ("movie_embeddings", "user_embeddings"):
        assert filecmp.cmp(built_paths.embeddings / f"{table}.parquet",
                           built_paths.embeddings / best / f"{table}.parquet", shallow=False)


def test_the_registered_retriever_recommends_what_the_tables_say(runs, built_paths):
    name = "item2vec"
    model = mlflow.pyfunc.load_model(f"models:/{RETRIEVER_MODEL_NAME}/{runs[name].version}")
    movies = pd.read_parquet(built_paths.embeddings / name / "movie_embeddings.parquet")
    users = pd.read_parquet(built_paths.embeddings / name / "user_embeddings.parquet").set_index("user_id")
    vectors = np.stack(movies.movie_embedding.to_list())
    exclude = [1, 260, 296]
    answer = model.predict(pd.DataFrame({"user_id": [7, 10**9], "exclude": [exclude, []]}), params={"k": 10})

    user = users.at[7, "user_embedding"]
    scores = vectors @ user / np.linalg.norm(vectors, axis=1) / np.linalg.norm(user)
    scores += SKIPGRAM.popularity_weight * movies.popularity_prior.to_numpy()
    ranked = [movie for movie in movies.movie_id.to_numpy()[np.argsort(-scores)] if movie not in exclude]
    assert answer.movie_ids[0] == ranked[:10]
    assert answer.movie_ids[1] == []


def test_the_two_tower_run_logs_both_towers_as_models(runs):
    for tower in ("user_tower", "movie_tower"):
        model = mlflow.tensorflow.load_model(f"runs:/{runs['two_tower'].run_id}/{tower}")
        assert model.name == tower


def test_re_scoring_a_champion_on_other_data_reproduces_item2vec_own_test_recall(runs, built_paths, tracking_uri):
    # item2vec's user vectors are the mean of training positives, the rule the re-scoring uses for any champion.
    version = MlflowClient(tracking_uri).get_model_version(RETRIEVER_MODEL_NAME, runs["item2vec"].version)
    assert score_registered_retriever(version, built_paths) == pytest.approx(
        runs["item2vec"].metrics["test_recall_at_10"], abs=1e-9)


def test_promote_gates_an_older_version_again(runs, built_paths, tracking_uri):
    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias(RETRIEVER_MODEL_NAME, CHAMPION).version
    loser = next(runs[name].version for name in EMBEDDING_MODELS if runs[name].version != champion)
    decision = promote("retriever", loser, built_paths)
    assert not decision.promoted and decision.champion_version == champion
    assert client.get_model_version_by_alias(RETRIEVER_MODEL_NAME, CHALLENGER).version == loser
    assert promote("retriever", champion, built_paths).describe().endswith("is already the champion")


def test_the_comparison_table_lists_every_retriever_with_its_logged_figures(runs, built_paths, tracking_uri):
    comparison = compare_models(built_paths)
    table = comparison.tables["retrievers"].set_index("model")
    assert set(table.index) == set(RETRIEVERS)
    for name, outcome in runs.items():
        assert table.at[name, "Recall@10"] == pytest.approx(outcome.metrics["test_recall_at_10"])
    assert list(table["Recall@10"]) == sorted(table["Recall@10"], reverse=True)
    written = write_comparison(comparison, built_paths)
    markdown = written["md"].read_text()
    assert f"| two_tower | {runs['two_tower'].metrics['test_recall_at_10']:.4f} |" in markdown
    assert "<table" in written["html"].read_text()
    client = MlflowClient(tracking_uri)
    run = client.search_runs([client.get_experiment_by_name("eaglerec-comparisons").experiment_id])[0]
    assert {item.path for item in client.list_artifacts(run.info.run_id)} == {"model_comparison.md",
                                                                              "model_comparison.html"}
