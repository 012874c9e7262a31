"""Two-tower pieces on hand-worked numbers: in-batch logits with the logQ correction and duplicate masking, the
in-batch softmax loss, save/load of the training model; and the co-occurrence baseline's matrix."""

import math

import numpy as np
import pytest

pytestmark = pytest.mark.unit

keras = pytest.importorskip("keras", reason="the ML env always has Keras; this only keeps collection light")

from eaglerec.contracts.retrieval import UserState  # noqa: E402
from training.retrievers import RetrievalSplit, cooccurrence  # noqa: E402
from training.retrievers.two_tower import (  # noqa: E402
    LOG_FREQUENCY,
    MOVIE_TOWER,
    USER_TOWER,
    InBatchLogits,
    Params,
    build_two_tower,
    fit_two_tower,
    in_batch_softmax_loss,
)

MASKED = -1e9
# u = (1,0), (0,1), (0.6,0.8); m = (1,0), (0,1), (1,0) with ids 5, 7, 5; log q = -1, -2, -1; temperature 0.5.
# u.m / 0.5 = [[2,0,2],[0,2,0],[1.2,1.6,1.2]]; minus log q adds 1, 2, 1; movie 5 twice masks (0,2) and (2,0).
HAND_LOGITS = np.array([[3.0, 2.0, MASKED], [1.0, 4.0, 1.0], [MASKED, 3.6, 2.2]])


def test_in_batch_logits_subtract_log_frequency_and_mask_the_same_movie_elsewhere_in_the_batch():
    logits = InBatchLogits(temperature=0.5)(
        np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32), np.array([[1, 0], [0, 1], [1, 0]], np.float32),
        np.array([5, 7, 5], np.int32), np.array([-1, -2, -1], np.float32))
    np.testing.assert_allclose(np.asarray(logits), HAND_LOGITS, rtol=1e-6)
    assert InBatchLogits.from_config(InBatchLogits(temperature=0.5).get_config()).temperature == 0.5


def test_in_batch_loss_is_the_cross_entropy_of_each_row_own_movie():
    # Row 0: -log(e^3 / (e^3 + e^2)); row 1: -log(e^4 / (e + e^4 + e)); row 2: -log(e^2.2 / (e^3.6 + e^2.2)).
    expected = [math.log(1 + math.exp(-1)), -math.log(math.exp(4) / (2 * math.e + math.exp(4))),
                math.log(1 + math.exp(1.4))]
    loss = np.asarray(in_batch_softmax_loss(None, HAND_LOGITS.astype(np.float32)))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def random_inputs(rows: int, sizes: dict[str, int], rng) -> dict[str, np.ndarray]:
    inputs = {f.name: (rng.normal(size=rows).astype(np.float32) if f.kind == "numeric"
                       else rng.integers(1, sizes[f.kind], size=rows).astype(np.int32))
              for f in (*USER_TOWER, *MOVIE_TOWER)}
    return {**inputs, LOG_FREQUENCY: np.log(rng.uniform(0.001, 0.1, size=rows)).astype(np.float32)}


def test_two_tower_trains_saves_and_loads_with_unit_vectors(tmp_path):
    sizes = {"user": 20, "movie": 40, "genre": 21}
    params = Params(embedding_dim=4, hidden_units=8, epochs=2, batch_size=16)
    user_tower, movie_tower, model = build_two_tower(sizes, params)
    rng = np.random.default_rng(0)
    inputs = random_inputs(40, sizes, rng)
    losses = fit_two_tower(model, inputs, params, rng)
    batch = {name: values[:16] for name, values in inputs.items()}

    assert len(losses) == 2 and all(np.isfinite(losses))
    for tower, features in ((user_tower, USER_TOWER), (movie_tower, MOVIE_TOWER)):
        vectors = np.asarray(tower({f.name: batch[f.name] for f in features}))
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "two_tower.keras")
    loaded = keras.saving.load_model(tmp_path / "two_tower.keras", custom_objects={
        "in_batch_softmax_loss": in_batch_softmax_loss})
    np.testing.assert_allclose(np.asarray(loaded(batch)), np.asarray(model(batch)), rtol=1e-5)


def test_cooccurrence_scores_count_neighbours_of_the_last_likes_and_break_ties_by_popularity():
    # Training sequences: user 1 [10, 20, 30], user 2 [20, 30], user 3 [10]. Window 1: 10-20, 20-30 (twice).
    split = RetrievalSplit(None, {1: [10, 20, 30], 2: [20, 30], 3: [10]}, {}, {}, np.array([10, 20, 30, 40]))
    retriever = cooccurrence.train(split, cooccurrence.Params(window=1)).served
    tie = 2 / 3  # popularity 2, 2, 2, 0 over (max + 1)
    # User 3 (last like: 10): 20 once. User 2 (last likes 30, 20): 10 once (from 20), 20 twice (from 30), 30 twice.
    for user, expected in ((3, [tie, 1 + tie, tie, 0]), (2, [1 + tie, 2 + tie, 2 + tie, 0])):
        found = retriever.retrieve(split.user_state(user), 4)
        scores = dict(zip(found.movie_ids.tolist(), found.scores.tolist()))
        np.testing.assert_allclose([scores[movie] for movie in (10, 20, 30, 40)], expected)
    assert retriever.retrieve(UserState(2, (30, 20)), 4, exclude=[30]).movie_ids.tolist() == [20, 10, 40]
    # Next to 10: only 20 (the movies its row calls for), not popular strangers.
    assert retriever.similar(10, 4).movie_ids.tolist() == [20]
