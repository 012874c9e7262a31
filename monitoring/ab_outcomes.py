"""A/B outcomes: what each variant's recommendations led to, from the impression log joined to later rating events.

Per experiment and variant: users, impressions, the **hit rate** (share of impressions after which the user rated a
movie it showed at or above the positive threshold, within the window, or naming its request_id) and the **mean
rating** users gave to movies shown to them; each with a 95 % percentile-bootstrap interval over users (users are
the unit of randomisation: the A/B bucket is a hash of the user). The **verdict** compares the challenger with the
champion on the hit rate: better or worse when the interval of the difference excludes zero, else not yet
significant.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eaglerec.contracts.names import CHALLENGER, CHAMPION, POSITIVE_RATING
from eaglerec.event_log import RatingLog, read_impressions

AB_EXPERIMENT = "eaglerec-ab-outcomes"
DEFAULT_WINDOW_HOURS = 24.0
RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]" if np.isfinite(self.value) else "n/a"


def bootstrap_ratio(numerators: np.ndarray, denominators: np.ndarray, rng: np.random.Generator,
                    resamples: int = RESAMPLES) -> np.ndarray:
    """The ratio sum(numerators) / sum(denominators) over `resamples` resamples of the users (rows), with
    replacement."""
    picks = rng.integers(0, len(numerators), size=(resamples, len(numerators)))
    totals = denominators[picks].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerators[picks].sum(axis=1) / totals


def interval(point: float, replicates: np.ndarray) -> Interval:
    replicates = replicates[np.isfinite(replicates)]
    if not np.isfinite(point) or not len(replicates):
        return Interval(float("nan"), float("nan"), float("nan"))
    tail = (1 - CONFIDENCE) / 2 * 100
    return Interval(point, float(np.percentile(replicates, tail)), float(np.percentile(replicates, 100 - tail)))


def join_outcomes(impressions: pd.DataFrame, events: pd.DataFrame, window_hours: float) -> pd.DataFrame:
    """One row per impression: its user and variant, whether it led to a hit, and the ratings of movies it showed
    (sum and count) that the user gave after it, within the window (or naming its request_id)."""
    shown = impressions[["request_id", "user_id", "served_at", "items"]].explode("items").dropna(subset=["items"])
    shown = shown.assign(movie_id=[item["movie_id"] for item in shown["items"]]).drop(columns="items")
    joined = shown.merge(events[["user_id", "movie_id", "rating", "logged_at", "request_id"]],
                         on=["user_id", "movie_id"], how="inner", suffixes=("", "_answered"))
    in_window = (joined["logged_at"] >= joined["served_at"]) & (
        joined["logged_at"] <= joined["served_at"] + window_hours * 3600)
    joined = joined[in_window | (joined["request_id_answered"] == joined["request_id"])]
    per_impression = joined.groupby("request_id").agg(
        hit=("rating", lambda ratings: bool((ratings >= POSITIVE_RATING).any())),
        rating_sum=("rating", "sum"), rated=("rating", "size"))
    outcome = impressions[["request_id", "experiment", "variant", "user_id"]].merge(
        per_impression, left_on="request_id", right_index=True, how="left")
    return outcome.assign(hit=outcome["hit"].eq(True), rating_sum=outcome["rating_sum"].astype(float).fillna(0.0),
                          rated=outcome["rated"].astype(float).fillna(0).astype(int))


def summarise_variants(outcomes: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Per experiment and variant: users, impressions, hit rate and mean rating with intervals; and per experiment
    the challenger-minus-champion hit-rate difference with its interval and verdict."""
    rng = np.random.default_rng(seed)
    rows, verdicts = [], {}
    for experiment, of_experiment in outcomes.groupby("experiment", sort=True):
        replicates = {}
        for variant, group in of_experiment.groupby("variant", sort=True):
            per_user = group.groupby("user_id").agg(hits=("hit", "sum"), impressions=("hit", "size"),
                                                    rating_sum=("rating_sum", "sum"), rated=("rated", "sum"))
            hits, shown = per_user["hits"].to_numpy(float), per_user["impressions"].to_numpy(float)
            rating_sum, rated = per_user["rating_sum"].to_numpy(float), per_user["rated"].to_numpy(float)
            hit_replicates = bootstrap_ratio(hits, shown, rng)
            replicates[variant] = hit_replicates
            mean_rating = rating_sum.sum() / rated.sum() if rated.sum() else float("nan")
            rows.append({"experiment": experiment, "variant": variant, "users": len(per_user),
                         "impressions": int(shown.sum()), "hits": int(hits.sum()),
                         "hit_rate": interval(hits.sum() / shown.sum(), hit_replicates),
                         "rated_shown": int(rated.sum()),
                         "mean_rating": interval(mean_rating, bootstrap_ratio(rating_sum, rated, rng))})
        verdicts[experiment] = judge(rows, experiment, replicates)
    return pd.DataFrame(rows), verdicts


