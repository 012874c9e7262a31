"""Retrievers through the real harness: popularity and item2vec on the bundled split, logged to MLflow."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from training.embeddings import EmbeddingParams, load_retrieval_split, train_retriever

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARAMS = EmbeddingParams(embedding_dim=8, epochs=1, walks_per_movie=1)


@pytest.fixture(scope="module")
def runs(built_paths, tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)
    return {name: train_retriever(name, built_paths, PARAMS) for name in ("popularity", "item2vec")}


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
    folder = built_paths.home / "embeddings" / "item2vec"
    movies = pd.read_parquet(folder / "movie_embeddings.parquet").set_index("movie_id")
    users = pd.read_parquet(folder / "user_embeddings.parquet").set_index("user_id")
    split = load_retrieval_split(built_paths)

    assert len(movies) == 9_742 and len(movies.movie_embedding.iloc[0]) == PARAMS.embedding_dim
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
    artifacts = {item.path for item in client.list_artifacts(runs["item2vec"].run_id, "plots")}
    assert "plots/movie_embedding_map.png" in artifacts
