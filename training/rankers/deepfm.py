"""DeepFM: first-order terms, a factorization machine over the field vectors, and an MLP over the same vectors."""

from __future__ import annotations

import keras
from keras import layers, ops

from eaglerec.contracts.features import NUMERIC
from training.rankers import RankerInputs, TrainedRanker, blocks

Params = blocks.RankerParams
suggest_params = blocks.suggest_params  # its tuning search space


@keras.saving.register_keras_serializable(package="eaglerec")
class FactorizationMachine(layers.Layer):
    """Second-order FM term over field vectors (batch, fields, k): 0.5 * sum_k((sum_f v)^2 - sum_f v^2)."""

    def call(self, fields):
        square_of_sum = ops.square(ops.sum(fields, axis=1))
        sum_of_squares = ops.sum(ops.square(fields), axis=1)
        return 0.5 * ops.sum(square_of_sum - sum_of_squares, axis=1, keepdims=True)


def build_deepfm(sizes: dict[str, int], params: Params) -> keras.Model:
    inputs = blocks.build_inputs()
    fields = blocks.embed_categorical(inputs, blocks.build_tables(sizes, params.embedding_dim))
    numeric = blocks.stack_numeric(inputs)
    # Each numeric feature is a field too: its value times a learnt vector.
    numeric_fields = layers.Dense(params.embedding_dim * len(NUMERIC), use_bias=False, name="numeric_fields")(numeric)
    field_vectors = ops.concatenate([ops.stack(fields, axis=1),
                                     ops.reshape(numeric_fields, (-1, len(NUMERIC), params.embedding_dim))], axis=1)
    first_order = layers.Add(name="first_order")([
        *blocks.embed_categorical(inputs, blocks.build_tables(sizes, 1, "linear_")),
        layers.Dense(1, name="numeric_linear")(numeric)])
    second_order = FactorizationMachine(name="fm")(field_vectors)
    deep = blocks.build_mlp(layers.Flatten()(field_vectors), params.hidden_units, params.dropout, "deep")
    logit = layers.Add(name="deepfm_logit")([first_order, second_order, layers.Dense(1, name="deep_logit")(deep)])
    return blocks.compile_ranker(keras.Model(inputs, layers.Activation("sigmoid", name="score")(logit), name="deepfm"),
                          params)


def train(inputs: RankerInputs, params: Params, verbose: int = 0) -> TrainedRanker:
    return blocks.fit_keras_ranker(build_deepfm(inputs.sizes, params), inputs, params, verbose)
