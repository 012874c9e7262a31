"""The retriever contract on hand-worked numbers: each type's retrieve and similar, exclusion, the user fallbacks,
and that a saved retriever loads back (by its declared type) and answers the same."""

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from eaglerec.contracts.retrieval import (
    EmbeddingRetriever,
    ItemItemRetriever,
    PopularityRetriever,
    UserState,
    load_retriever,
)

pytestmark = pytest.mark.unit

MOVIES = np.array([10, 20, 30, 40])
PRIOR = np.array([1.0, 0.5, 0.0, 0.25])


def embedding_retriever() -> EmbeddingRetriever:
    # Movie vectors at 0, 90, 180 and 45 degrees; user 7 points along movie 20. Weight 0.1 on the prior.
    vectors = np.array([[1, 0], [0, 1], [-1, 0], [1, 1]], dtype=np.float32)
    return EmbeddingRetriever(MOVIES, vectors, PRIOR, 0.1, {7: np.array([0, 3], dtype=np.float32)})


def test_embedding_scores_are_cosine_plus_the_weighted_prior_and_exclude_leaves_movies_out():
    found = embedding_retriever().retrieve(UserState(7), 4)
    # cosine with (0, 1): 0, 1, 0, 0.707; plus 0.1 * prior: 0.1, 0.05, 0, 0.025.
    assert found.movie_ids.tolist() == [20, 40, 10, 30]
    np.testing.assert_allclose(found.scores, [1.05, 2 ** -0.5 + 0.025, 0.1, 0.0], rtol=1e-6)
    assert embedding_retriever().retrieve(UserState(7), 2, exclude=[20, 99]).movie_ids.tolist() == [40, 10]


def test_a_user_without_a_vector_is_the_mean_of_their_liked_movies_or_else_gets_the_popular_ones():
    retriever = embedding_retriever()
    # Liked 10 and 20: mean (0.5, 0.5) -> 45 degrees: movie 40 first (cosine 1).
    assert retriever.retrieve(UserState(8, (10, 20)), 1).movie_ids.tolist() == [40]
    assert retriever.retrieve(UserState(None, (10, 20)), 1).movie_ids.tolist() == [40]
    # Its own vector wins over its likes; nobody and nothing liked: the prior alone.
    assert retriever.retrieve(UserState(7, (10,)), 1).movie_ids.tolist() == [20]
    assert retriever.retrieve(UserState(None), 4).movie_ids.tolist() == [10, 20, 40, 30]


def test_embedding_similar_movies_leave_the_movie_itself_out_and_know_nothing_of_an_unknown_one():
    found = embedding_retriever().similar(10, 3)
    # cosine with 10: 40 0.707, 20 0, 30 -1; plus the weighted prior.
    assert found.movie_ids.tolist() == [40, 20, 30]
    assert len(embedding_retriever().similar(99, 3)) == 0


def test_item_item_sums_the_rows_of_the_last_liked_movies_and_similar_stays_in_the_row():
    matrix = csr_matrix(np.array([[0, 2, 1, 0], [2, 0, 0, 0], [1, 0, 0, 3], [0, 0, 3, 0]], dtype=float))
    retriever = ItemItemRetriever(MOVIES, matrix, PRIOR, 0.1, seeds=2)
    # Liked 10, 30 (and 20, beyond the two seeds): rows 10 + 30 = (1, 2, 1, 3); + 0.1 * prior.
    found = retriever.retrieve(UserState(1, (10, 30, 20)), 4, exclude=[10])
    assert found.movie_ids.tolist() == [40, 20, 30]
    np.testing.assert_allclose(found.scores, [3.025, 2.05, 1.0])
    assert retriever.similar(30, 4).movie_ids.tolist() == [40, 10]
    assert retriever.similar(40, 4).movie_ids.tolist() == [30]


def test_popularity_gives_everyone_the_same_list_and_has_no_similar_movies():
    retriever = PopularityRetriever(MOVIES, PRIOR)
    assert retriever.retrieve(UserState(1, (20,)), 3, exclude=[10]).movie_ids.tolist() == [20, 40, 30]
    assert len(retriever.similar(10, 3)) == 0


@pytest.mark.parametrize("retriever", [
    embedding_retriever(), ItemItemRetriever(MOVIES, csr_matrix(np.eye(4)[::-1]), PRIOR, 0.5, seeds=3),
    PopularityRetriever(MOVIES, PRIOR)], ids=lambda r: r.retriever_type)
def test_a_saved_retriever_loads_back_by_its_declared_type_and_answers_the_same(retriever, tmp_path):
    artifacts = retriever.save(tmp_path)
    loaded = load_retriever(artifacts, {"retriever_type": retriever.retriever_type, **retriever.config})
    assert type(loaded) is type(retriever)
    for user in (UserState(7), UserState(None, (20, 30)), UserState(3)):
        expected, got = retriever.retrieve(user, 4, [40]), loaded.retrieve(user, 4, [40])
        assert got.movie_ids.tolist() == expected.movie_ids.tolist()
        np.testing.assert_array_equal(got.scores, expected.scores)
    assert loaded.similar(20, 3).movie_ids.tolist() == retriever.similar(20, 3).movie_ids.tolist()


def test_an_unknown_retriever_type_is_refused_by_name():
    with pytest.raises(ValueError, match="retriever_type 'graph': expected one of embedding, item_item, popularity, "
                                         "sequential"):
        load_retriever({}, {"retriever_type": "graph"})
