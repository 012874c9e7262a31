"""DAG integrity, checked in the Airflow environment itself: every DAG imports without errors, documents itself, is
tagged, runs one at a time, and retries its tasks with back-off; the pipeline's trigger form offers the catalogue's
models and its training is one task mapped over them; DAG files import only airflow.sdk and the standard library
(the ML stack lives in the other environment)."""

import ast
import json
import subprocess
import sys

import pytest

from cli.orchestration import AIRFLOW_BIN, airflow_environment
from eaglerec.settings import REPO_ROOT, Paths

pytestmark = pytest.mark.contracts

INSPECT_DAGS = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=%r)
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {
    dag_id: {"tags": sorted(dag.tags), "doc_md": bool(dag.doc_md), "max_active_runs": dag.max_active_runs,
             "params": {name: dag.params.get_param(name).schema | {"default": dag.params[name]}
                        for name in dag.params},
             "tasks": {t.task_id: {"retries": t.retries, "backoff": t.retry_exponential_backoff,
                                   "mapped": "MappedOperator" in [c.__name__ for c in type(t).__mro__],
                                   "outlets": sorted(getattr(a, "name", "") for a in t.outlets),
                                   "downstream": sorted(t.downstream_task_ids)} for t in dag.tasks}}
    for dag_id, dag in bag.dags.items()}}))
"""


@pytest.fixture(scope="module")
def dags(tmp_path_factory):
    env = airflow_environment(Paths(tmp_path_factory.mktemp("airflow_dags")))
    result = subprocess.run([str(AIRFLOW_BIN / "python"), "-c", INSPECT_DAGS % str(REPO_ROOT / "dags")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dags_import_without_errors(dags):
    assert dags["errors"] == {}
    assert "eaglerec_pipeline" in dags["dags"]


def test_every_dag_is_documented_tagged_serial_and_retries_with_backoff(dags):
    for dag_id, dag in dags["dags"].items():
        assert dag["doc_md"] and dag["tags"] and dag["max_active_runs"] == 1, dag_id
        for task_id, task in dag["tasks"].items():
            assert task["retries"] >= 2 and task["backoff"], f"{dag_id}.{task_id}"


def test_the_pipeline_runs_the_stages_in_the_order_the_data_flows(dags):
    tasks = dags["dags"]["eaglerec_pipeline"]["tasks"]

    def reaches(source: str, target: str) -> bool:
        pending, seen = [source], set()
        while pending:
            current = pending.pop()
            if current == target:
                return True
            seen.add(current)
            pending += [t for t in tasks[current]["downstream"] if t not in seen]
        return False

    order = ["ingest", "take_events", "raw_gate", "dbt.staging", "dbt.intermediate", "dbt.marts", "feast_apply", "materialize",
             "training_set_gate", "choose_models", "train", "promote", "reload_recommender"]
    for before, after in zip(order, order[1:]):
        assert reaches(before, after), f"{before} does not lead to {after}"
    assert reaches("promote", "compare") and reaches("promote", "build_bento")


def test_training_is_one_task_mapped_over_the_models_the_trigger_form_offers_from_the_catalogue(dags):
    from eaglerec.contracts.catalogue import load_catalogue
    from eaglerec.features import list_marts

    pipeline = dags["dags"]["eaglerec_pipeline"]
    catalogue = load_catalogue()
    assert pipeline["tasks"]["train"]["mapped"]
    assert not [task for task, info in pipeline["tasks"].items() if info["mapped"] and task != "train"]
    models = pipeline["params"]["models"]
    # A multi-select of the catalogue's names (the form cannot submit a typo; the schema refuses one too).
    assert models["examples"] == models["items"]["enum"] == catalogue.names()
    assert models["default"] == catalogue.names(defaults_only=True)
    assert set(models["values_display"]) == set(catalogue.names())
    assert pipeline["tasks"]["dbt.marts"]["outlets"] == list_marts()


def test_dag_files_import_only_airflow_sdk_and_the_standard_library():
    for path in (REPO_ROOT / "dags").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                assert module.startswith("airflow.sdk") or top in sys.stdlib_module_names or top == "__future__", (
                    f"{path.name} imports {module}")
