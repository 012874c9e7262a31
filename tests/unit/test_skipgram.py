"""Skip-gram pairs and DeepWalk walks on tiny hand-made sequences."""

import numpy as np
import pytest

from training.retrievers.deepwalk import Params, generate_random_walks
from training.retrievers.skipgram import build_skipgram_pairs, sample_negatives

pytestmark = pytest.mark.unit


def test_skipgram_pairs_are_every_two_items_within_the_window_both_ways():
    pairs = {tuple(pair) for pair in build_skipgram_pairs([[1, 2, 3], [4]], window=1)}
    assert pairs == {(1, 2), (2, 3), (2, 1), (3, 2)}
    wider = {tuple(pair) for pair in build_skipgram_pairs([[1, 2, 3]], window=2)}
    assert wider == pairs | {(1, 3), (3, 1)}


def test_negatives_follow_the_smoothed_unigram_distribution():
    pairs = np.array([[0, 1]] * 20_000)
    counts = np.array([1.0, 0.0, 16.0, 81.0])  # ^0.75 -> 1, 0, 8, 27
    examples, labels = sample_negatives(pairs, counts, negatives=2, rng=np.random.default_rng(0))
    assert labels.sum() == 20_000 and len(labels) == 60_000
    noise = examples[labels == 0, 1]
    shares = np.bincount(noise, minlength=4) / len(noise)
    np.testing.assert_allclose(shares, [1 / 36, 0, 8 / 36, 27 / 36], atol=0.01)


def test_random_walks_only_step_along_observed_transitions():
    sequences = [[0, 1, 2], [1, 2, 0], [3, 1]]
    edges = {(0, 1), (1, 2), (2, 0), (3, 1)}
    params = Params(walks_per_movie=3, walk_length=6)
    walks = generate_random_walks(sequences, 4, params, np.random.default_rng(1))

    assert sorted(walk[0] for walk in walks) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    for walk in walks:
        assert len(walk) == 6  # every node here has an outgoing edge
        assert all((a, b) in edges for a, b in zip(walk, walk[1:]))
