"""Item-kNN: each movie's nearest movies by the cosine of their liked-by-user vectors (Sarwar et al., WWW 2001);
a user's scores are the summed similarities of the neighbours of their last liked movies (the item-item retriever
of the contract). The number of neighbours kept per movie is chosen on validation Recall@10."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.retrievers import (
    RetrievalSplit,
    TrainedRetriever,
    build_liked_matrix,
    keep_top_per_row,
    train_tuned_item_item,
)


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
    size = len(split.index)
    trained = train_tuned_item_item(split, "neighbours", "neighbours", params.neighbours,
                                    lambda neighbours: keep_top_per_row(similarities, neighbours, kept, size))
    if verbose:
        print(f"item-kNN validation Recall@10 by neighbours: {trained.tuning_scores}")
    return trained
