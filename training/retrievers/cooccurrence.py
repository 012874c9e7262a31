"""Baseline: how often each movie is liked within `window` steps of the user's last liked movies, in everyone's
training sequences (an item-by-item matrix); popularity breaks ties and is all a user without likes gets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eaglerec.contracts.names import LIKED_MOVIE_COUNT
from eaglerec.contracts.retrieval import ItemItemRetriever
from training.retrievers import RetrievalSplit, TrainedRetriever
from training.retrievers.skipgram import build_skipgram_pairs, index_sequences


@dataclass(frozen=True)
class Params:
    window: int = 3


def train(split: RetrievalSplit, params: Params, verbose: int = 0) -> TrainedRetriever:
    from scipy.sparse import coo_matrix

    pairs = build_skipgram_pairs(index_sequences(split), params.window)
    size = len(split.index)
    counts = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(size, size)).tocsr()
    popularity = split.count_popularity()
    # Below one co-occurrence: only ever decides between movies with equal counts.
    tie_break = popularity / (popularity.max() + 1)
    return TrainedRetriever(ItemItemRetriever(split.movie_ids, counts, tie_break, 1.0, seeds=LIKED_MOVIE_COUNT))
