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


def when_chosen(choice: str, model: str, command: str) -> str:
    """Run command if model is in the params list `choice`, else exit 99 (the task shows as skipped)."""
    return (f"if echo '{{{{ params.{choice} | tojson }}}}' | grep -q '\"{model}\"'; then {command}; "
            f"else echo '{model} not chosen in params.{choice}'; exit {SKIPPED}; fi")


def epochs_option() -> str:
    return "{{ '--epochs ' ~ params.epochs if params.epochs else '' }}"


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

    @task.bash
    def ingest() -> str:
        return f"{EAGLEREC} ingest {{{{ params.source | shell_quote }}}} {dataset}"

    @task.bash
    def raw_gate() -> str:
        return f"{EAGLEREC} validate {dataset}"

    with TaskGroup("dbt", tooltip="dbt build, one task per layer") as dbt:
        layers = []
        for layer in ("staging", "intermediate", "marts"):
            outlets = [Asset(mart) for mart in MARTS] if layer == "marts" else []

            @task.bash(task_id=layer, outlets=outlets)
            def build_layer(layer=layer) -> str:
                return (f"{EAGLEREC} build-features {dataset} --split-method {{{{ params.split_method }}}} "
                        f"--select {layer}")

            layers.append(build_layer())
        layers[0] >> layers[1] >> layers[2]

    @task.bash
    def feast_apply() -> str:
        return f"{EAGLEREC} feast-apply"

    @task.bash
    def materialize() -> str:
        return f"{EAGLEREC} materialize"

    @task.bash
    def training_set_gate() -> str:
        return f"{EAGLEREC} validate-training-set"

    with TaskGroup("train", tooltip="every model in parallel; the champion gate runs later") as train:
        for model in RANKERS:
            @task.bash(task_id=f"ranker_{model}", skip_on_exit_code=SKIPPED)
            def train_ranker(model=model) -> str:
                return when_chosen("rankers", model,
                                   f"{EAGLEREC} train --model {model} {epochs_option()} --no-gate")

            train_ranker()
        for model in RETRIEVERS:
            @task.bash(task_id=f"retriever_{model}", skip_on_exit_code=SKIPPED)
            def train_retriever(model=model) -> str:
                return when_chosen("retrievers", model,
                                   f"{EAGLEREC} train-retriever --model {model} {epochs_option()} --no-gate")

            train_retriever()

    @task.bash(trigger_rule="none_failed")
    def compare() -> str:
        return f"{EAGLEREC} evaluate"

    @task.bash(trigger_rule="none_failed")
    def promote() -> str:
        return f"{EAGLEREC} promote ranker --pending && {EAGLEREC} promote retriever --pending"

    @task.bash
    def publish_embeddings() -> str:
        return f"{EAGLEREC} materialize"

    @task.bash
    def reload_recommender() -> str:
        return f"{EAGLEREC} serve reload"

    @task.bash
    def build_bento() -> str:
        bentoml = shlex.quote(str(ML_BIN / "bentoml"))
        return f"cd {shlex.quote(str(REPO))} && {bentoml} build -f bentos/recommender/bentofile.yaml . -o tag"

    marts = ingest() >> raw_gate() >> dbt
    store = marts >> feast_apply() >> materialize()
    trained = store >> training_set_gate() >> train
    promoted = trained >> compare() >> promote()
    promoted >> publish_embeddings() >> reload_recommender()
    promoted >> build_bento()


eaglerec_pipeline()
