"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): an item-item weight matrix B with a
zero diagonal that best rebuilds each user's liked movies from their other liked movies under an L2 penalty λ,
in closed form: P = (XᵀX + λI)⁻¹, B = I - P·diag(1/diag(P)). A user's scores are the sum of the rows of B of their
liked movies: the item-item retriever of the contract, so it is served as it was evaluated (the user's last
LIKED_MOVIE_COUNT likes, what the near-line state holds). λ is chosen on validation Recall@10."""

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
    lambdas: tuple[float, ...] = (100.0, 250.0, 500.0, 1000.0)
    # Movies with fewer training likes get no row or column (XᵀX is inverted densely: its size is the cost).
    min_likes: int = 2
    # Weights kept per row for serving (the largest; they decide every top-100).
    neighbours: int = 300


def fit_ease(liked, penalty: float) -> np.ndarray:
    """B of EASE for a users x movies 0/1 matrix (dense result, zero diagonal)."""
    gram = np.asarray((liked.T @ liked).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += penalty
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)[np.newaxis, :]
    weights[np.diag_indices_from(weights)] = 0.0
    return weights


def train(split: RetrievalSplit, params: Params, verbose: int = 0) -> TrainedRetriever:
    liked = build_liked_matrix(split)
    kept = np.flatnonzero(np.asarray(liked.sum(axis=0)).ravel() >= params.min_likes)
    trained = train_tuned_item_item(split, "lambda", "lambdas", params.lambdas, lambda penalty: keep_top_per_row(
        fit_ease(liked[:, kept], penalty), params.neighbours, kept, len(split.index)))
    if verbose:
        print(f"EASE over {len(kept):,} movies; validation Recall@10 by λ: {trained.tuning_scores}")
    return trained
