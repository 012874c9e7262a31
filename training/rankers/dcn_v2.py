"""DCN-v2 (Wang et al., "DCN V2: Improved Deep & Cross Network", WWW 2021), parallel form: a cross network, whose
layer l computes x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l (explicit feature crosses of growing degree, full-rank W),
beside an MLP, over the same input (every field's embedding and the numerics); the two outputs are concatenated into
the logit."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers, ops

from training.rankers import RankerInputs, TrainedRanker, blocks


@dataclass(frozen=True)
class Params(blocks.RankerParams):
    cross_layers: int = 2


def suggest_params(trial) -> dict:
    """Its tuning search space: the shared one, and the depth of the cross network."""
    return {**blocks.suggest_params(trial), "cross_layers": trial.suggest_int("cross_layers", 1, 3)}


@keras.saving.register_keras_serializable(package="eaglerec")
class CrossLayer(layers.Layer):
    """One DCN-v2 cross layer over (x_0, x_l), both (batch, d): x_0 * (x_l W + b) + x_l."""

    def build(self, input_shape):
        width = input_shape[0][-1]
        self.weight = self.add_weight(name="weight", shape=(width, width), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(width,), initializer="zeros")

    def call(self, inputs):
        first, previous = inputs
        return first * (ops.matmul(previous, self.weight) + self.bias) + previous


def build_dcn_v2(sizes: dict[str, int], params: Params) -> keras.Model:
    inputs = blocks.build_inputs()
    fields = blocks.embed_categorical(inputs, blocks.build_tables(sizes, params.embedding_dim))
    first = layers.Concatenate(name="dcn_input")([*fields, blocks.stack_numeric(inputs)])
    crossed = first
    for index in range(params.cross_layers):
        crossed = CrossLayer(name=f"cross_{index}")([first, crossed])
    deep = blocks.build_mlp(first, params.hidden_units, params.dropout, "deep")
    both = layers.Concatenate(name="cross_and_deep")([crossed, deep])
    score = layers.Dense(1, activation="sigmoid", name="score")(both)
    return blocks.compile_ranker(keras.Model(inputs, score, name="dcn_v2"), params)


def train(inputs: RankerInputs, params: Params, verbose: int = 0) -> TrainedRanker:
    return blocks.fit_keras_ranker(build_dcn_v2(inputs.sizes, params), inputs, params, verbose)
