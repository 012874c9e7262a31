"""Ranker builders: each saves and loads with identical scores; the custom layers compute what they claim."""

import numpy as np
import pytest

pytestmark = pytest.mark.unit

keras = pytest.importorskip("keras", reason="the ML env always has Keras; this only keeps collection light")

from training.feature_spec import FEATURES  # noqa: E402
from training.rankers import RANKER_BUILDERS, FactorizationMachine, LocalActivationUnit, RankerParams  # noqa: E402

SIZES = {"user": 30, "movie": 50, "genre": 21}


def random_inputs(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {feature.name: (rng.normal(size=rows).astype(np.float32) if feature.kind == "numeric"
                           else rng.integers(0, SIZES[feature.kind], size=rows).astype(np.int32))
            for feature in FEATURES}


@pytest.mark.parametrize("name", sorted(RANKER_BUILDERS))
def test_each_ranker_round_trips_through_save_and_load(name, tmp_path):
    model = RANKER_BUILDERS[name](SIZES, RankerParams(embedding_dim=4, hidden_units=(8,), epochs=1))
    inputs = random_inputs(64)
    model.fit(inputs, np.arange(64) % 2, epochs=1, batch_size=32, verbose=0)
    before = np.asarray(model(inputs))

    model.save(tmp_path / f"{name}.keras")
    loaded = keras.saving.load_model(tmp_path / f"{name}.keras")

    assert before.shape == (64, 1) and ((before >= 0) & (before <= 1)).all()
    np.testing.assert_allclose(np.asarray(loaded(inputs)), before, rtol=1e-6)


def test_the_fm_term_equals_the_sum_of_pairwise_dot_products():
    fields = np.array([[[1.0, 2.0], [3.0, 4.0], [-1.0, 0.5]]], dtype=np.float32)
    pairwise = sum(fields[0, i] @ fields[0, j] for i in range(3) for j in range(i + 1, 3))
    assert float(np.asarray(FactorizationMachine()(fields))[0, 0]) == pytest.approx(pairwise)


def test_attention_ignores_padded_history_and_keeps_its_config():
    unit = LocalActivationUnit(hidden_units=(6,))
    rng = np.random.default_rng(1)
    history = rng.normal(size=(2, 5, 4)).astype(np.float32)
    candidate = rng.normal(size=(2, 4)).astype(np.float32)
    mask = np.array([[True, True, False, False, False]] * 2)
    changed = history.copy()
    changed[:, 2:] = 99.0  # what stands in padded slots must not matter

    np.testing.assert_allclose(np.asarray(unit(history, candidate, mask)), np.asarray(unit(changed, candidate, mask)),
                               rtol=1e-6)
    assert LocalActivationUnit.from_config(unit.get_config()).hidden_units == (6,)
