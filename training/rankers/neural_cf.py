"""NeuralCF: generalised matrix factorisation and an MLP over the user and movie ids only (He et al., 2017)."""

from __future__ import annotations

import keras
from keras import layers, ops

from eaglerec.contracts.features import MOVIE_ID, USER_ID
from training.rankers import RankerInputs, TrainedRanker, blocks

Params = blocks.RankerParams
suggest_params = blocks.suggest_params  # its tuning search space


def build_neural_cf(sizes: dict[str, int], params: Params) -> keras.Model:
    inputs = blocks.build_inputs()
    ids = {"user": sizes["user"], "movie": sizes["movie"]}
    gmf_tables = blocks.build_tables(ids, params.embedding_dim, "gmf_")
    mlp_tables = blocks.build_tables(ids, params.embedding_dim, "mlp_")
    gmf = gmf_tables["user"](inputs[USER_ID.name]) * gmf_tables["movie"](inputs[MOVIE_ID.name])
    mlp = blocks.build_mlp(ops.concatenate([mlp_tables["user"](inputs[USER_ID.name]),
                                     mlp_tables["movie"](inputs[MOVIE_ID.name])], axis=1),
                    params.hidden_units, params.dropout, "mlp")
    output = layers.Dense(1, activation="sigmoid", name="score")(ops.concatenate([gmf, mlp], axis=1))
    return blocks.compile_ranker(keras.Model(inputs, output, name="neural_cf"), params)


def train(inputs: RankerInputs, params: Params, verbose: int = 0) -> TrainedRanker:
    return blocks.fit_keras_ranker(build_neural_cf(inputs.sizes, params), inputs, params, verbose)
