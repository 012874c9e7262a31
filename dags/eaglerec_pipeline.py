"""
# EagleRec's DAGs: the loop, as four DAGs chained by Assets

1. **eaglerec_features** (hourly, and on demand): **ingest** a release (a folder, a `.zip` or an `https://…zip`;
   default: the bundled ml-latest-small), **take the events** the recommender logged (users' ratings, up to a
   watermark), the **raw gate** on both; then, if anything changed since the marts were built (or `rebuild` is set),
   **dbt** (`staging` → `intermediate` → `marts`, Assets of the same name; on DuckDB, or on a local Spark with the
   `engine` param) and **Feast** (apply, materialise).
   Its last task updates the Asset `feature_release`, carrying the run's `models` and `epochs` for training.
2. **eaglerec_training** (on the marts' Assets and `feature_release`): the **training-set gate**, then **train** the
   chosen models, one mapped task each (shown by model name), registered in MLflow but not gated yet; the choice list
   and its defaults come from the model catalogue (`eaglerec/contracts/models.toml`; `eaglerec models` lists it).
   Updates the Assets of the registered models it trained into.
3. **eaglerec_deploy** (on a registered model's Asset): **promote** (the champion gate, one version at a time),
   **refit** each served version on all ratings (its configuration, what validation chose; the registry links the
   refit to the evaluated version, which keeps the alias and the held-out figures), then **compare** every model,
   **reload** the running recommender (it serves the refits) and **build** the bento.
4. **eaglerec_monitoring** (hourly): the **A/B report** (impressions joined to later ratings, with intervals) and
   **monitor** (drift, train/serve skew, served scores), which fails past a threshold.

Triggering eaglerec_features runs the whole chain (`make run`, `eaglerec airflow run`, or the UI). Every task calls the
`eaglerec` CLI of the ML environment on this repository's code (this file only orchestrates) and is idempotent. An
hourly features run with no new release and no new events stops after the gate: nothing retrains.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import (
    Asset,
    AssetAny,
    CronTriggerTimetable,
    Param,
    TaskGroup,
    dag,
    get_current_context,
    task,
)

REPO = Path(__file__).resolve().parents[1]
# The ML environment's commands (Airflow's own environment holds Airflow only).
ML_BIN = Path(os.environ.get("EAGLEREC_ML_BIN", REPO / ".venvs" / "ml" / "bin"))
EAGLEREC = shlex.quote(str(ML_BIN / "eaglerec"))
BUNDLED = str(REPO / "data" / "sample" / "ml-latest-small")
# The model catalogue and the marts, read from the files that define them: data, not imports.
CATALOGUE_FILE = tomllib.loads((REPO / "eaglerec" / "contracts" / "models.toml").read_text())
CATALOGUE, KINDS = CATALOGUE_FILE["models"], CATALOGUE_FILE["kinds"]
MARTS = sorted(path.stem for path in (REPO / "dbt_project" / "models" / "marts").glob("*.sql"))
# Tasks run this repository's code (the one next to this file), whatever else the ML environment has installed.
TASK_ENV = {"PYTHONPATH": str(REPO)}
# The Assets that chain the DAGs: the marts (lineage), the published feature release, the registered models.
MART_ASSETS = [Asset(mart) for mart in MARTS]
FEATURE_RELEASE = Asset("feature_release")
REGISTERED = {kind: Asset(entry["registered_model"]) for kind, entry in KINDS.items()}
# Schedules: cron expressions, or "none" (tests set them so; the default runs the loop every hour).
FEATURES_SCHEDULE = os.environ.get("EAGLEREC_FEATURES_SCHEDULE", "0 * * * *")
# Where dbt runs (the features form's default): DuckDB, or Spark (`make run ENGINE=spark`). Same marts either way.
FEATURE_ENGINES = ["duckdb", "spark"]
FEATURE_ENGINE = os.environ.get("EAGLEREC_FEATURE_ENGINE", FEATURE_ENGINES[0])
MONITORING_SCHEDULE = os.environ.get("EAGLEREC_MONITORING_SCHEDULE", "30 * * * *")
# Retries only where they can help: a task that calls a service (MLflow, the online store, the recommender) may meet
# it restarting. A data error (ingest, the gates, dbt's tests) fails the same way every time: red at once.
DEFAULT_ARGS = {"retries": 0, "execution_timeout": timedelta(hours=2)}
SERVICE_RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=15), "retry_exponential_backoff": True,
                   "max_retry_delay": timedelta(minutes=5)}
TAGS = ["eaglerec", "movielens"]


def cron(expression: str):
    return None if expression.lower() == "none" else CronTriggerTimetable(expression, timezone="UTC")


def describe_model(name: str) -> str:
    """How the trigger form shows a model: its name and kind (`eaglerec models` describes them)."""
    entry = CATALOGUE[name]
    return f"{name} ({entry['kind']}{' baseline' if entry['baseline'] else ''})"


def model_params() -> dict[str, Param]:
    return {
        "models": Param([name for name, entry in CATALOGUE.items() if entry["default"]], type="array",
                        items={"type": "string", "enum": list(CATALOGUE)}, examples=list(CATALOGUE),
                        values_display={name: describe_model(name) for name in CATALOGUE}, title="Models to train",
                        description="models of the catalogue (eaglerec/contracts/models.toml; `eaglerec models` "
                                    "describes them) to train; default: those it trains by default"),
        "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=100,
                        description="epochs of every model that trains in epochs (empty: each model's default)"),
    }


def run_eaglerec(task_id: str, *commands: str, **task_options):
    """A task running `eaglerec <command>` (several in turn, each must succeed)."""
    script = " && ".join(f"{EAGLEREC} {command}" for command in commands)

    @task.bash(task_id=task_id, env=TASK_ENV, append_env=True, **task_options)
    def run() -> str:
        return script

    return run()


# The cron DAGs have no start_date on purpose: with one, unpausing them starts a run for the last slot at once (it
# queued ahead of `make run`'s own run); without, the first run waits for the next slot (run_immediately=False).
@dag(dag_id="eaglerec_features", doc_md=__doc__, schedule=cron(FEATURES_SCHEDULE), catchup=False, max_active_runs=1,
     tags=[*TAGS, "dbt", "feast", "great_expectations"],
     user_defined_filters={"shell_quote": shlex.quote}, default_args=DEFAULT_ARGS,
     params={
         "source": Param(BUNDLED, type="string",
                         description="a MovieLens release in any GroupLens format (ml-latest, ml-25m, ml-20m, ml-10m, "
                                     "ml-1m, ml-100k): folder, .zip or https URL of a .zip"),
         "dataset": Param("ml-latest-small", type="string", pattern=r"^[A-Za-z0-9._-]+$",
                          description="its name under $EAGLEREC_HOME/raw/"),
         "split_method": Param("per_user_time", enum=["per_user_time", "global_time", "random"]),
         "engine": Param(FEATURE_ENGINE, enum=FEATURE_ENGINES,
                         description="where dbt builds the features: DuckDB, or a local Spark (dbt-spark; `make "
                                     "install-spark` first); the marts are the same"),
         "invalid_rows": Param("stop", enum=["stop", "drop"],
                               description="rows that break a rule: stop the run, or drop them into "
                                           "reports/raw_gate/<dataset>/quarantined_rows.csv and go on (stops anyway "
                                           "past 1 % of a file)"),
         "rebuild": Param(False, type="boolean", description="build and retrain even if neither the release nor the "
                                                             "logged events changed since the marts were built"),
         **model_params(),
     })
def eaglerec_features():
    dataset = "--dataset {{ params.dataset }}"
    split = "--split-method {{ params.split_method }}"
    engine = "--engine {{ params.engine }}"
    ingest = run_eaglerec("ingest", "ingest {{ params.source | shell_quote }} " + dataset)
    take_events = run_eaglerec("take_events", "take-events " + dataset)
    raw_gate = run_eaglerec("raw_gate", "validate --invalid-rows {{ params.invalid_rows }} " + dataset)

    @task.short_circuit
    def changed() -> bool:
        """Go on only if the release, the logged events, the dbt code or the split changed (or `rebuild` is set)."""
        params = get_current_context()["params"]
        if params["rebuild"]:
            return True
        check = subprocess.run([str(ML_BIN / "eaglerec"), "features-changed", "--dataset", params["dataset"],
                                "--split-method", params["split_method"]], env={**os.environ, **TASK_ENV})
        if check.returncode not in (0, 3):
            raise RuntimeError(f"eaglerec features-changed failed with exit code {check.returncode}")
        return check.returncode == 0

    with TaskGroup("dbt", tooltip="dbt build, one task per layer") as dbt:
        staging, intermediate, marts = (
            run_eaglerec(layer, f"build-features {dataset} {split} {engine} --select {layer}",
                         outlets=MART_ASSETS if layer == "marts" else [])
            for layer in ("staging", "intermediate", "marts"))
        staging >> intermediate >> marts
    feast_apply = run_eaglerec("feast_apply", "feast-apply")
    materialize = run_eaglerec("materialize", "materialize", **SERVICE_RETRIES)

    @task(outlets=[FEATURE_RELEASE])
    def publish_features() -> None:
        """Announce the new marts and online features to eaglerec_training, with the models this run asks for."""
        context = get_current_context()
        params = context["params"]
        context["outlet_events"][FEATURE_RELEASE].extra = {"models": list(params["models"]),
                                                           "epochs": params["epochs"]}

    ingest >> take_events >> raw_gate >> changed() >> dbt >> feast_apply >> materialize >> publish_features()


def requested(name: str):
    """A run's choice: its own param when triggered by hand, else what the features run that triggered it asked."""
    context = get_current_context()
    value = context["params"][name]
    if context["dag_run"].run_type == "asset_triggered":
        # Events queued while this DAG waited (or was paused) arrive together: the latest request wins.
        events = sorted(context["triggering_asset_events"].get(FEATURE_RELEASE, []), key=lambda e: e.timestamp)
        if events:
            value = (events[-1].extra or {}).get(name, value)
    return value


