"""DIN: the candidate attends over the user's last liked movies (Zhou et al., KDD 2018)."""

from __future__ import annotations

import keras
from keras import layers, ops

from eaglerec.contracts.features import LIKED_MOVIES, MOVIE_GENRES, MOVIE_ID, USER_GENRES, USER_ID
from training.rankers import RankerInputs, TrainedRanker, blocks

Params = blocks.RankerParams


def suggest_params(trial) -> dict:
    """Its tuning search space: the shared one, and the attention MLP's width."""
    return {**blocks.suggest_params(trial),
            "attention_units": (trial.suggest_categorical("attention_units", [16, 36, 64]),)}


@keras.saving.register_keras_serializable(package="eaglerec")
class LocalActivationUnit(layers.Layer):
    """DIN's attention: weight each liked movie by an MLP of (item, candidate, item - candidate, item * candidate),
    then sum the weighted items. Padding (mask False) weighs nothing; weights are not softmaxed, as in the paper."""

    def __init__(self, hidden_units=(36,), **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(hidden_units)
        self.hidden = [layers.Dense(units, activation="sigmoid") for units in self.hidden_units]
        self.score = layers.Dense(1)

    def call(self, history, candidate, mask):
        steps = ops.shape(history)[1]
        candidates = ops.repeat(ops.expand_dims(candidate, 1), steps, axis=1)
        x = ops.concatenate([history, candidates, history - candidates, history * candidates], axis=-1)
        for dense in self.hidden:
            x = dense(x)
        weights = self.score(x) * ops.expand_dims(ops.cast(mask, history.dtype), -1)
        return ops.sum(weights * history, axis=1)

    def get_config(self):
        return {**super().get_config(), "hidden_units": list(self.hidden_units)}


def build_din(sizes: dict[str, int], params: Params) -> keras.Model:
    inputs = blocks.build_inputs()
    tables = blocks.build_tables(sizes, params.embedding_dim)
    candidate = tables["movie"](inputs[MOVIE_ID.name])
    liked_ids = ops.stack([inputs[feature.name] for feature in LIKED_MOVIES], axis=1)
    interest = LocalActivationUnit(params.attention_units, name="attention")(
        tables["movie"](liked_ids), candidate, liked_ids > 0)
    others = [tables[feature.kind](inputs[feature.name]) for feature in (USER_ID, *MOVIE_GENRES, *USER_GENRES)]
    x = ops.concatenate([interest, candidate, *others, blocks.stack_numeric(inputs)], axis=1)
    return blocks.compile_ranker(keras.Model(inputs, blocks.build_deep_score(x, params), name="din"), params)


def train(inputs: RankerInputs, params: Params, verbose: int = 0) -> TrainedRanker:
    return blocks.fit_keras_ranker(build_din(inputs.sizes, params), inputs, params, verbose)
