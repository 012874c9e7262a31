"""The sequential retriever: the service's numpy encoder computes what the Keras one trained (weights made
non-trivial), attention is causal (a later movie changes no earlier output), padding is ignored, and a saved
retriever loads back and answers the same."""

import numpy as np
import pytest

pytestmark = pytest.mark.unit

keras = pytest.importorskip("keras", reason="the ML env always has Keras; this only keeps collection light")

from eaglerec.contracts.retrieval import SequentialRetriever, UserState, encode_sequences, load_retriever  # noqa: E402
from training.retrievers.sasrec import EPSILON, SequenceEncoder  # noqa: E402

MOVIES, LENGTH, DIM, BLOCKS = 12, 6, 8, 2


@pytest.fixture(scope="module")
def encoder():
    layer = SequenceEncoder(MOVIES, LENGTH, DIM, BLOCKS, dropout=0.5)
    layer.build((None, LENGTH))
    rng = np.random.default_rng(0)
    for weight in layer.weights:  # every weight random, norms and biases included
        weight.assign(rng.normal(0, 0.5, weight.shape).astype(np.float32))
    return layer


def sequences() -> np.ndarray:
    return np.array([[0, 0, 3, 7, 1, 12], [5, 4, 3, 2, 1, 9], [0, 0, 0, 0, 0, 6]], dtype=np.int32)


def test_the_numpy_encoder_is_the_keras_one(encoder):
    expected = np.asarray(encoder(sequences(), training=False))
    got = encode_sequences(encoder.export(), sequences(), BLOCKS, EPSILON)
    real = sequences() > 0
    np.testing.assert_allclose(got[real], expected[real], rtol=1e-4, atol=1e-5)


def test_attention_is_causal_and_ignores_padding(encoder):
    weights = encoder.export()
    base = encode_sequences(weights, sequences(), BLOCKS, EPSILON)
    later = sequences().copy()
    later[:, -1] = [2, 2, 2]  # another last movie
    changed = encode_sequences(weights, later, BLOCKS, EPSILON)
    np.testing.assert_array_equal(changed[:, :-1][sequences()[:, :-1] > 0], base[:, :-1][sequences()[:, :-1] > 0])
    assert not np.allclose(changed[:, -1], base[:, -1])
    # The same movies with more padding in front give the same last output (padding is never attended to).
    shorter = np.array([[3, 7, 1, 12]], dtype=np.int32)
    np.testing.assert_allclose(encode_sequences(weights, shorter, BLOCKS, EPSILON)[0, -1], base[0, -1], rtol=1e-5)


def test_a_saved_sequential_retriever_answers_the_same_and_reads_the_latest_likes(encoder, tmp_path):
    movie_ids = np.arange(100, 100 + MOVIES)
    retriever = SequentialRetriever(movie_ids, encoder.export(), np.linspace(1, 0, MOVIES), 1e-6, LENGTH, BLOCKS,
                                    EPSILON)
    user = UserState(None, (101, 110, 103))  # most recent first
    found = retriever.retrieve(user, 5, exclude=[101])
    assert len(found) == 5 and 101 not in found.movie_ids
    loaded = load_retriever(retriever.save(tmp_path), {"retriever_type": "sequential", **retriever.config})
    again = loaded.retrieve(user, 5, exclude=[101])
    np.testing.assert_array_equal(again.movie_ids, found.movie_ids)
    np.testing.assert_allclose(again.scores, found.scores)
    # Rows are movie positions + 1, oldest first: the user vector is the encoder's last output.
    expected = encode_sequences(retriever.weights, np.array([[0, 0, 0, 4, 11, 2]]), BLOCKS, EPSILON)[0, -1]
    np.testing.assert_allclose(retriever.encode(user.liked_movie_ids), expected)
    assert retriever.retrieve(UserState(None, ()), 3).movie_ids.tolist() == [100, 101, 102]  # popular, no likes
