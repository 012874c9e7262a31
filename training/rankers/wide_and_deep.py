"""Wide&Deep: the deep part of EmbeddingMLP plus a wide part that memorises two hashed crosses."""

from __future__ import annotations

import keras
from keras import layers, ops

from eaglerec.contracts.features import LIKED_MOVIES, MOVIE_GENRES, MOVIE_ID, USER_GENRES
from training.rankers import RankerInputs, TrainedRanker, blocks

Params = blocks.RankerParams
suggest_params = blocks.suggest_params  # its tuning search space
# The wide part's crosses: the candidate with the last liked movie, and movie genre with user genre.
CROSSES = {"movie_x_last_liked": (MOVIE_ID, LIKED_MOVIES[0]), "genre_x_user_genre": (MOVIE_GENRES[0], USER_GENRES[0])}


def build_wide_and_deep(sizes: dict[str, int], params: Params) -> keras.Model:
    inputs = blocks.build_inputs()
    deep = ops.concatenate([*blocks.embed_categorical(inputs, blocks.build_tables(sizes, params.embedding_dim)),
                            blocks.stack_numeric(inputs)], axis=1)
    deep_logit = layers.Dense(1, name="deep_logit")(blocks.build_mlp(deep, params.hidden_units, params.dropout, "deep"))
    wide_terms = []
    for name, (left, right) in CROSSES.items():
        crossed = layers.HashedCrossing(params.wide_bins, name=f"{name}_cross")((inputs[left.name], inputs[right.name]))
        wide_terms.append(layers.Embedding(params.wide_bins, 1, name=f"{name}_weight")(crossed))
    logit = layers.Add(name="wide_and_deep_logit")([deep_logit, *wide_terms])
    output = layers.Activation("sigmoid", name="score")(logit)
    return blocks.compile_ranker(keras.Model(inputs, output, name="wide_and_deep"), params)


def train(inputs: RankerInputs, params: Params, verbose: int = 0) -> TrainedRanker:
    return blocks.fit_keras_ranker(build_wide_and_deep(inputs.sizes, params), inputs, params, verbose)
