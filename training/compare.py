"""The comparison table: the latest run of every ranker and retriever on the current marts and the full test set, side
by side, as markdown and HTML, written under $EAGLEREC_HOME/reports/ and logged to MLflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from eaglerec.contracts.catalogue import load_catalogue
from eaglerec.contracts.names import (
    CHALLENGER,
    CHAMPION,
    COMPARISON_EXPERIMENT,
    MODEL_TAG,
    REFIT_VERSION_TAG,
    TEST_SET_TAG,
)
from eaglerec.files import write_then_rename
from eaglerec.settings import Paths
from training.tracking import hash_data_version, use_experiment

# Per kind of model (the catalogue's kinds): the test set its runs compare on (rankers: every user, not a sample)
# and the columns, metric -> heading, in table order.
TABLES = {
    "ranker": ("test:users=1.0", {
        "test_auc": "AUC", "test_pr_auc": "PR-AUC", "test_log_loss": "log loss", "validation_auc": "val AUC",
        "train_seconds": "train s", "train_examples_per_second": "examples/s"}),
    "retriever": ("test", {
        "test_recall_at_10": "Recall@10", "test_ndcg_at_10": "NDCG@10", "test_recall_at_50": "Recall@50",
        "test_recall_at_100": "Recall@100", "test_hit_rate_at_10": "hit rate@10",
        "test_coverage_at_100": "coverage@100", "validation_recall_at_10": "val Recall@10",
        "train_seconds": "train s"}),
}


# The gate's verdict per version: the paired test difference with the champion it was gated against, 95 % interval.
GATE_COLUMN = "gate: Δ vs champion [95 % interval]"
# Columns holding the MLflow UI's address of the cell to their left: rendered as links, never shown.
LINKS = {"version": "version_url", "run": "run_url"}


@dataclass(frozen=True)
class Comparison:
    data_version: str
    tables: dict[str, pd.DataFrame]
    run_ids: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> model -> its latest run
    goals: list = field(default_factory=list)  # training.goals.GoalCheck

    def to_markdown(self) -> str:
        parts = [f"# EagleRec model comparison\n\nData version `{self.data_version}`; every figure on the test split "
                 "(tuning used validation only). Latest run per model; its registry version and alias, linked to "
                 "the MLflow UI; the gate's paired difference with the champion it was gated against, with the 95 % "
                 "bootstrap interval over users (promoted only when the interval lies above 0).\n"]
        for name, table in self.tables.items():
            parts.append(f"## {name.capitalize()}\n\n" + (render_markdown(table) if len(table) else "(no runs)\n"))
        if self.goals:
            from training.goals import render_goals

            parts.append("## Quality goals\n\nThe best model of a kind is the best on validation; intervals are "
                         "95 % bootstrap intervals over test users.\n\n" + render_goals(self.goals))
        return "\n".join(parts)

    def to_html(self) -> str:
        import html

        def linked(table: pd.DataFrame) -> pd.DataFrame:
            shown = table.copy()
            for column, url in LINKS.items():
                if url in shown:
                    shown[column] = [f"<a href='{html.escape(link)}'>{html.escape(str(text))}</a>" if link else
                                     html.escape(str(text)) for text, link in zip(shown[column], shown[url])]
            return shown.drop(columns=[url for url in LINKS.values() if url in shown])

        body = "".join(f"<h2>{name.capitalize()}</h2>" + linked(table).to_html(
            index=False, border=0, escape=False, formatters={column: FORMATS[column].format for column in FORMATS
                                                             if column in table}, float_format="{:.4f}".format)
                       for name, table in self.tables.items())
        if self.goals:
            goals = pd.DataFrame([{"goal": check.goal, "measured": check.measured, "value": check.value,
                                   "95 % interval": "" if check.low is None else f"[{check.low:.4f}, {check.high:.4f}]",
                                   "verdict": check.verdict} for check in self.goals])
            body += "<h2>Quality goals</h2>" + goals.to_html(index=False, border=0, float_format="{:.4f}".format)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>EagleRec model comparison</title>"
                f"<style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{padding:4px 10px;"
                f"border-bottom:1px solid #ddd;text-align:right}}</style></head><body><h1>EagleRec model comparison"
                f"</h1><p>Data version <code>{self.data_version}</code>; test split; latest run per model.</p>"
                f"{body}</body></html>")


# Metrics to 4 decimals; these otherwise.
FORMATS = {"train s": "{:.1f}", "examples/s": "{:,.0f}"}


def render_markdown(table: pd.DataFrame) -> str:
    def cell(column: str, value) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else FORMATS.get(column, "{:.4f}").format(value)
        return str(value)

    shown = [column for column in table.columns if column not in LINKS.values()]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in table.to_dict("records"):
        cells = []
        for column in shown:
            text, link = cell(column, row[column]), row.get(LINKS.get(column, ""), "")
            cells.append(f"[{text}]({link})" if link and text else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_versions(client, registered_model: str) -> dict[str, tuple[str, str, str]]:
    """run id -> (registry version, its aliases, the gate's paired difference with the champion of the time and its
    95 % interval) of every registered version of a model ('' where there is none). The aliases come from the
    registered model: search_model_versions leaves them out."""
    from mlflow.exceptions import MlflowException

    try:
        held = client.get_registered_model(registered_model).aliases
    except MlflowException:
        return {}
    versions = {}
    for version in client.search_model_versions(f"name = '{registered_model}'"):
        aliases = ", ".join(alias for alias in (CHAMPION, CHALLENGER) if str(held.get(alias)) == str(version.version))
        tags = version.tags or {}
        if aliases and REFIT_VERSION_TAG in tags:
            aliases += f" (serves refit v{tags[REFIT_VERSION_TAG]})"
        gate = ""
        if "promotion_interval" in tags:
            low, high = (float(value) for value in tags["promotion_interval"].strip("[]").split(","))
            gate = (f"{float(tags['promotion_difference']):+.4f} [{low:+.4f}, {high:+.4f}] "
                    f"vs v{tags['promotion_champion_version']}")
        versions[version.run_id] = (version.version, aliases, gate)
    return versions


def describe_ui_links(runs: pd.DataFrame, versions: dict[str, tuple[str, str]], registered_model: str
                      ) -> tuple[list[str], list[str]]:
    """The MLflow UI's address of each run and of its registry version ('' when the tracking URI is no server)."""
    import mlflow

    ui = mlflow.get_tracking_uri().rstrip("/")
    if not ui.startswith(("http://", "https://")):
        return [""] * len(runs), [""] * len(runs)
    run_urls = [f"{ui}/#/experiments/{experiment}/runs/{run}"
                for experiment, run in zip(runs["experiment_id"], runs["run_id"])]
    version_urls = [f"{ui}/#/models/{registered_model}/versions/{versions[run][0]}" if run in versions else ""
                    for run in runs["run_id"]]
    return run_urls, version_urls


