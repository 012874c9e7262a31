"""Item-kNN: each movie's nearest movies by the cosine of their liked-by-user vectors (Sarwar et al., WWW 2001);
a user's scores are the summed similarities of the neighbours of their last liked movies (the item-item retriever
of the contract). The number of neighbours kept per movie is chosen on validation Recall@10."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eaglerec.contracts.names import LIKED_MOVIE_COUNT
from eaglerec.contracts.retrieval import ItemItemRetriever
from training.retrievers import (
    RetrievalSplit,
    TrainedRetriever,
    build_liked_matrix,
    keep_top_per_row,
    popularity_prior,
    tune_on_validation,
)

PRIOR_WEIGHT = 1e-6  # ties only, as in EASE


@dataclass(frozen=True)
class Params:
    neighbours: tuple[int, ...] = (20, 50, 100, 200)
    # Added to the norms' product: shrinks the similarity of movies few users liked (Koren's shrinkage).
    shrink: float = 10.0


def cosine_similarities(liked, shrink: float) -> np.ndarray:
    """Movies x movies: co-likes / (‖a‖·‖b‖ + shrink), zero diagonal."""
    overlap = np.asarray((liked.T @ liked).todense(), dtype=np.float64)
    norms = np.sqrt(np.diag(overlap))
    similarities = overlap / (np.outer(norms, norms) + shrink)
    similarities[np.diag_indices_from(similarities)] = 0.0
    return similarities


def train(split: RetrievalSplit, params: Params, verbose: int = 0) -> TrainedRetriever:
    liked = build_liked_matrix(split)
    kept = np.flatnonzero(np.asarray(liked.sum(axis=0)).ravel() > 0)  # a movie nobody liked has no neighbours
    similarities = cosine_similarities(liked[:, kept], params.shrink)
    prior = popularity_prior(split.count_popularity())

    def build(neighbours: int) -> ItemItemRetriever:
        weights = keep_top_per_row(similarities, neighbours, kept, len(split.index))
        return ItemItemRetriever(split.movie_ids, weights, prior, PRIOR_WEIGHT, seeds=LIKED_MOVIE_COUNT)

    neighbours, retriever, scores = tune_on_validation(split, build, params.neighbours)
    if verbose:
        print(f"item-kNN validation Recall@10 by neighbours: {scores}; chose {neighbours}")
    return TrainedRetriever(retriever, tuned={"neighbours": neighbours},
                            tuning_scores={f"neighbours_{value}": score for value, score in scores.items()})
