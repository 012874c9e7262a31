"""
# eaglerec_pipeline

The whole EagleRec platform, from a MovieLens release to the served champion, in the order the data flows:

1. **ingest** the release (a folder, a `.zip` or an `https://…zip`; default: the bundled ml-latest-small) and run the
   **raw gate** (Great Expectations): a bad file stops the run here, naming file, column and rows;
2. **dbt** on DuckDB, one task per layer: `staging` → `intermediate` → `marts` (the parquet marts, Assets of the same
   name, with their data tests);
3. **Feast**: apply the feature repo, materialise the latest feature states online;
4. the **training-set gate** on `rating_examples`;
5. **train** every ranker and retriever in parallel (registered in MLflow, not yet gated), then **compare** them
   (the comparison table in MLflow) and **promote**: the champion gate, one version at a time;
6. **publish** the champion retriever's embeddings to Feast, **reload** the running recommender and **build** the
   bento.

Every task calls the `eaglerec` CLI of the ML environment (this file only orchestrates) and is idempotent: re-running
a task or the DAG rebuilds the same outputs. Params choose the release, the models, the epochs and the split.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, Param, TaskGroup, dag, task

REPO = Path(__file__).resolve().parents[1]
# The ML environment's commands (Airflow's own environment holds Airflow only).
ML_BIN = Path(os.environ.get("EAGLEREC_ML_BIN", REPO / ".venvs" / "ml" / "bin"))
EAGLEREC = shlex.quote(str(ML_BIN / "eaglerec"))
BUNDLED = str(REPO / "data" / "sample" / "ml-latest-small")
RANKERS = ["popularity", "logistic_regression", "embedding_mlp", "wide_and_deep", "neural_cf", "deepfm", "din"]
RETRIEVERS = ["popularity", "cooccurrence", "item2vec", "deepwalk", "two_tower"]
MARTS = ["movie_profiles", "user_profiles", "user_recent_activity", "rating_events", "rating_examples",
         "user_watch_sequences", "movie_catalog"]
# A training task skips itself (exit code 99) when its model is not among the run's params.
SKIPPED = 99


EPOCHS = "{{ '--epochs ' ~ params.epochs if params.epochs else '' }}"


def run_eaglerec(task_id: str, *commands: str, chosen_in: str | None = None, **task_options):
    """A task running `eaglerec <command>` (several in turn, each must succeed). With chosen_in, it runs only if
    its model is in that params list; otherwise it exits 99 and shows as skipped."""
    script = " && ".join(f"{EAGLEREC} {command}" for command in commands)
    if chosen_in:
        model = task_id.split("_", 1)[1]
        script = (f"if echo '{{{{ params.{chosen_in} | tojson }}}}' | grep -q '\"{model}\"'; then {script}; "
                  f"else echo '{model} not chosen in params.{chosen_in}'; exit {SKIPPED}; fi")
        task_options["skip_on_exit_code"] = SKIPPED

    @task.bash(task_id=task_id, **task_options)
    def run() -> str:
        return script

    return run()


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
        "rankers": Param(RANKERS, type="array", items={"type": "string", "enum": RANKERS},
                         description="rankers and baselines to train"),
        "retrievers": Param(RETRIEVERS, type="array", items={"type": "string", "enum": RETRIEVERS},
                            description="retrievers to train"),
        "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=100,
                        description="epochs of every model (empty: each model's default)"),
    },
)
def eaglerec_pipeline():
    dataset = "--dataset {{ params.dataset }}"
    ingest = run_eaglerec("ingest", "ingest {{ params.source | shell_quote }} " + dataset)
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
    with TaskGroup("train", tooltip="every model in parallel; the champion gate runs later") as train:
        for model in RANKERS:
            run_eaglerec(f"ranker_{model}", f"train --model {model} {EPOCHS} --no-gate", chosen_in="rankers")
        for model in RETRIEVERS:
            run_eaglerec(f"retriever_{model}", f"train-retriever --model {model} {EPOCHS} --no-gate",
                         chosen_in="retrievers")
    compare = run_eaglerec("compare", "evaluate", trigger_rule="none_failed")
    promote = run_eaglerec("promote", "promote ranker --pending", "promote retriever --pending",
                           trigger_rule="none_failed")
    publish_embeddings = run_eaglerec("publish_embeddings", "materialize")
    reload_recommender = run_eaglerec("reload_recommender", "serve reload")

    @task.bash
    def build_bento() -> str:
        bentoml = shlex.quote(str(ML_BIN / "bentoml"))
        return f"cd {shlex.quote(str(REPO))} && {bentoml} build -f bentos/recommender/bentofile.yaml . -o tag"

    ingest >> raw_gate >> dbt >> feast_apply >> materialize >> training_set_gate >> train >> compare >> promote
    promote >> publish_embeddings >> reload_recommender
    promote >> build_bento()


eaglerec_pipeline()
