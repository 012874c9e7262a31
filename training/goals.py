"""The quality goals of the model catalogue (issue 16), checked on the comparison's runs (the latest of each model on
the current data version): each figure with its 95 % bootstrap interval over test users, from the runs' logged test
answers (no model is re-scored). The best model of a kind is the one best on validation, so its test figure is not a
maximum taken over test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from eaglerec.contracts.catalogue import load_catalogue

# Recall@10 of the best retriever over EASE's; NDCG@10 of the best retriever; AUC of the best ranker.
RECALL_OVER_EASE, BEST_NDCG, BEST_AUC = 1.3, 0.10, 0.81
REFERENCE_RETRIEVER = "ease"
# DIN, which reads the order of the user's history, should rank at least as well as Wide&Deep.
HISTORY_RANKER, CROSS_RANKER = "din", "wide_and_deep"


class MissingAnswersError(Exception):
    """A run the goals need logged no test answers."""


@dataclass(frozen=True)
class GoalCheck:
    goal: str
    measured: str  # how the figure was made, or why it could not be
    target: float
    value: float | None = None
    low: float | None = None
    high: float | None = None

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        if self.low is not None and self.low >= self.target:
            return "met (the whole interval)"
        return "met (the estimate; the interval reaches below)" if self.value >= self.target else "not met"


def render_goals(checks: list[GoalCheck]) -> str:
    lines = ["| goal | measured | value | 95 % interval | verdict |", "|---|---|---|---|---|"]
    for check in checks:
        value = "" if check.value is None else f"{check.value:.4f}"
        interval = "" if check.low is None else f"[{check.low:.4f}, {check.high:.4f}]"
        lines.append(f"| {check.goal} | {check.measured} | {value} | {interval} | {check.verdict} |")
    return "\n".join(lines) + "\n"


def choose_best(table: pd.DataFrame, validation_column: str, exclude: tuple[str, ...] = ()) -> str | None:
    """The model with the best validation figure among those that are not baselines (nor excluded)."""
    catalogue = load_catalogue()
    chosen = np.array([model in catalogue.models and not catalogue.entry(model).baseline and model not in exclude
                       for model in table["model"]], dtype=bool)
    candidates = table.loc[chosen].dropna(subset=[validation_column])
    return None if candidates.empty else str(candidates.loc[candidates[validation_column].idxmax(), "model"])


RATIO_GOAL = f"best retriever Recall@10 >= {RECALL_OVER_EASE:g} x {REFERENCE_RETRIEVER}'s"
NDCG_GOAL = f"best retriever NDCG@10 >= {BEST_NDCG:g}"
AUC_GOAL = f"best ranker AUC >= {BEST_AUC:g}"
ORDER_GOAL = f"{HISTORY_RANKER} AUC >= {CROSS_RANKER}'s"
TARGETS = {RATIO_GOAL: RECALL_OVER_EASE, NDCG_GOAL: BEST_NDCG, AUC_GOAL: BEST_AUC, ORDER_GOAL: 0.0}


def check_quality_goals(tables: dict[str, pd.DataFrame], run_ids: dict[str, dict[str, str]]) -> list[GoalCheck]:
    """Check each goal on the comparison's tables (model, figures) and the run id of each model's latest run."""
    from training.tracking import load_test_answers

    def answers_of(run_id: str) -> pd.DataFrame:
        answers = load_test_answers(run_id)
        if answers is None:
            raise MissingAnswersError(f"run {run_id[:8]} logged no test answers (trained before they were logged)")
        return answers

    try:
        return [*check_retrieval_goals(tables["retrievers"], run_ids.get("retrievers", {}), answers_of),
                *check_ranking_goals(tables["rankers"], run_ids.get("rankers", {}), answers_of)]
    except MissingAnswersError as missing:
        return [GoalCheck(goal, str(missing), target) for goal, target in TARGETS.items()]


def check_retrieval_goals(table: pd.DataFrame, run_ids: dict[str, str], answers_of) -> list[GoalCheck]:
    from training.metrics import bootstrap_users

    best = choose_best(table, "val Recall@10", (REFERENCE_RETRIEVER,))
    if best is None or REFERENCE_RETRIEVER not in run_ids:
        why = f"needs runs of {REFERENCE_RETRIEVER} and of another retriever on this data"
        return [GoalCheck(RATIO_GOAL, why, RECALL_OVER_EASE), GoalCheck(NDCG_GOAL, why, BEST_NDCG)]
    answers = answers_of(run_ids[best]).merge(answers_of(run_ids[REFERENCE_RETRIEVER]), on="user_id",
                                              suffixes=("", "_reference"))
    recall, reference = answers["recall_at_10"].to_numpy(), answers["recall_at_10_reference"].to_numpy()
    ndcg = answers["ndcg_at_10"].to_numpy()
    users = len(answers)
    return [GoalCheck(RATIO_GOAL, f"{best} (best on validation) {recall.mean():.4f} / {REFERENCE_RETRIEVER} "
                                  f"{reference.mean():.4f}, {users} test users", RECALL_OVER_EASE,
                      recall.mean() / reference.mean(),
                      *bootstrap_users(lambda weights: (weights @ recall) / (weights @ reference), users)),
            GoalCheck(NDCG_GOAL, f"{best}", BEST_NDCG, ndcg.mean(),
                      *bootstrap_users(lambda weights: (weights @ ndcg) / weights.sum(), users))]


def check_ranking_goals(table: pd.DataFrame, run_ids: dict[str, str], answers_of) -> list[GoalCheck]:
    from training.metrics import auc_of_levels, bootstrap_users, compare_aucs
    from training.ranking import EXAMPLE_KEY

    checks = []
    best = choose_best(table, "val AUC")
    if best is None:
        checks.append(GoalCheck(AUC_GOAL, "needs a ranker run on this data", BEST_AUC))
    else:
        answers = answers_of(run_ids[best])
        labels = answers["label"].to_numpy(dtype=float)
        levels, inverse = np.unique(answers["score"].to_numpy(), return_inverse=True)
        users, user_of_example = np.unique(answers["user_id"].to_numpy(), return_inverse=True)
        checks.append(GoalCheck(
            AUC_GOAL, f"{best} (best on validation), {len(users)} test users", BEST_AUC,
            auc_of_levels(inverse, len(levels), labels, np.ones(len(labels))),
            *bootstrap_users(lambda weights: auc_of_levels(inverse, len(levels), labels, weights[user_of_example]),
                             len(users))))
    if not {HISTORY_RANKER, CROSS_RANKER} <= set(run_ids):
        return [*checks, GoalCheck(ORDER_GOAL, f"needs runs of {HISTORY_RANKER} and {CROSS_RANKER} on this data", 0.0)]
    paired = answers_of(run_ids[HISTORY_RANKER]).merge(answers_of(run_ids[CROSS_RANKER])[[*EXAMPLE_KEY, "score"]],
                                                       on=EXAMPLE_KEY, suffixes=("", "_other"))
    difference = compare_aucs(paired["score"].to_numpy(), paired["score_other"].to_numpy(),
                              paired["label"].to_numpy(), paired["user_id"].to_numpy())
    return [*checks, GoalCheck(ORDER_GOAL, f"{HISTORY_RANKER} {difference.candidate:.4f} - {CROSS_RANKER} "
                                           f"{difference.champion:.4f}, paired", 0.0, difference.difference,
                               difference.low, difference.high)]
