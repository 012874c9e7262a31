"""item2vec: skip-gram over each user's liked movies in time order (Barkan & Koenigstein, 2016)."""

from __future__ import annotations

import numpy as np

from training.retrievers import RetrievalSplit, TrainedRetriever
from training.retrievers.skipgram import SkipGramParams, build_retriever, index_sequences, train_movie_vectors

Params = SkipGramParams


def train(split: RetrievalSplit, params: SkipGramParams, verbose: int = 0) -> TrainedRetriever:
    rng = np.random.default_rng(params.seed)
    vectors, losses = train_movie_vectors(index_sequences(split), len(split.index), params, rng, verbose)
    return TrainedRetriever(build_retriever(split, vectors, params), losses=tuple(losses))
