"""Evaluation metrics: rankers on labelled events, retrievers on each user's held-out positives (DATA.md protocol)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def score_ranker(labels: Sequence[int], scores: Sequence[float]) -> dict[str, float]:
    """Return AUC, PR-AUC (average precision) and log loss of predicted probabilities against 0/1 labels."""
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    labels, scores = np.asarray(labels), np.clip(np.asarray(scores, dtype=float), 1e-7, 1 - 1e-7)
    return {"auc": float(roc_auc_score(labels, scores)), "pr_auc": float(average_precision_score(labels, scores)),
            "log_loss": float(log_loss(labels, scores, labels=[0, 1]))}


def discounted_gain(hits: Iterable[bool]) -> float:
    """Binary-gain DCG: a hit at 1-based rank r adds 1 / log2(r + 1)."""
    return sum(1.0 / math.log2(rank + 1) for rank, hit in enumerate(hits, start=1) if hit)


def score_retriever(recommended: Mapping[int, Sequence[int]], relevant: Mapping[int, set[int]],
                    catalogue_size: int, cutoffs: Sequence[int] = (10, 50, 100)) -> dict[str, float]:
    """Return Recall@K, NDCG@K, hit rate@K and catalogue coverage@K averaged over the users of `relevant`.

    A user with no recommendations counts as all misses. NDCG's ideal DCG is over min(K, |relevant|) hits.
    """
    users = [user for user, movies in relevant.items() if movies]
    if not users:
        raise ValueError("no user has a relevant movie to evaluate against")
    metrics = {}
    for cutoff in cutoffs:
        recalls, ndcgs, hits, shown = [], [], [], set()
        for user in users:
            top = list(recommended.get(user, ()))[:cutoff]
            shown.update(top)
            found = [movie in relevant[user] for movie in top]
            recalls.append(sum(found) / len(relevant[user]))
            ndcgs.append(discounted_gain(found) / discounted_gain([True] * min(cutoff, len(relevant[user]))))
            hits.append(float(any(found)))
        metrics[f"recall_at_{cutoff}"] = float(np.mean(recalls))
        metrics[f"ndcg_at_{cutoff}"] = float(np.mean(ndcgs))
        metrics[f"hit_rate_at_{cutoff}"] = float(np.mean(hits))
        metrics[f"coverage_at_{cutoff}"] = len(shown) / catalogue_size
    return metrics
