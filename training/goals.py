"""The quality goals of the model catalogue (issue 16), checked on the comparison's runs (the latest of each model on
the current data version): each figure with its 95 % bootstrap interval over test users, from the runs' logged test
answers (no model is re-scored). The best model of a kind is the one best on validation, so its test figure is not a
maximum taken over test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from eaglerec.contracts.catalogue import QualityGoals, load_catalogue


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


def describe_goals(goals: QualityGoals) -> dict[str, tuple[str, float]]:
    """Each goal's wording and target, by what it measures."""
    return {"ratio": (f"best retriever Recall@10 >= {goals.recall_over_reference:g} x {goals.reference_retriever}'s",
                      goals.recall_over_reference),
            "ndcg": (f"best retriever NDCG@10 >= {goals.best_ndcg_at_10:g}", goals.best_ndcg_at_10),
            "auc": (f"best ranker AUC >= {goals.best_auc:g}", goals.best_auc),
            "order": (f"{goals.ranker_order[0]} AUC >= {goals.ranker_order[1]}'s", 0.0)}


def check_quality_goals(tables: dict[str, pd.DataFrame], run_ids: dict[str, dict[str, str]]) -> list[GoalCheck]:
    """Check the catalogue's goals on the comparison's tables (model, figures) and each model's latest run id."""
    from training.tracking import load_test_answers

    goals = load_catalogue().goals
    if goals is None:
        return []

    def answers_of(run_id: str) -> pd.DataFrame:
        answers = load_test_answers(run_id)
        if answers is None:
            raise MissingAnswersError(f"run {run_id[:8]} logged no test answers (trained before they were logged)")
        return answers

    try:
        return [*check_retrieval_goals(goals, tables["retrievers"], run_ids.get("retrievers", {}), answers_of),
                *check_ranking_goals(goals, tables["rankers"], run_ids.get("rankers", {}), answers_of)]
    except MissingAnswersError as missing:
        return [GoalCheck(goal, str(missing), target) for goal, target in describe_goals(goals).values()]


def check_retrieval_goals(goals: QualityGoals, table: pd.DataFrame, run_ids: dict[str, str],
                          answers_of) -> list[GoalCheck]:
    from training.metrics import bootstrap_users

    (ratio_goal, ratio_target), (ndcg_goal, ndcg_target) = (describe_goals(goals)[key] for key in ("ratio", "ndcg"))
    reference = goals.reference_retriever
    best = choose_best(table, "val Recall@10", (reference,))
    if best is None or reference not in run_ids:
        why = f"needs runs of {reference} and of another retriever on this data"
        return [GoalCheck(ratio_goal, why, ratio_target), GoalCheck(ndcg_goal, why, ndcg_target)]
    answers = answers_of(run_ids[best]).merge(answers_of(run_ids[reference]), on="user_id",
                                              suffixes=("", "_reference"))
    recall, recall_reference = answers["recall_at_10"].to_numpy(), answers["recall_at_10_reference"].to_numpy()
    ndcg = answers["ndcg_at_10"].to_numpy()
    users = len(answers)
    return [GoalCheck(ratio_goal, f"{best} (best on validation) {recall.mean():.4f} / {reference} "
                                  f"{recall_reference.mean():.4f}, {users} test users", ratio_target,
                      recall.mean() / recall_reference.mean(),
                      *bootstrap_users(lambda weights: (weights @ recall) / (weights @ recall_reference), users)),
            GoalCheck(ndcg_goal, f"{best}", ndcg_target, ndcg.mean(),
                      *bootstrap_users(lambda weights: (weights @ ndcg) / weights.sum(), users))]


def check_ranking_goals(goals: QualityGoals, table: pd.DataFrame, run_ids: dict[str, str],
                        answers_of) -> list[GoalCheck]:
    from training.metrics import auc_of_levels, bootstrap_users, compare_aucs
    from training.ranking import EXAMPLE_KEY

    (auc_goal, auc_target), (order_goal, _) = (describe_goals(goals)[key] for key in ("auc", "order"))
    checks = []
    best = choose_best(table, "val AUC")
    if best is None:
        checks.append(GoalCheck(auc_goal, "needs a ranker run on this data", auc_target))
    else:
        answers = answers_of(run_ids[best])
        labels = answers["label"].to_numpy(dtype=float)
        levels, inverse = np.unique(answers["score"].to_numpy(), return_inverse=True)
        users, user_of_example = np.unique(answers["user_id"].to_numpy(), return_inverse=True)
        checks.append(GoalCheck(
            auc_goal, f"{best} (best on validation), {len(users)} test users", auc_target,
            auc_of_levels(inverse, len(levels), labels, np.ones(len(labels))),
            *bootstrap_users(lambda weights: auc_of_levels(inverse, len(levels), labels, weights[user_of_example]),
                             len(users))))
    first, second = goals.ranker_order
    if not {first, second} <= set(run_ids):
        return [*checks, GoalCheck(order_goal, f"needs runs of {first} and {second} on this data", 0.0)]
    paired = answers_of(run_ids[first]).merge(answers_of(run_ids[second])[[*EXAMPLE_KEY, "score"]], on=EXAMPLE_KEY,
                                              suffixes=("", "_other"))
    difference = compare_aucs(paired["score"].to_numpy(), paired["score_other"].to_numpy(),
                              paired["label"].to_numpy(), paired["user_id"].to_numpy())
    return [*checks, GoalCheck(order_goal, f"{first} {difference.candidate:.4f} - {second} "
                                           f"{difference.champion:.4f}, paired", 0.0, difference.difference,
                               difference.low, difference.high)]
