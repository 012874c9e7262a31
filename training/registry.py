"""The champion gate: a new version takes the `champion` alias only if it beats the champion on the same test set by
more than noise: candidate and champion are scored on the same users, and the 95 % bootstrap interval over users of
their difference must lie wholly above the kind's minimum gain (0 by default). Otherwise the candidate becomes
`challenger`, with the interval recorded on the version. And its undo: a rollback gives `champion` back to an
earlier version, with the reason recorded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from eaglerec.contracts.names import CHALLENGER, CHAMPION, MODEL_TAG, REFIT_OF_TAG, TEST_SET_TAG
from training.metrics import PairedDifference


class PromotionError(Exception):
    """The candidate cannot be compared with the champion; the message says why."""


@dataclass(frozen=True)
class PromotionDecision:
    model_name: str
    metric: str
    candidate_version: str
    candidate_score: float
    champion_version: str | None
    champion_score: float | None
    promoted: bool
    # candidate - champion on the candidate's test set, paired over users (None: no champion to compare with).
    comparison: PairedDifference | None = None
    min_gain: float = 0.0

    def describe(self) -> str:
        if self.champion_version == self.candidate_version:
            return f"{self.model_name} v{self.candidate_version} is already the champion"
        if self.champion_version is None:
            return (f"{self.model_name} v{self.candidate_version} is the first champion "
                    f"({self.metric} {self.candidate_score:.4f})")
        verdict = "beats" if self.promoted else "does not beat"
        role = CHAMPION if self.promoted else CHALLENGER
        text = (f"{self.model_name} v{self.candidate_version} ({self.metric} {self.candidate_score:.4f}) {verdict} "
                f"champion v{self.champion_version} ({self.champion_score:.4f})")
        if self.comparison is not None:
            where = "above" if self.promoted else "not wholly above"
            text += (f": difference {self.comparison.difference:+.4f}, {100 * self.comparison.level:g} % interval "
                     f"[{self.comparison.low:+.4f}, {self.comparison.high:+.4f}] over {self.comparison.users} users, "
                     f"{where} {self.min_gain:g}")
        return f"{text}: it becomes {role}"


def refuse_refit(version, what: str) -> None:
    """Aliases and the gate hold evaluated versions only: a refit has no held-out figures."""
    if REFIT_OF_TAG in (version.tags or {}):
        raise PromotionError(f"{version.name} v{version.version} is the refit on all ratings of "
                             f"v{version.tags[REFIT_OF_TAG]} and is not {what} v{version.tags[REFIT_OF_TAG]}")


def read_test_score(client, version, metric: str) -> tuple[float, str | None]:
    run = client.get_run(version.run_id)
    if f"test_{metric}" not in run.data.metrics:
        raise PromotionError(f"{version.name} v{version.version}: run {version.run_id} logged no test_{metric}")
    return run.data.metrics[f"test_{metric}"], run.data.tags.get(TEST_SET_TAG)


def describe_version(client, version, decision: PromotionDecision) -> str:
    """The registry's description of a version: which model, trained on what, its test score, and the gate's
    decision with the reason."""
    run = client.get_run(version.run_id)
    tags, params = run.data.tags, run.data.params
    data = f"{tags.get('dataset', 'unknown data')} (data version {tags.get('data_version', 'unknown')}"
    if "live_events" in params:
        data += f", {params['live_events']} live events"
    return (f"{tags.get(MODEL_TAG, version.name)} trained on {data}; test {decision.metric} "
            f"{decision.candidate_score:.4f}. Gate: {decision.describe()}.")


def promote_if_better(client, model_name: str, candidate_version: str, metric: str,
                      compare: Callable[[object, bool], PairedDifference], min_gain: float = 0.0) -> PromotionDecision:
    """Move `champion` to the candidate only if it beats the champion by more than noise; else mark it `challenger`.
    Log the decision, the interval and the reason on the version.

    compare(champion_version, same_test_set) scores both on the candidate's test set, paired over users; the champion
    was tested on the same set when the runs' `test_set` tags match (else it is described to the model by its liked
    movies only: the version may have learnt its users from other data)."""
    from mlflow.exceptions import MlflowException

    candidate = client.get_model_version(model_name, candidate_version)
    refuse_refit(candidate, "gated: its evaluated version is")
    candidate_score, candidate_test_set = read_test_score(client, candidate, metric)
    try:
        champion = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        champion = None
    if champion is not None and champion.version == candidate.version:
        return PromotionDecision(model_name, metric, candidate.version, candidate_score, champion.version,
                                 candidate_score, True, min_gain=min_gain)
    comparison = None
    if champion is not None:
        comparison = compare(champion, read_test_score(client, champion, metric)[1] == candidate_test_set)
    better = comparison is None or comparison.low > min_gain
    client.set_registered_model_alias(model_name, CHAMPION if better else CHALLENGER, candidate.version)
    if better:
        client.set_model_version_tag(model_name, candidate.version, WAS_CHAMPION_TAG, "true")
    decision = PromotionDecision(model_name, metric, candidate.version, candidate_score,
                                 None if champion is None else champion.version,
                                 None if comparison is None else comparison.champion, better, comparison, min_gain)
    tags = {"promotion_decision": decision.describe(), "promotion_metric": metric,
            "promotion_candidate_score": str(candidate_score),
            "promotion_champion_score": str(decision.champion_score),
            "promotion_champion_version": str(decision.champion_version)}
    if comparison is not None:
        tags.update({"promotion_difference": f"{comparison.difference:.6f}",
                     "promotion_interval": f"[{comparison.low:.6f}, {comparison.high:.6f}]",
                     "promotion_min_gain": str(min_gain)})
    for key, value in tags.items():
        client.set_model_version_tag(model_name, candidate.version, key, value)
    client.set_tag(candidate.run_id, "promotion_decision", decision.describe())
    client.update_model_version(model_name, candidate.version, description=describe_version(client, candidate,
                                                                                            decision))
    if comparison is not None:
        client.log_metric(candidate.run_id, f"champion_test_{metric}", comparison.champion)
        client.log_metric(candidate.run_id, f"champion_difference_low_{metric}", comparison.low)
        client.log_metric(candidate.run_id, f"champion_difference_high_{metric}", comparison.high)
    return decision


# On every version that held `champion`: a rollback's default target is the latest earlier one.
WAS_CHAMPION_TAG = "was_champion"


@dataclass(frozen=True)
class Rollback:
    model_name: str
    from_version: str
    to_version: str
    record: str


def roll_back(client, model_name: str, reason: str, to_version: str | None = None) -> Rollback:
    """Give `champion` back to `to_version` (default: the latest version before the champion that held it), without
    the gate: the way back after a bad deploy. The reason and time go on both versions' tags."""
    from mlflow.exceptions import MlflowException

    try:
        champion = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        raise PromotionError(f"{model_name} has no champion: nothing to roll back") from None
    if to_version is None:
        earlier = [int(v.version) for v in client.search_model_versions(f"name = '{model_name}'")
                   if v.tags.get(WAS_CHAMPION_TAG) == "true" and int(v.version) < int(champion.version)]
        if not earlier:
            raise PromotionError(f"{model_name}: no version before champion v{champion.version} was champion; name "
                                 "the version to serve with --to N")
        to_version = str(max(earlier))
    if to_version == champion.version:
        raise PromotionError(f"{model_name} v{to_version} is already the champion")
    try:
        target = client.get_model_version(model_name, to_version)
    except MlflowException:
        raise PromotionError(f"{model_name} has no version {to_version}") from None
    refuse_refit(target, "served by an alias: roll back to its evaluated version, which serves it,")
    record = (f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC: champion rolled back from v{champion.version} to "
              f"v{target.version}: {reason}")
    if target.aliases and CHALLENGER in target.aliases:  # one version must not be both sides of the A/B test
        client.delete_registered_model_alias(model_name, CHALLENGER)
    client.set_registered_model_alias(model_name, CHAMPION, target.version)
    client.set_model_version_tag(model_name, target.version, WAS_CHAMPION_TAG, "true")
    client.set_model_version_tag(model_name, target.version, "rollback", record)
    client.set_model_version_tag(model_name, champion.version, "rolled_back", record)
    return Rollback(model_name, champion.version, target.version, record)
