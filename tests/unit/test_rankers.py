"""Rankers: every Keras ranker of the catalogue trains through its entry point and saves and loads with identical
scores; the custom layers compute what they claim."""

from importlib import import_module

import numpy as np
import pytest

pytestmark = pytest.mark.unit

keras = pytest.importorskip("keras", reason="the ML env always has Keras; this only keeps collection light")

from eaglerec.contracts.catalogue import load_catalogue  # noqa: E402
from eaglerec.contracts.encoding import FeatureEncoder  # noqa: E402
from eaglerec.contracts.features import FEATURES  # noqa: E402
from training.rankers import RankerInputs  # noqa: E402
from training.rankers.dcn_v2 import CrossLayer  # noqa: E402
from training.rankers.deepfm import FactorizationMachine  # noqa: E402
from training.rankers.din import LocalActivationUnit  # noqa: E402
from training.train import resolve_params  # noqa: E402

# Vocabularies of 29 users, 49 movies and 20 genres: tables of 30, 50 and 21 rows (index 0 = unknown).
ENCODER = FeatureEncoder({"user": list(range(1, 30)), "movie": list(range(1, 50)),
                          "genre": [f"genre {g}" for g in range(20)]})
SIZES = {"user": 30, "movie": 50, "genre": 21}
REGISTERED = [name for name in load_catalogue().names("ranker") if load_catalogue().entry(name).registered]


def random_inputs(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {feature.name: (rng.normal(size=rows).astype(np.float32) if feature.kind == "numeric"
                           else rng.integers(0, SIZES[feature.kind], size=rows).astype(np.int32))
            for feature in FEATURES}


def test_the_tiny_vocabularies_give_the_table_sizes():
    inputs = RankerInputs(None, ENCODER, {}, {})
    assert inputs.sizes == SIZES


@pytest.mark.parametrize("name", REGISTERED)
def test_each_registered_ranker_trains_through_its_entry_point_and_round_trips_save_and_load(name, tmp_path):
    entry = load_catalogue().entry(name)
    params = resolve_params(entry, {"embedding_dim": 4, "hidden_units": (8,), "epochs": 1, "batch_size": 32})
    encoded = {split: random_inputs(64, seed) for seed, split in enumerate(("train", "validation", "test"))}
    labels = {split: np.arange(64) % 2 for split in encoded}
    trained = import_module(entry.module).train(RankerInputs(None, ENCODER, encoded, labels), params)
    model, inputs = trained.keras_model, encoded["test"]
    before = np.asarray(model(inputs))

    model.save(tmp_path / f"{name}.keras")
    loaded = keras.saving.load_model(tmp_path / f"{name}.keras")

    assert before.shape == (64, 1) and ((before >= 0) & (before <= 1)).all()
    np.testing.assert_allclose(trained.score("test"), before.ravel(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(loaded(inputs)), before, rtol=1e-6)
    assert trained.epochs_run == 1 and "val_auc" in trained.history


def test_the_fm_term_equals_the_sum_of_pairwise_dot_products():
    fields = np.array([[[1.0, 2.0], [3.0, 4.0], [-1.0, 0.5]]], dtype=np.float32)
    pairwise = sum(fields[0, i] @ fields[0, j] for i in range(3) for j in range(i + 1, 3))
    assert float(np.asarray(FactorizationMachine()(fields))[0, 0]) == pytest.approx(pairwise)


def test_a_cross_layer_is_x0_times_the_affine_map_of_xl_plus_xl():
    # x0 = (1, 2), xl = (3, -1), W = [[1, 2], [0, 1]], b = (0.5, -1): xl W + b = (3.5, 4); x0 * that + xl = (6.5, 7).
    layer = CrossLayer()
    first, previous = np.array([[1.0, 2.0]], np.float32), np.array([[3.0, -1.0]], np.float32)
    layer([first, previous])
    layer.set_weights([np.array([[1.0, 2.0], [0.0, 1.0]], np.float32), np.array([0.5, -1.0], np.float32)])
    assert np.asarray(layer([first, previous])).tolist() == [[6.5, 7.0]]


def test_attention_ignores_padded_liked_movies_and_keeps_its_config():
    unit = LocalActivationUnit(hidden_units=(6,))
    rng = np.random.default_rng(1)
    liked = rng.normal(size=(2, 5, 4)).astype(np.float32)
    candidate = rng.normal(size=(2, 4)).astype(np.float32)
    mask = np.array([[True, True, False, False, False]] * 2)
    changed = liked.copy()
    changed[:, 2:] = 99.0  # what stands in padded slots must not matter

    np.testing.assert_allclose(np.asarray(unit(liked, candidate, mask)), np.asarray(unit(changed, candidate, mask)),
                               rtol=1e-6)
    assert LocalActivationUnit.from_config(unit.get_config()).hidden_units == (6,)


def test_a_ranker_hands_its_best_validation_epoch_to_the_refit_which_trains_that_long_on_train_only():
    entry = load_catalogue().entry("embedding_mlp")
    params = resolve_params(entry, {"embedding_dim": 4, "hidden_units": (8,), "epochs": 5, "patience": 5,
                                    "batch_size": 16})
    encoded = {split: random_inputs(64, seed) for seed, split in enumerate(("train", "validation", "test"))}
    labels = {split: (values["movie_id"] % 2).astype(int) for split, values in encoded.items()}
    trained = import_module(entry.module).train(RankerInputs(None, ENCODER, encoded, labels), params)
    assert trained.refit_overrides == {"epochs": int(np.argmax(trained.history["val_auc"])) + 1}

    refit_params = resolve_params(entry, {**vars(params), **trained.refit_overrides, "epochs": 2})
    refit = import_module(entry.module).train(
        RankerInputs(None, ENCODER, {"train": encoded["train"]}, {"train": labels["train"]}, refit=True), refit_params)
    assert refit.epochs_run == 2 and "val_auc" not in refit.history and refit.refit_overrides == {}
