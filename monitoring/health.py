"""Model-health monitoring: drift of the main features between the training data and recent events, train/serve skew
of the online features against the marts, and the distribution of served scores. A report, and a verdict that fails
past a threshold (the monitoring task turns red).

- **Drift** per feature of a rating event (its stars, the rated movie's release year and training-time popularity, its
  primary genre): the population stability index (PSI) between the training split's events and the events logged
  since a time, with bins from the training distribution (deciles; categories for the genre); and, for the numeric
  features, the two-sample Kolmogorov-Smirnov test (scipy). PSI ≥ 0.25 is the usual "significant shift".
- **Skew**: for a sample of users with no event after the marts' watermark, the online store's user_state_v1 must
  equal the marts' latest user_profiles / user_recent_activity row (the same dbt computation served two ways).
- **Scores**: quantiles of the scores each ranker served (from the impression log), and the share that is not finite.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eaglerec.contracts.names import USER_STATE_SERVICE
from eaglerec.event_log import RatingLog, Watermark, read_impressions

PSI_THRESHOLD = 0.25
SKEW_THRESHOLD = 0.0  # the same computation served two ways: any mismatch is a defect
MIN_RECENT_EVENTS = 50  # below this, drift is not judged (too few events to say)
NUMERIC_FEATURES = ("rating", "release_year", "movie_popularity")
CATEGORICAL_FEATURES = ("primary_genre",)
# Compared between the online store and the marts; floats within this tolerance.
SKEW_FEATURES = ("user_rating_count", "user_avg_rating", "user_last_rated_at", "user_liked_movie_1",
                 "user_genre_1", "recent_movie_ids")
FLOAT_TOLERANCE = 1e-6


def population_stability_index(expected: np.ndarray, actual: np.ndarray, edges: np.ndarray | None = None,
                               epsilon: float = 1e-4) -> float:
    """PSI = sum over bins of (a - e) * ln(a / e), with e and a the shares of each sample per bin; numeric samples
    are binned by `edges` (default: the deciles of `expected`), categorical ones by value."""
    if edges is None and expected.dtype.kind in "iuf":
        edges = np.unique(np.quantile(expected, np.linspace(0, 1, 11)))
    if edges is not None:
        # Outer bins open: values beyond the training range fall into the first or last bin.
        inner = edges[1:-1]
        expected_counts = np.bincount(np.searchsorted(inner, expected, side="right"), minlength=len(inner) + 1)
        actual_counts = np.bincount(np.searchsorted(inner, actual, side="right"), minlength=len(inner) + 1)
    else:
        categories = sorted(set(expected) | set(actual))
        expected_counts = np.array([(expected == c).sum() for c in categories])
        actual_counts = np.array([(actual == c).sum() for c in categories])
    e = np.maximum(expected_counts / max(expected_counts.sum(), 1), epsilon)
    a = np.maximum(actual_counts / max(actual_counts.sum(), 1), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def describe_events(events: pd.DataFrame, movies: pd.DataFrame, popularity: pd.Series) -> pd.DataFrame:
    """The monitored features of rating events (user_id, movie_id, rating)."""
    joined = events.merge(movies, left_on="movie_id", right_index=True, how="left")
    return pd.DataFrame({
        "rating": joined["rating"].astype(float).to_numpy(),
        "release_year": joined["release_year"].astype(float).to_numpy(),
        "movie_popularity": np.log1p(joined["movie_id"].map(popularity).fillna(0).to_numpy(float)),
        "primary_genre": joined["genres"].map(lambda g: g[0] if g is not None and len(g) else "(none)").to_numpy(),
    })


def measure_drift(train: pd.DataFrame, recent: pd.DataFrame) -> pd.DataFrame:
    """One row per feature: PSI, and for numeric features the KS statistic and p-value."""
    from scipy import stats

    rows = []
    for feature in (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES):
        expected, actual = train[feature].to_numpy(), recent[feature].to_numpy()
        if feature in NUMERIC_FEATURES:
            expected, actual = expected[np.isfinite(expected)], actual[np.isfinite(actual)]
            ks = stats.ks_2samp(expected, actual)
            ks_statistic, ks_p = float(ks.statistic), float(ks.pvalue)
        else:
            ks_statistic = ks_p = float("nan")
        rows.append({"feature": feature, "psi": population_stability_index(expected, actual),
                     "ks_statistic": ks_statistic, "ks_p_value": ks_p, "train_n": len(expected),
                     "recent_n": len(actual)})
    return pd.DataFrame(rows)


def same_value(online, offline) -> bool:
    if isinstance(online, list | tuple | np.ndarray) or isinstance(offline, list | tuple | np.ndarray):
        return [int(v) for v in (online or [])] == [int(v) for v in (offline if offline is not None else [])]
    online_missing = online is None or (isinstance(online, float) and math.isnan(online))
    offline_missing = offline is None or (isinstance(offline, float) and math.isnan(offline)) or offline is pd.NA
    if online_missing or offline_missing:
        return online_missing and offline_missing
    if isinstance(online, float) or isinstance(offline, float):
        return abs(float(online) - float(offline)) <= FLOAT_TOLERANCE
    return online == offline


def measure_skew(store, marts: Path, users: list[int]) -> pd.DataFrame:
    """One row per sampled user and compared feature that differs between the online store and the marts' latest
    rows (empty: no skew)."""
    from eaglerec.feature_store import OnlineReader

    profiles = pd.read_parquet(marts / "user_profiles.parquet")
    profiles = profiles[profiles["user_id"].isin(users)].sort_values("valid_from").groupby("user_id").tail(1)
    activity = pd.read_parquet(marts / "user_recent_activity.parquet", columns=["user_id", "recent_movie_ids"])
    offline = profiles.merge(activity, on="user_id", how="left").set_index("user_id")
    reader = OnlineReader(store, USER_STATE_SERVICE)
    differences = []
    for user_id in users:
        online = reader.read(int(user_id))
        for feature in SKEW_FEATURES:
            expected = offline.at[user_id, feature] if user_id in offline.index else None
            if not same_value(online.get(feature), expected):
                differences.append({"user_id": int(user_id), "feature": feature, "online": repr(online.get(feature)),
                                    "marts": repr(expected)})
    return pd.DataFrame(differences, columns=["user_id", "feature", "online", "marts"])


def summarise_scores(impressions: list[dict]) -> pd.DataFrame:
    rows = [(impression.get("ranker") or "cold start", item["score"]) for impression in impressions
            for item in impression.get("items", [])]
    frame = pd.DataFrame(rows, columns=["ranker", "score"])
    summary = []
    for ranker, group in frame.groupby("ranker", sort=True):
        scores = group["score"].to_numpy(float)
        finite = scores[np.isfinite(scores)]
        quantiles = np.quantile(finite, [0.05, 0.5, 0.95]) if len(finite) else [float("nan")] * 3
        summary.append({"ranker": ranker, "scores": len(scores), "not_finite": int(len(scores) - len(finite)),
                        "p05": quantiles[0], "median": quantiles[1], "p95": quantiles[2]})
    return pd.DataFrame(summary, columns=["ranker", "scores", "not_finite", "p05", "median", "p95"])


@dataclass(frozen=True)
class HealthReport:
    drift: pd.DataFrame
    skew: pd.DataFrame
    skew_users: int
    scores: pd.DataFrame
    recent_events: int
    problems: list[str]

    def to_dict(self) -> dict:
        return {"recent_events": self.recent_events, "problems": self.problems, "skew_users": self.skew_users,
                "drift": self.drift.to_dict("records"), "skew": self.skew.to_dict("records"),
                "scores": self.scores.to_dict("records")}

    def to_html(self) -> str:
        def table(frame: pd.DataFrame) -> str:
            return frame.to_html(index=False, border=0, float_format="{:.4f}".format) if len(frame) else "<p>none</p>"

        verdict = ("<p><b>healthy</b></p>" if not self.problems else
                   "<ul>" + "".join(f"<li><b>{html.escape(p)}</b></li>" for p in self.problems) + "</ul>")
        return ("<!doctype html><html><head><meta charset='utf-8'><title>EagleRec model health</title><style>"
                "body{font-family:sans-serif}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:"
                "1px solid #ddd;text-align:right}</style></head><body><h1>EagleRec model health</h1>" + verdict
                + f"<h2>Drift: training events against the {self.recent_events} recent ones</h2>"
                + f"<p>PSI ≥ {PSI_THRESHOLD} fails; judged from {MIN_RECENT_EVENTS} recent events.</p>"
                + table(self.drift)
                + f"<h2>Train/serve skew ({self.skew_users} users sampled)</h2>" + table(self.skew)
                + "<h2>Served scores</h2>" + table(self.scores) + "</body></html>")


def check_health(paths, store, since: float | None = None, sample_users: int = 200, seed: int = 0,
                 psi_threshold: float = PSI_THRESHOLD) -> HealthReport:
    """Drift of the events logged since `since` (default: all in the log), skew on a seeded sample of users, served
    scores; `problems` lists what is past a threshold."""
    marts = paths.marts
    rating_events = pd.read_parquet(marts / "rating_events.parquet",
                                    columns=["user_id", "movie_id", "rating", "rated_at", "split"])
    train_events = rating_events[rating_events["split"] == "train"]
    movies = pd.read_parquet(marts / "movie_catalog.parquet", columns=["movie_id", "release_year", "genres"])
    movies = movies.set_index("movie_id")
    popularity = train_events["movie_id"].value_counts()
    scan = RatingLog(paths.events).scan(after=Watermark.read(marts))
    recent = [event for event in scan.events.values() if since is None or event.logged_at >= since]
    recent_frame = pd.DataFrame([{"user_id": e.user_id, "movie_id": e.movie_id, "rating": e.rating} for e in recent],
                                columns=["user_id", "movie_id", "rating"])
    problems = []
    drift = measure_drift(describe_events(train_events, movies, popularity),
                          describe_events(recent_frame, movies, popularity)) if len(recent) else pd.DataFrame()
    if len(recent) >= MIN_RECENT_EVENTS:
        problems += [f"drift: {row.feature} PSI {row.psi:.3f} ≥ {psi_threshold}" for row in drift.itertuples()
                     if row.psi >= psi_threshold]
    # Users whose state moved past the marts (events after the watermark) legitimately differ online.
    moved = {scan.events[key].user_id for key in scan.after}
    candidates = np.array(sorted(set(rating_events["user_id"].unique()) - moved))
    users = np.random.default_rng(seed).choice(candidates, size=min(sample_users, len(candidates)), replace=False)
    skew = measure_skew(store, marts, [int(u) for u in users])
    if len(skew) / max(len(users), 1) > SKEW_THRESHOLD:
        problems.append(f"skew: {skew['user_id'].nunique()} of {len(users)} users' online features differ from the "
                        f"marts ({', '.join(sorted(set(skew['feature'])))})")
    scores = summarise_scores(read_impressions(paths.events))
    if len(scores) and scores["not_finite"].sum():
        problems.append(f"scores: {int(scores['not_finite'].sum())} served scores are not finite")
    return HealthReport(drift, skew, len(users), scores, len(recent), problems)


def write_health_report(report: HealthReport, reports_folder: Path) -> dict[str, Path]:
    from eaglerec.files import write_then_rename

    reports_folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for suffix, text in (("html", report.to_html()), ("json", json.dumps(report.to_dict(), indent=2, default=str))):
        path = reports_folder / f"model_health.{suffix}"
        with write_then_rename(path) as partial:
            partial.write_text(text)
        written[suffix] = path
    return written