def judge(rows: list[dict], experiment: str, replicates: dict[str, np.ndarray]) -> dict:
    if CHAMPION not in replicates or CHALLENGER not in replicates:
        return {"difference": None, "verdict": "no comparison: one variant has no impressions"}
    rates = {row["variant"]: row["hit_rate"].value for row in rows if row["experiment"] == experiment}
    difference = interval(rates[CHALLENGER] - rates[CHAMPION], replicates[CHALLENGER] - replicates[CHAMPION])
    if difference.low > 0:
        verdict = "challenger better"
    elif difference.high < 0:
        verdict = "challenger worse"
    else:
        verdict = "not yet significant"
    return {"difference": difference, "verdict": verdict}


@dataclass(frozen=True)
class AbReport:
    table: pd.DataFrame
    verdicts: dict
    window_hours: float

    def to_dict(self) -> dict:
        def plain(value):
            return vars(value) if isinstance(value, Interval) else value

        return {"window_hours": self.window_hours,
                "variants": [{key: plain(value) for key, value in row.items()}
                             for row in self.table.to_dict("records")],
                "verdicts": {name: {key: plain(value) for key, value in verdict.items()}
                             for name, verdict in self.verdicts.items()}}

    def to_html(self) -> str:
        head = ("experiment", "variant", "users", "impressions", "hits", "hit rate [95 % CI]", "rated shown",
                "mean rating [95 % CI]")
        cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(row[key]))}</td>" for key in (
            "experiment", "variant", "users", "impressions", "hits", "hit_rate", "rated_shown", "mean_rating"))
            + "</tr>" for row in self.table.to_dict("records"))
        verdicts = "".join(f"<li><b>{html.escape(name)}</b>: {html.escape(v['verdict'])}"
                           + (f" (challenger − champion hit rate {v['difference']})" if v["difference"] else "")
                           + "</li>" for name, v in self.verdicts.items())
        return ("<!doctype html><html><head><meta charset='utf-8'><title>EagleRec A/B outcomes</title><style>"
                "body{font-family:sans-serif}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:"
                "1px solid #ddd;text-align:right}</style></head><body><h1>EagleRec A/B outcomes</h1>"
                f"<p>A hit: the user rated a movie the recommendation showed ≥ {POSITIVE_RATING} within "
                f"{self.window_hours:g} h after it (or naming its request_id). Intervals: 95 % percentile bootstrap "
                f"over users, {RESAMPLES} resamples.</p><table><tr>"
                + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{cells}</table><ul>{verdicts}</ul></body></html>")


def read_logged_events(log_folder: Path) -> pd.DataFrame:
    events = RatingLog(log_folder).scan().events.values()
    columns = ["user_id", "movie_id", "rating", "logged_at", "request_id"]
    return pd.DataFrame([{column: getattr(e, column) for column in columns} for e in events], columns=columns)


def build_ab_report(log_folder: Path, window_hours: float = DEFAULT_WINDOW_HOURS, seed: int = 0) -> AbReport:
    impressions = pd.DataFrame(read_impressions(log_folder))
    if impressions.empty:
        return AbReport(pd.DataFrame(), {}, window_hours)
    if "experiment" not in impressions:
        impressions["experiment"] = "unnamed"
    outcomes = join_outcomes(impressions.fillna({"experiment": "unnamed"}), read_logged_events(log_folder),
                             window_hours)
    table, verdicts = summarise_variants(outcomes, seed)
    return AbReport(table, verdicts, window_hours)


def write_ab_report(report: AbReport, reports_folder: Path) -> dict[str, Path]:
    """ab_outcomes.html and .json under the reports folder, and an MLflow run with the figures and both files."""
    import mlflow

    from eaglerec.files import write_then_rename

    reports_folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for suffix, text in (("html", report.to_html()), ("json", json.dumps(report.to_dict(), indent=2))):
        path = reports_folder / f"ab_outcomes.{suffix}"
        with write_then_rename(path) as partial:
            partial.write_text(text)
        written[suffix] = path
    mlflow.set_experiment(AB_EXPERIMENT)
    with mlflow.start_run(run_name="ab outcomes"):
        mlflow.log_param("window_hours", report.window_hours)
        for row in report.table.to_dict("records") if len(report.table) else []:
            prefix = f"{row['experiment']}.{row['variant']}"
            mlflow.log_metrics({f"{prefix}.users": row["users"], f"{prefix}.impressions": row["impressions"],
                                **{f"{prefix}.hit_rate{part}": getattr(row["hit_rate"], name)
                                   for part, name in (("", "value"), (".low", "low"), (".high", "high"))
                                   if np.isfinite(getattr(row["hit_rate"], name))}})
        for experiment, verdict in report.verdicts.items():
            mlflow.set_tag(f"verdict.{experiment}", verdict["verdict"])
        for path in written.values():
            mlflow.log_artifact(str(path))
    return written
