"""Baseline: the movies with the most training positives, the same list for everyone."""

from __future__ import annotations

from dataclasses import dataclass

from eaglerec.contracts.retrieval import PopularityRetriever
from training.retrievers import RetrievalSplit, TrainedRetriever, popularity_prior


@dataclass(frozen=True)
class Params:
    """No hyperparameters."""


def train(split: RetrievalSplit, params: Params, verbose: int = 0) -> TrainedRetriever:
    return TrainedRetriever(PopularityRetriever(split.movie_ids, popularity_prior(split.count_popularity())))