def compare_models(paths: Paths | None = None) -> Comparison:
    """Collect the latest finished run of each model on the current data version's full test set."""
    import mlflow

    paths = paths or Paths.from_env()
    data_version = hash_data_version(paths.marts)
    client = mlflow.MlflowClient()
    tables, run_ids = {}, {}
    for kind, (test_set, columns) in TABLES.items():
        name = f"{kind}s"
        settings = load_catalogue().kinds[kind]
        runs = mlflow.search_runs(experiment_names=[settings.experiment], output_format="pandas",
                                  filter_string=f"tags.{TEST_SET_TAG} = '{data_version}:{test_set}' "
                                                "and attributes.status = 'FINISHED'",
                                  order_by=["attributes.start_time DESC"])
        if runs.empty:
            tables[name] = pd.DataFrame(columns=["model", *columns.values(), "version", "alias", GATE_COLUMN, "run"])
            continue
        latest = runs.drop_duplicates(f"tags.{MODEL_TAG}")
        versions = read_versions(client, settings.registered_model)
        table = pd.DataFrame({"model": latest[f"tags.{MODEL_TAG}"]})
        for metric, heading in columns.items():
            table[heading] = latest.get(f"metrics.{metric}")
        table["version"] = [f"v{versions[run][0]}" if run in versions else "" for run in latest["run_id"]]
        table["alias"] = [versions[run][1] if run in versions else "" for run in latest["run_id"]]
        table[GATE_COLUMN] = [versions[run][2] if run in versions else "" for run in latest["run_id"]]
        table["run"] = latest["run_id"].str[:8]
        table["run_url"], table["version_url"] = describe_ui_links(latest, versions, settings.registered_model)
        sort_by = next(iter(columns.values()))
        tables[name] = table.sort_values(sort_by, ascending=False).reset_index(drop=True)
        run_ids[name] = dict(zip(latest[f"tags.{MODEL_TAG}"], latest["run_id"], strict=True))
    from training.goals import check_quality_goals

    return Comparison(data_version, tables, run_ids, check_quality_goals(tables, run_ids))


def write_comparison(comparison: Comparison, paths: Paths | None = None) -> dict[str, Path]:
    """Write model_comparison.md and .html under $EAGLEREC_HOME/reports/ and log both to an MLflow run."""
    import mlflow

    paths = paths or Paths.from_env()
    folder = paths.reports
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for suffix, text in (("md", comparison.to_markdown()), ("html", comparison.to_html())):
        path = folder / f"model_comparison.{suffix}"
        with write_then_rename(path) as partial:
            partial.write_text(text)
        written[suffix] = path
    use_experiment(COMPARISON_EXPERIMENT)
    with mlflow.start_run(run_name=f"comparison {comparison.data_version[:8]}"):
        mlflow.set_tag("data_version", comparison.data_version)
        for path in written.values():
            mlflow.log_artifact(str(path))
    return written
