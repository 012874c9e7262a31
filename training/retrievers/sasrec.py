"""SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018): causal self-attention over a
user's liked movies in time order predicts the next liked movie at every position. Trained here in Keras with a full
softmax over the catalogue (cross-entropy on every position, which beats SASRec's one sampled negative: Klenitskiy &
Vasilev, RecSys 2023); served by the contract's numpy twin of the same encoder (SequentialRetriever), fed the user's
liked movies from the near-line state, so a new rating changes the next answer. Early stopping on validation
Recall@10 (test is never looked at)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from eaglerec.contracts.retrieval import SequentialRetriever
from training.retrievers import (
    TIE_BREAK_WEIGHT,
    RetrievalSplit,
    TrainedRetriever,
    popularity_prior,
    score_on_validation,
)

EPSILON = 1e-6  # layer normalisation


@dataclass(frozen=True)
class Params:
    embedding_dim: int = 48
    blocks: int = 2
    # The liked movies the encoder reads, latest last; the service's state holds those among the last 100 ratings.
    max_length: int = 50
    dropout: float = 0.2
    learning_rate: float = 2e-3
    batch_size: int = 128
    # At most this many epochs; stops once validation Recall@10 has not improved for `patience` evaluations.
    epochs: int = 60
    evaluate_every: int = 3
    patience: int = 3
    seed: int = 0


def suggest_params(trial) -> dict:
    """Its tuning search space (`eaglerec tune`); epochs stay the maximum, early stopping picks within a trial."""
    return {"embedding_dim": trial.suggest_categorical("embedding_dim", [32, 48, 64]),
            "blocks": trial.suggest_int("blocks", 1, 2),
            "max_length": trial.suggest_categorical("max_length", [20, 50]),
            "dropout": trial.suggest_float("dropout", 0.1, 0.5),
            "learning_rate": trial.suggest_float("learning_rate", 5e-4, 5e-3, log=True)}


class SequenceEncoder(layers.Layer):
    """The encoder, op for op as eaglerec.contracts.retrieval.encode_sequences computes it (plus dropout while
    training): scaled movie embeddings + learnt positions, pre-norm causal self-attention and feed-forward blocks."""

    def __init__(self, movies: int, max_length: int, dim: int, blocks: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.movies, self.max_length, self.dim, self.blocks = movies, max_length, dim, blocks
        self.dropout = layers.Dropout(dropout)

    def build(self, input_shape):
        normal = keras.initializers.RandomNormal(stddev=self.dim ** -0.5)
        glorot = keras.initializers.GlorotUniform()
        self.parts = {"movie_table": self.add_weight(name="movie_table", shape=(self.movies + 1, self.dim),
                                                     initializer=normal),
                      "position_table": self.add_weight(name="position_table", shape=(self.max_length, self.dim),
                                                        initializer=normal)}
        for block in range(self.blocks):
            for name in ("query", "key", "value", "feed_in", "feed_out"):
                self.parts[f"block{block}/{name}"] = self.add_weight(name=f"block{block}_{name}",
                                                                     shape=(self.dim, self.dim), initializer=glorot)
            for name in ("feed_in_bias", "feed_out_bias", "attention_norm_beta", "feed_norm_beta"):
                self.parts[f"block{block}/{name}"] = self.add_weight(name=f"block{block}_{name}", shape=(self.dim,),
                                                                     initializer="zeros")
            for name in ("attention_norm_gamma", "feed_norm_gamma"):
                self.parts[f"block{block}/{name}"] = self.add_weight(name=f"block{block}_{name}", shape=(self.dim,),
                                                                     initializer="ones")
        self.parts["output_norm_gamma"] = self.add_weight(name="output_norm_gamma", shape=(self.dim,),
                                                          initializer="ones")
        self.parts["output_norm_beta"] = self.add_weight(name="output_norm_beta", shape=(self.dim,),
                                                         initializer="zeros")

    @staticmethod
    def normalise(x, gamma, beta):
        mean = ops.mean(x, axis=-1, keepdims=True)
        variance = ops.mean(ops.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) / ops.sqrt(variance + EPSILON) * gamma + beta

    def call(self, positions, training=False):
        w = self.parts
        length = positions.shape[1]
        real = ops.cast(positions > 0, "float32")[..., None]
        x = ops.take(w["movie_table"], positions, axis=0) * math.sqrt(self.dim) + w["position_table"][None, -length:]
        x = self.dropout(x * real, training=training)
        causal = ops.cast(ops.tril(ops.ones((length, length))), "bool")[None]
        allowed = ops.logical_and(causal, (positions > 0)[:, None, :])
        for block in range(self.blocks):
            b = {name.split("/", 1)[1]: value for name, value in w.items() if name.startswith(f"block{block}/")}
            h = self.normalise(x, b["attention_norm_gamma"], b["attention_norm_beta"])
            queries, keys, values = ops.matmul(h, b["query"]), ops.matmul(h, b["key"]), ops.matmul(h, b["value"])
            logits = ops.matmul(queries, ops.transpose(keys, (0, 2, 1))) / math.sqrt(self.dim)
            attention = ops.softmax(ops.where(allowed, logits, -1e9), axis=-1)
            x = x + self.dropout(ops.matmul(attention, values), training=training)
            h = self.normalise(x, b["feed_norm_gamma"], b["feed_norm_beta"])
            feed = ops.matmul(ops.relu(ops.matmul(h, b["feed_in"]) + b["feed_in_bias"]), b["feed_out"])
            x = (x + self.dropout(feed + b["feed_out_bias"], training=training)) * real
        return self.normalise(x, w["output_norm_gamma"], w["output_norm_beta"])

    def export(self) -> dict[str, np.ndarray]:
        """The weights by the names the contract's numpy encoder reads."""
        return {name: np.asarray(keras.ops.convert_to_numpy(weight)) for name, weight in self.parts.items()}


