"""Keras 3 rankers, functional builders reading the feature spec: P(rating >= 3.5 | user, movie, as-of features)."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers, ops

from training.feature_spec import FEATURES, HISTORY, MOVIE_GENRES, MOVIE_ID, NUMERIC, USER_GENRES, USER_ID

CATEGORICAL = tuple(feature for feature in FEATURES if feature.kind != "numeric")


@dataclass(frozen=True)
class RankerParams:
    """What a ranker is; logged to MLflow with every run."""

    embedding_dim: int = 16
    hidden_units: tuple[int, ...] = (128, 64)
    attention_units: tuple[int, ...] = (36,)
    dropout: float = 0.1
    learning_rate: float = 1e-3
    batch_size: int = 512
    # At most this many epochs; training stops once validation AUC has not improved for `patience` epochs.
    epochs: int = 10
    patience: int = 1
    wide_bins: int = 10_000


@keras.saving.register_keras_serializable(package="eaglerec")
class FactorizationMachine(layers.Layer):
    """Second-order FM term over field vectors (batch, fields, k): 0.5 * sum_k((sum_f v)^2 - sum_f v^2)."""

    def call(self, fields):
        square_of_sum = ops.square(ops.sum(fields, axis=1))
        sum_of_squares = ops.sum(ops.square(fields), axis=1)
        return 0.5 * ops.sum(square_of_sum - sum_of_squares, axis=1, keepdims=True)


@keras.saving.register_keras_serializable(package="eaglerec")
class LocalActivationUnit(layers.Layer):
    """DIN's attention: weight each history item by an MLP of (item, candidate, item - candidate, item * candidate),
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


def build_inputs() -> dict[str, keras.KerasTensor]:
    return {feature.name: keras.Input(shape=(), name=feature.name,
                                      dtype="float32" if feature.kind == "numeric" else "int32")
            for feature in FEATURES}


def build_tables(sizes: dict[str, int], dim: int, prefix: str = "") -> dict[str, layers.Embedding]:
    """One embedding table per kind, shared by every feature of that kind (movie_id and history share movies)."""
    return {kind: layers.Embedding(size, dim, name=f"{prefix}{kind}_embedding") for kind, size in sizes.items()}


def stack_numeric(inputs) -> keras.KerasTensor:
    return ops.stack([inputs[feature.name] for feature in NUMERIC], axis=1)


def build_mlp(x, units: tuple[int, ...], dropout: float, name: str):
    for index, width in enumerate(units):
        x = layers.Dense(width, activation="relu", name=f"{name}_dense_{index}")(x)
        x = layers.Dropout(dropout, name=f"{name}_dropout_{index}")(x)
    return x


def build_deep_score(x, params: RankerParams):
    """The MLP tower and its sigmoid output."""
    hidden = build_mlp(x, params.hidden_units, params.dropout, "deep")
    return layers.Dense(1, activation="sigmoid", name="score")(hidden)


def embed_categorical(inputs, tables) -> list:
    return [tables[feature.kind](inputs[feature.name]) for feature in CATEGORICAL]


def compile_ranker(model: keras.Model, params: RankerParams) -> keras.Model:
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc"), keras.metrics.AUC(curve="PR", name="pr_auc")])
    return model


def build_embedding_mlp(sizes: dict[str, int], params: RankerParams) -> keras.Model:
    inputs = build_inputs()
    x = ops.concatenate([*embed_categorical(inputs, build_tables(sizes, params.embedding_dim)),
                         stack_numeric(inputs)], axis=1)
    return compile_ranker(keras.Model(inputs, build_deep_score(x, params), name="embedding_mlp"), params)


