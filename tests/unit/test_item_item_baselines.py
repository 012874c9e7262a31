"""EASE and item-kNN on matrices small enough to work by hand, EASE also against a second method (a ridge regression
per column, the problem EASE's closed form solves), and tuning that looks at validation only."""

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from eaglerec.contracts.retrieval import PopularityRetriever, UserState
from eaglerec.settings import Paths
from training.retrievers import RetrievalSplit, keep_top_per_row, tune_on_validation
from training.retrievers.ease import fit_ease
from training.retrievers.item_knn import cosine_similarities

pytestmark = pytest.mark.unit

# Users x movies: user 0 liked both movies, user 1 the first, user 2 the second.
TWO = csr_matrix(np.array([[1, 1], [1, 0], [0, 1]], dtype=float))


def test_ease_by_hand_on_two_movies():
    # XᵀX = [[2, 1], [1, 2]]; + λ=1 on the diagonal: [[3, 1], [1, 3]]; P = 1/8 [[3, -1], [-1, 3]];
    # B = -P / diag(P) per column: off-diagonal -(-1/8) / (3/8) = 1/3; the diagonal is 0.
    assert fit_ease(TWO, 1.0) == pytest.approx(np.array([[0, 1 / 3], [1 / 3, 0]]))


def test_ease_is_a_ridge_regression_of_each_movie_on_the_others():
    rng = np.random.default_rng(7)
    liked = (rng.random((40, 6)) < 0.35).astype(float)
    penalty = 2.5
    weights = fit_ease(csr_matrix(liked), penalty)
    for column in range(6):
        others = [index for index in range(6) if index != column]
        features = liked[:, others]
        ridge = np.linalg.solve(features.T @ features + penalty * np.eye(5), features.T @ liked[:, column])
        assert weights[others, column] == pytest.approx(ridge, abs=1e-10)
        assert weights[column, column] == 0


def test_item_knn_cosine_by_hand_with_and_without_shrinkage():
    # Co-likes 1; each movie liked twice: cosine 1 / (√2·√2) = 1/2; shrunk by 10: 1 / (2 + 10).
    assert cosine_similarities(TWO, 0.0) == pytest.approx(np.array([[0, 0.5], [0.5, 0]]))
    assert cosine_similarities(TWO, 10.0)[0, 1] == pytest.approx(1 / 12)


def test_keep_top_per_row_keeps_the_largest_positive_weights_at_their_catalogue_positions():
    weights = np.array([[0.0, 0.3, 0.1], [0.2, 0.0, -0.4], [0.5, 0.6, 0.0]])
    kept = keep_top_per_row(weights, 1, np.array([1, 3, 4]), 5).toarray()
    expected = np.zeros((5, 5))
    expected[1, 3], expected[3, 1], expected[4, 3] = 0.3, 0.2, 0.6
    assert kept == pytest.approx(expected)


def test_tuning_keeps_the_value_best_on_validation_whatever_test_says(tmp_path):
    # Validation users liked movie 10 later, test users movie 20: a value that puts 20 first would win on test.
    split = RetrievalSplit(Paths(tmp_path), {1: [30], 2: [30]}, {1: {30}, 2: {30}},
                           {"validation": {1: {10}, 2: {10}}, "test": {1: {20}, 2: {20}}}, np.array([10, 20, 30]))

    def build(favourite: int) -> PopularityRetriever:  # retrieves its favourite only (-inf scores are left out)
        return PopularityRetriever(split.movie_ids, np.where(split.movie_ids == favourite, 1.0, -np.inf))

    value, retriever, scores = tune_on_validation(split, build, (20, 10))
    assert value == 10 and scores == {20: 0.0, 10: 1.0}
    assert retriever.retrieve(UserState(1), 1).movie_ids.tolist() == [10]


def test_a_refit_takes_the_one_value_validation_chose_and_scores_nothing(tmp_path):
    split = RetrievalSplit(Paths(tmp_path), {1: [30, 10]}, {1: {30, 10}}, {"validation": {}, "test": {}},
                           np.array([10, 20, 30]), refit=True)

    def build(favourite: int) -> PopularityRetriever:
        return PopularityRetriever(split.movie_ids, np.where(split.movie_ids == favourite, 1.0, -np.inf))

    value, retriever, scores = tune_on_validation(split, build, (20,))
    assert value == 20 and scores == {} and retriever.retrieve(UserState(1), 1).movie_ids.tolist() == [20]
    with pytest.raises(ValueError, match="the value validation chose"):
        tune_on_validation(split, build, (20, 10))
