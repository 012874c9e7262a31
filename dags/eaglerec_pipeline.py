"""
# eaglerec_pipeline

The whole EagleRec platform, from a MovieLens release to the served champion, in the order the data flows:

1. **ingest** the release (a folder, a `.zip` or an `https://…zip`; default: the bundled ml-latest-small), **take the
   events** the recommender logged (users' ratings on the site, up to a watermark) beside it, and run the **raw gate**
   (Great Expectations) on both: a bad file stops the run here, naming file, column and rows;
2. **dbt** on DuckDB, one task per layer: `staging` → `intermediate` → `marts` (the parquet marts, Assets of the same
   name, with their data tests);
3. **Feast**: apply the feature repo, materialise the latest feature states online;
4. the **training-set gate** on `rating_examples`;
5. **train** the models chosen in the run's `models` param, one mapped task each (shown by model name), registered in
   MLflow but not gated yet; the choice list and its defaults come from the model catalogue
   (`eaglerec/contracts/models.toml`; `eaglerec models` lists it). Then **promote**: the champion gate, one version
   at a time;
6. **compare** every model (the comparison table in MLflow, with each version's role), **reload** the running
   recommender and **build** the bento.

Every task calls the `eaglerec` CLI of the ML environment on this repository's code (this file only orchestrates)
and is idempotent: re-running a task or the DAG rebuilds the same outputs. Params choose the release, the models,
the epochs and the split.
"""

from __future__ import annotations

import os
import shlex
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, Param, TaskGroup, dag, get_current_context, task

REPO = Path(__file__).resolve().parents[1]
# The ML environment's commands (Airflow's own environment holds Airflow only).
ML_BIN = Path(os.environ.get("EAGLEREC_ML_BIN", REPO / ".venvs" / "ml" / "bin"))
EAGLEREC = shlex.quote(str(ML_BIN / "eaglerec"))
BUNDLED = str(REPO / "data" / "sample" / "ml-latest-small")
# The model catalogue and the marts, read from the files that define them: data, not imports.
CATALOGUE = tomllib.loads((REPO / "eaglerec" / "contracts" / "models.toml").read_text())["models"]
MARTS = sorted(path.stem for path in (REPO / "dbt_project" / "models" / "marts").glob("*.sql"))
# Tasks run this repository's code (the one next to this file), whatever else the ML environment has installed.
TASK_ENV = {"PYTHONPATH": str(REPO)}
EPOCHS = "{{ '--epochs ' ~ params.epochs if params.epochs else '' }}"


def describe_model(name: str) -> str:
    """How the trigger form shows a model: its name and kind (`eaglerec models` describes them)."""
    entry = CATALOGUE[name]
    return f"{name} ({entry['kind']}{' baseline' if entry['baseline'] else ''})"


def run_eaglerec(task_id: str, *commands: str, **task_options):
    """A task running `eaglerec <command>` (several in turn, each must succeed)."""
    script = " && ".join(f"{EAGLEREC} {command}" for command in commands)

    @task.bash(task_id=task_id, env=TASK_ENV, append_env=True, **task_options)
    def run() -> str:
        return script

    return run()


@task
def choose_models() -> list[str]:
    """The models this run trains: its `models` param (the trigger form checked the names against the catalogue)."""
    return list(get_current_context()["params"]["models"])


@task.bash(env=TASK_ENV, append_env=True, map_index_template="{{ model_name }}")
def train(model: str) -> str:
    """Train one model of the catalogue, log it to MLflow and register it without the gate (promote gates)."""
    get_current_context()["model_name"] = model
    return f"{EAGLEREC} train --model {shlex.quote(model)} {EPOCHS} --no-gate"


@dag(
    dag_id="eaglerec_pipeline",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["eaglerec", "movielens", "dbt", "feast", "mlflow", "bentoml"],
    user_defined_filters={"shell_quote": shlex.quote},
    default_args={"retries": 2, "retry_delay": timedelta(seconds=15), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=5), "execution_timeout": timedelta(hours=2)},
    params={
        "source": Param(BUNDLED, type="string", description="release folder, .zip or https URL of a .zip"),
        "dataset": Param("ml-latest-small", type="string", pattern=r"^[A-Za-z0-9._-]+$",
                         description="its name under $EAGLEREC_HOME/raw/"),
        "split_method": Param("per_user_time", enum=["per_user_time", "global_time", "random"]),
        "models": Param([name for name, entry in CATALOGUE.items() if entry["default"]], type="array",
                        items={"type": "string", "enum": list(CATALOGUE)}, examples=list(CATALOGUE),
                        values_display={name: describe_model(name) for name in CATALOGUE}, title="Models to train",
                        description="models of the catalogue (eaglerec/contracts/models.toml; `eaglerec models` "
                                    "describes them) to train; default: those it trains by default"),
        "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=100,
                        description="epochs of every model that trains in epochs (empty: each model's default)"),
    },
)
def eaglerec_pipeline():
    dataset = "--dataset {{ params.dataset }}"
    ingest = run_eaglerec("ingest", "ingest {{ params.source | shell_quote }} " + dataset)
    take_events = run_eaglerec("take_events", "take-events " + dataset)
    raw_gate = run_eaglerec("raw_gate", "validate " + dataset)
    with TaskGroup("dbt", tooltip="dbt build, one task per layer") as dbt:
        staging, intermediate, marts = (
            run_eaglerec(layer, f"build-features {dataset} --split-method {{{{ params.split_method }}}} "
                                f"--select {layer}", outlets=[Asset(m) for m in MARTS] if layer == "marts" else [])
            for layer in ("staging", "intermediate", "marts"))
        staging >> intermediate >> marts
    feast_apply = run_eaglerec("feast_apply", "feast-apply")
    materialize = run_eaglerec("materialize", "materialize")
    training_set_gate = run_eaglerec("training_set_gate", "validate-training-set")
    models = choose_models()
    trained = train.expand(model=models)
    promote = run_eaglerec("promote", "promote --pending", trigger_rule="none_failed")
    compare = run_eaglerec("compare", "compare")
    reload_recommender = run_eaglerec("reload_recommender", "serve reload")

    @task.bash(env=TASK_ENV, append_env=True)
    def build_bento() -> str:
        bentoml = shlex.quote(str(ML_BIN / "bentoml"))
        return f"cd {shlex.quote(str(REPO))} && {bentoml} build -f bentos/recommender/bentofile.yaml . -o tag"

    ingest >> take_events >> raw_gate >> dbt >> feast_apply >> materialize >> training_set_gate >> models
    trained >> promote >> [compare, reload_recommender, build_bento()]


eaglerec_pipeline()
