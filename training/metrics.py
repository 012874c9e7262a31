"""Evaluation metrics: rankers on labelled events, retrievers on each user's held-out positives (DATA.md protocol)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

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


def score_users(recommended: Mapping[int, Sequence[int]], relevant: Mapping[int, set[int]], cutoff: int,
                users: Sequence[int]) -> dict[str, np.ndarray]:
    """Recall@cutoff, NDCG@cutoff and hit@cutoff of each user in `users` (in that order): the per-user values the
    averages are made of, and what a paired comparison of two retrievers resamples."""
    recalls, ndcgs, hits = [], [], []
    for user in users:
        top = list(recommended.get(user, ()))[:cutoff]
        found = [movie in relevant[user] for movie in top]
        recalls.append(sum(found) / len(relevant[user]))
        ndcgs.append(discounted_gain(found) / discounted_gain([True] * min(cutoff, len(relevant[user]))))
        hits.append(float(any(found)))
    return {f"recall_at_{cutoff}": np.array(recalls), f"ndcg_at_{cutoff}": np.array(ndcgs),
            f"hit_rate_at_{cutoff}": np.array(hits)}


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
        metrics.update({name: float(values.mean())
                        for name, values in score_users(recommended, relevant, cutoff, users).items()})
        shown = {movie for user in users for movie in list(recommended.get(user, ()))[:cutoff]}
        metrics[f"coverage_at_{cutoff}"] = len(shown) / catalogue_size
    return metrics


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """ROC AUC with example weights (ties count one half): the chance a weighted positive outscores a weighted
    negative. With unit weights it is sklearn's roc_auc_score."""
    levels, inverse = np.unique(scores, return_inverse=True)
    return auc_of_levels(inverse, len(levels), labels, weights)


def auc_of_levels(inverse: np.ndarray, levels: int, labels: np.ndarray, weights: np.ndarray) -> float:
    """weighted_auc from each example's score level (np.unique's inverse): a bootstrap ranks the scores once."""
    positive = np.bincount(inverse, weights=weights * labels, minlength=levels)
    negative = np.bincount(inverse, weights=weights * (1 - labels), minlength=levels)
    below = np.cumsum(negative) - negative
    return float((positive * (below + 0.5 * negative)).sum() / (positive.sum() * negative.sum()))


@dataclass(frozen=True)
class PairedDifference:
    """candidate - champion on the same test set, with a bootstrap interval over users."""

    candidate: float
    champion: float
    low: float
    high: float
    level: float
    users: int

    @property
    def difference(self) -> float:
        return self.candidate - self.champion


def resample_users(users: int, resamples: int, seed: int) -> np.ndarray:
    """resamples x users: how many times each user is drawn in each bootstrap resample (with replacement)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, users, size=(resamples, users))
    return np.stack([np.bincount(row, minlength=users) for row in draws]).astype(float)


def compare_user_means(candidate: np.ndarray, champion: np.ndarray, resamples: int = 2000, level: float = 0.95,
                       seed: int = 0) -> PairedDifference:
    """Paired bootstrap over users of the difference of two per-user metrics (the same users, in the same order)."""
    counts = resample_users(len(candidate), resamples, seed)
    differences = counts @ (candidate - champion) / len(candidate)
    low, high = np.quantile(differences, [(1 - level) / 2, (1 + level) / 2])
    return PairedDifference(float(candidate.mean()), float(champion.mean()), float(low), float(high), level,
                            len(candidate))


def compare_aucs(candidate: np.ndarray, champion: np.ndarray, labels: np.ndarray, users: np.ndarray,
                 resamples: int = 1000, level: float = 0.95, seed: int = 0) -> PairedDifference:
    """Paired bootstrap over users (a user's examples stay together) of the AUC difference of two rankers' scores
    of the same examples."""
    labels = np.asarray(labels, dtype=float)
    ids, user_of_example = np.unique(users, return_inverse=True)
    counts = resample_users(len(ids), resamples, seed)
    ranked = [np.unique(scores, return_inverse=True) for scores in (candidate, champion)]
    differences = [auc_of_levels(ranked[0][1], len(ranked[0][0]), labels, row[user_of_example])
                   - auc_of_levels(ranked[1][1], len(ranked[1][0]), labels, row[user_of_example]) for row in counts]
    low, high = np.quantile(differences, [(1 - level) / 2, (1 + level) / 2])
    ones = np.ones(len(labels))
    return PairedDifference(weighted_auc(candidate, labels, ones), weighted_auc(champion, labels, ones), float(low),
                            float(high), level, len(ids))


def bootstrap_users(statistic: Callable[[np.ndarray], float], users: int, resamples: int = 1000,
                    level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of a statistic over users: statistic(weights), weights[i] being how often
    user i is drawn in a resample (a user's examples stay together)."""
    values = [statistic(row) for row in resample_users(users, resamples, seed)]
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
