"""The vector retrievers' approximate index on seeded data: its recall of the exact top 100 (computed here with a
plain numpy scan), exclusion and the movie itself left out through it, and fit_index: the smallest ef reaching the
recall asked, the index kept only when faster, shipped with the retriever and loaded back answering the same."""

import numpy as np
import pytest

from eaglerec.contracts.retrieval import INDEX_ARTIFACT, EmbeddingRetriever, UserState, VectorIndex, load_retriever

pytestmark = pytest.mark.unit

MOVIES, DIMENSIONS, CLUSTERS = 20_000, 32, 200


def clustered_retriever(movies: int = MOVIES, seed: int = 7) -> EmbeddingRetriever:
    """Movie vectors around 200 cluster centres (learnt embeddings group by taste), a popularity prior in [0, 1]
    weighted 0.05, and 300 users whose vectors are the mean of 5 random movies."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIMENSIONS))
    vectors = centres[rng.integers(0, CLUSTERS, movies)] + 0.7 * rng.normal(size=(movies, DIMENSIONS))
    users = {user: vectors[rng.integers(0, movies, 5)].mean(axis=0) for user in range(1, 301)}
    return EmbeddingRetriever(np.arange(1, movies + 1) * 10, vectors, rng.random(movies), 0.05, users)


@pytest.fixture(scope="module")
def indexed() -> EmbeddingRetriever:
    retriever = clustered_retriever()
    retriever.build_index()
    return retriever


def exact_top(retriever: EmbeddingRetriever, user: int, k: int) -> list[int]:
    """The exact top k by a direct scan: cosine of the user's and every movie's vector plus 0.05 x prior."""
    user_vector = retriever.given_user_vectors[user] / np.linalg.norm(retriever.given_user_vectors[user])
    unit = retriever.movie_vectors / np.linalg.norm(retriever.movie_vectors, axis=1, keepdims=True)
    scores = unit @ user_vector + 0.05 * retriever.popularity_prior
    return retriever.movie_ids[np.argsort(-scores, kind="stable")[:k]].tolist()


def test_the_index_finds_at_least_98_percent_of_the_exact_top_100(indexed):
    found = [len(set(indexed.retrieve(UserState(user), 100).movie_ids.tolist()) & set(exact_top(indexed, user, 100)))
             for user in range(1, 301)]
    recall = sum(found) / (300 * 100)
    assert recall >= 0.98, recall
    # The retriever's own measure (as logged at registration) agrees with this one.
    queries = np.stack([indexed.query(UserState(user)) for user in range(1, 301)])
    assert indexed.measure_index_recall(queries, 100) == pytest.approx(recall, abs=1e-9)


def test_answers_through_the_index_are_scored_exactly_and_leave_out_excluded_movies_and_the_movie_itself(indexed):
    exact = clustered_retriever()  # the same tables, no index
    answer = indexed.retrieve(UserState(3), 10)
    truth = exact.retrieve(UserState(3), 10)
    assert answer.movie_ids.tolist() == truth.movie_ids.tolist() == exact_top(indexed, 3, 10)
    np.testing.assert_array_equal(answer.scores, truth.scores)
    excluded = answer.movie_ids[:4].tolist()
    kept = indexed.retrieve(UserState(3), 10, exclude=excluded).movie_ids.tolist()
    assert not set(kept) & set(excluded) and len(kept) == 10
    assert kept == exact.retrieve(UserState(3), 10, exclude=excluded).movie_ids.tolist()
    movie = int(answer.movie_ids[0])
    similar = indexed.similar(movie, 10).movie_ids.tolist()
    assert movie not in similar and len(similar) == 10
    assert similar == exact.similar(movie, 10).movie_ids.tolist()


def test_fit_index_takes_the_smallest_ef_reaching_the_recall_and_keeps_the_index_only_if_faster(tmp_path):
    retriever = clustered_retriever(movies=5_000)
    queries = np.stack([retriever.query(UserState(user)) for user in range(1, 201)])
    fit = retriever.fit_index(queries, target_recall=0.99, only_if_faster=False)
    assert fit.used and retriever.index is not None and fit.recall >= 0.99
    assert retriever.measure_index_recall(queries) == pytest.approx(fit.recall, abs=1e-9)
    # The ef before the chosen one falls short (when there is one).
    expansions = VectorIndex.EXPANSIONS
    if fit.expansion_search != expansions[0]:
        retriever.index.expansion_search = expansions[expansions.index(fit.expansion_search) - 1]
        assert retriever.measure_index_recall(queries) < 0.99
        retriever.index.expansion_search = fit.expansion_search
    # Shipped with the retriever (its ef in the config) and loaded back answering the same.
    artifacts = retriever.save(tmp_path)
    assert INDEX_ARTIFACT in artifacts
    config = {"retriever_type": "embedding", **retriever.config}
    assert config["index_expansion_search"] == fit.expansion_search
    loaded = load_retriever(artifacts, config)
    assert loaded.index is not None and loaded.index.expansion_search == fit.expansion_search
    for user in (1, 2, 3):
        assert loaded.retrieve(UserState(user), 20).movie_ids.tolist() == retriever.retrieve(UserState(user), 20
                                                                                             ).movie_ids.tolist()
    # Asked to be faster too, it keeps the index exactly when its median query time was below the scan's.
    fit = retriever.fit_index(queries, target_recall=0.99)
    assert fit.used == (fit.index_ms < fit.exact_ms) == (retriever.index is not None)
    (tmp_path / "again").mkdir()
    assert (INDEX_ARTIFACT in retriever.save(tmp_path / "again")) == fit.used
