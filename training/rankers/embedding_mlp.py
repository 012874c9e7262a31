"""EmbeddingMLP: an embedding for every id and genre, the numerics, one MLP."""

from __future__ import annotations

import keras
from keras import ops

from training.rankers import RankerInputs, TrainedRanker, blocks

Params = blocks.RankerParams
suggest_params = blocks.suggest_params  # its tuning search space


def build_embedding_mlp(sizes: dict[str, int], params: Params) -> keras.Model:
    inputs = blocks.build_inputs()
    x = ops.concatenate([*blocks.embed_categorical(inputs, blocks.build_tables(sizes, params.embedding_dim)),
                         blocks.stack_numeric(inputs)], axis=1)
    return blocks.compile_ranker(keras.Model(inputs, blocks.build_deep_score(x, params), name="embedding_mlp"), params)


def train(inputs: RankerInputs, params: Params, verbose: int = 0) -> TrainedRanker:
    return blocks.fit_keras_ranker(build_embedding_mlp(inputs.sizes, params), inputs, params, verbose)