def build_wide_and_deep(sizes: dict[str, int], params: RankerParams) -> keras.Model:
    inputs = build_inputs()
    deep = ops.concatenate([*embed_categorical(inputs, build_tables(sizes, params.embedding_dim)),
                            stack_numeric(inputs)], axis=1)
    deep_logit = layers.Dense(1, name="deep_logit")(build_mlp(deep, params.hidden_units, params.dropout, "deep"))
    # Wide part: memorise co-occurrences, the candidate with the last liked movie and movie genre with user genre.
    crosses = {"movie_x_last_liked": (MOVIE_ID, HISTORY[0]), "genre_x_user_genre": (MOVIE_GENRES[0], USER_GENRES[0])}
    wide_terms = []
    for name, (left, right) in crosses.items():
        crossed = layers.HashedCrossing(params.wide_bins, name=f"{name}_cross")((inputs[left.name], inputs[right.name]))
        wide_terms.append(layers.Embedding(params.wide_bins, 1, name=f"{name}_weight")(crossed))
    logit = layers.Add(name="wide_and_deep_logit")([deep_logit, *wide_terms])
    output = layers.Activation("sigmoid", name="score")(logit)
    return compile_ranker(keras.Model(inputs, output, name="wide_and_deep"), params)


def build_neural_cf(sizes: dict[str, int], params: RankerParams) -> keras.Model:
    inputs = build_inputs()
    gmf_tables = build_tables({"user": sizes["user"], "movie": sizes["movie"]}, params.embedding_dim, "gmf_")
    mlp_tables = build_tables({"user": sizes["user"], "movie": sizes["movie"]}, params.embedding_dim, "mlp_")
    gmf = gmf_tables["user"](inputs[USER_ID.name]) * gmf_tables["movie"](inputs[MOVIE_ID.name])
    mlp = build_mlp(ops.concatenate([mlp_tables["user"](inputs[USER_ID.name]),
                                     mlp_tables["movie"](inputs[MOVIE_ID.name])], axis=1),
                    params.hidden_units, params.dropout, "mlp")
    output = layers.Dense(1, activation="sigmoid", name="score")(ops.concatenate([gmf, mlp], axis=1))
    return compile_ranker(keras.Model(inputs, output, name="neural_cf"), params)


def build_deepfm(sizes: dict[str, int], params: RankerParams) -> keras.Model:
    inputs = build_inputs()
    fields = embed_categorical(inputs, build_tables(sizes, params.embedding_dim))
    numeric = stack_numeric(inputs)
    # Each numeric feature is a field too: its value times a learnt vector.
    numeric_fields = layers.Dense(params.embedding_dim * len(NUMERIC), use_bias=False, name="numeric_fields")(numeric)
    field_vectors = ops.concatenate([ops.stack(fields, axis=1),
                                     ops.reshape(numeric_fields, (-1, len(NUMERIC), params.embedding_dim))], axis=1)
    first_order_tables = build_tables(sizes, 1, "linear_")
    first_order = layers.Add(name="first_order")([
        *embed_categorical(inputs, first_order_tables),
        layers.Dense(1, name="numeric_linear")(numeric)])
    second_order = FactorizationMachine(name="fm")(field_vectors)
    deep = build_mlp(layers.Flatten()(field_vectors), params.hidden_units, params.dropout, "deep")
    logit = layers.Add(name="deepfm_logit")([first_order, second_order, layers.Dense(1, name="deep_logit")(deep)])
    return compile_ranker(keras.Model(inputs, layers.Activation("sigmoid", name="score")(logit), name="deepfm"),
                          params)


def build_din(sizes: dict[str, int], params: RankerParams) -> keras.Model:
    inputs = build_inputs()
    tables = build_tables(sizes, params.embedding_dim)
    candidate = tables["movie"](inputs[MOVIE_ID.name])
    history_ids = ops.stack([inputs[feature.name] for feature in HISTORY], axis=1)
    history = tables["movie"](history_ids)
    interest = LocalActivationUnit(params.attention_units, name="attention")(history, candidate, history_ids > 0)
    others = [tables[feature.kind](inputs[feature.name]) for feature in (USER_ID, *MOVIE_GENRES, *USER_GENRES)]
    x = ops.concatenate([interest, candidate, *others, stack_numeric(inputs)], axis=1)
    return compile_ranker(keras.Model(inputs, build_deep_score(x, params), name="din"), params)


RANKER_BUILDERS = {"embedding_mlp": build_embedding_mlp, "wide_and_deep": build_wide_and_deep,
                   "neural_cf": build_neural_cf, "deepfm": build_deepfm, "din": build_din}