class NextMovieModel(keras.Model):
    """The encoder and, at every position, logits over the catalogue: dot products with the same movie table."""

    def __init__(self, encoder: SequenceEncoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder

    def call(self, positions, training=False):
        encoded = self.encoder(positions, training=training)
        return ops.matmul(encoded, ops.transpose(self.encoder.parts["movie_table"]))


def build_windows(split: RetrievalSplit, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (windows, max_length) of table rows (movie position + 1; 0 = padding, on the left):
    every user's liked sequence cut from its end into windows of max_length + 1; the target of position t is the
    movie at t + 1."""
    inputs, targets = [], []
    for movies in split.train_sequences.values():
        rows = [split.index[movie] + 1 for movie in movies]
        for end in range(len(rows), 1, -max_length):
            window = rows[max(0, end - max_length - 1):end]
            padding = [0] * (max_length + 1 - len(window))
            inputs.append(padding + window[:-1])
            targets.append(padding + window[1:])
    return np.array(inputs, dtype=np.int32), np.array(targets, dtype=np.int32)


def build_retriever(split: RetrievalSplit, encoder: SequenceEncoder, params: Params,
                    prior: np.ndarray) -> SequentialRetriever:
    return SequentialRetriever(split.movie_ids, encoder.export(), prior, TIE_BREAK_WEIGHT, params.max_length,
                               params.blocks, EPSILON)


def train(split: RetrievalSplit, params: Params, verbose: int = 0) -> TrainedRetriever:
    keras.utils.set_random_seed(params.seed)
    inputs, targets = build_windows(split, params.max_length)
    encoder = SequenceEncoder(len(split.index), params.max_length, params.embedding_dim, params.blocks,
                              params.dropout)
    model = NextMovieModel(encoder)
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    prior = popularity_prior(split.count_popularity())
    best, best_score, best_epoch, waited, losses = None, -1.0, 0, 0, []
    for epoch in range(1, params.epochs + 1):
        history = model.fit(inputs, targets, sample_weight=(targets > 0).astype(np.float32),
                            batch_size=params.batch_size, epochs=1, shuffle=True, verbose=verbose)
        losses.append(float(history.history["loss"][-1]))
        if split.refit:  # the epochs validation chose, nothing to stop on
            continue
        if epoch % params.evaluate_every and epoch != params.epochs:
            continue
        retriever = build_retriever(split, encoder, params, prior)
        score = score_on_validation(retriever, split)
        if verbose:
            print(f"epoch {epoch}: loss {losses[-1]:.4f}, validation Recall@10 {score:.4f}")
        if score > best_score:
            best, best_score, best_epoch, waited = retriever, score, epoch, 0
        else:
            waited += 1
            if waited >= params.patience:
                break
    if split.refit:
        return TrainedRetriever(build_retriever(split, encoder, params, prior), losses=tuple(losses))
    return TrainedRetriever(best, losses=tuple(losses), tuned={"epochs": best_epoch},
                            tuning_scores={f"epoch_{best_epoch}": best_score}, refit_overrides={"epochs": best_epoch})