@task
def choose_models() -> list[str]:
    """The models this run trains (the trigger form checked the names against the catalogue)."""
    return list(requested("models"))


@task
def choose_epochs() -> int | None:
    return requested("epochs")


@task.bash(env=TASK_ENV, append_env=True, map_index_template="{{ model_name }}", **SERVICE_RETRIES)
def train(model: str, epochs: int | None) -> str:
    """Train one model of the catalogue, log it to MLflow and register it without the gate (deploy gates)."""
    get_current_context()["model_name"] = model
    return f"{EAGLEREC} train --model {shlex.quote(model)} {f'--epochs {int(epochs)}' if epochs else ''} --no-gate"


@dag(dag_id="eaglerec_training", doc_md=__doc__, schedule=[*MART_ASSETS, FEATURE_RELEASE],
     start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=1, tags=[*TAGS, "tensorflow", "mlflow"],
     default_args=DEFAULT_ARGS, params=model_params())
def eaglerec_training():
    training_set_gate = run_eaglerec("training_set_gate", "validate-training-set")
    models = choose_models()
    trained = train.partial(epochs=choose_epochs()).expand(model=models)

    @task(outlets=list(REGISTERED.values()))
    def publish_versions(models: list[str]) -> None:
        """Announce the registered versions to eaglerec_deploy: one Asset per registered model trained into."""
        outlet_events = get_current_context()["outlet_events"]
        for kind, asset in REGISTERED.items():
            outlet_events[asset].extra = {"models": [m for m in models if CATALOGUE[m]["kind"] == kind]}

    training_set_gate >> models
    trained >> publish_versions(models)


@dag(dag_id="eaglerec_deploy", doc_md=__doc__, schedule=AssetAny(*REGISTERED.values()),
     start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=1, tags=[*TAGS, "mlflow", "bentoml"],
     default_args=DEFAULT_ARGS)
def eaglerec_deploy():
    promote = run_eaglerec("promote", "promote --pending", **SERVICE_RETRIES)
    refit = run_eaglerec("refit", "refit", **SERVICE_RETRIES)
    compare = run_eaglerec("compare", "compare", **SERVICE_RETRIES)
    reload_recommender = run_eaglerec("reload_recommender", "serve reload", **SERVICE_RETRIES)

    @task.bash(env=TASK_ENV, append_env=True)
    def build_bento() -> str:
        bentoml = shlex.quote(str(ML_BIN / "bentoml"))
        return f"cd {shlex.quote(str(REPO))} && {bentoml} build -f bentos/recommender/bentofile.yaml . -o tag"

    promote >> refit >> [compare, reload_recommender, build_bento()]


@dag(dag_id="eaglerec_monitoring", doc_md=__doc__, schedule=cron(MONITORING_SCHEDULE), catchup=False, max_active_runs=1,
     tags=[*TAGS, "monitoring"], default_args=DEFAULT_ARGS)
def eaglerec_monitoring():
    run_eaglerec("ab_report", "ab-report", **SERVICE_RETRIES)
    run_eaglerec("monitor", "monitor")  # red past a threshold: a retry would only find the same


eaglerec_features()
eaglerec_training()
eaglerec_deploy()
eaglerec_monitoring()
