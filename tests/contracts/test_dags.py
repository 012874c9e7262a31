"""DAG integrity, checked in the Airflow environment itself: every DAG imports without errors, documents itself, is
tagged, runs one at a time, and retries with back-off only the tasks that call a service; the four DAGs chain by
Assets; the trigger forms offer the catalogue's models and training is one task mapped over them; DAG files import
only airflow.sdk and the standard library (the ML stack lives in the other environment)."""

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

def asset_names(condition):
    if condition is None:
        return []
    if hasattr(condition, "objects"):
        return [name for part in condition.objects for name in asset_names(part)]
    return [condition.name]

bag = DagBag(dag_folder=%r)
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {
    dag_id: {"tags": sorted(dag.tags), "doc_md": bool(dag.doc_md), "max_active_runs": dag.max_active_runs,
             "timetable": type(dag.timetable).__name__, "cron": getattr(dag.timetable, "expression", None),
             "schedule_assets": sorted(asset_names(getattr(dag.timetable, "asset_condition", None))),
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


CHAIN = ("eaglerec_features", "eaglerec_training", "eaglerec_deploy")


def test_dags_import_without_errors(dags):
    assert dags["errors"] == {}
    assert set(dags["dags"]) == {*CHAIN, "eaglerec_monitoring"}


def test_the_dags_chain_by_assets_features_and_monitoring_run_hourly(dags):
    """Features (hourly) → its Assets → training → the registered models' Assets → deploy; monitoring hourly."""
    from eaglerec.contracts.catalogue import load_catalogue
    from eaglerec.features import list_marts

    features, training, deploy, monitoring = (dags["dags"][dag_id] for dag_id in (*CHAIN, "eaglerec_monitoring"))
    assert features["timetable"] == monitoring["timetable"] == "CronTriggerTimetable"
    assert features["cron"] == "0 * * * *" and monitoring["cron"] == "30 * * * *"
    assert features["tasks"]["dbt.marts"]["outlets"] == list_marts()
    assert features["tasks"]["publish_features"]["outlets"] == ["feature_release"]
    assert training["schedule_assets"] == sorted([*list_marts(), "feature_release"])
    registered = sorted(kind.registered_model for kind in load_catalogue().kinds.values())
    assert training["tasks"]["publish_versions"]["outlets"] == registered
    assert deploy["schedule_assets"] == registered


# The tasks that call a service over the network (MLflow, the online store, the recommender): a retry may find it
# back. Every other task (ingest, the gates, dbt and its tests, the monitor's verdict) fails at once: a data error is
# the same on every try, and retries with back-off only delayed the red by minutes.
CALLS_SERVICES = {"eaglerec_features.materialize", "eaglerec_training.train", "eaglerec_deploy.promote",
                  "eaglerec_deploy.refit", "eaglerec_deploy.compare", "eaglerec_deploy.reload_recommender",
                  "eaglerec_monitoring.ab_report"}


def test_every_dag_is_documented_tagged_serial_and_retries_only_service_calls(dags):
    for dag_id, dag in dags["dags"].items():
        assert dag["doc_md"] and dag["tags"] and dag["max_active_runs"] == 1, dag_id
        for task_id, task in dag["tasks"].items():
            if f"{dag_id}.{task_id}" in CALLS_SERVICES:
                assert task["retries"] >= 2 and task["backoff"], f"{dag_id}.{task_id}"
            else:
                assert task["retries"] == 0, f"{dag_id}.{task_id}: a data task must fail at once"
    assert all(name.split(".", 1)[1] in dags["dags"][name.split(".")[0]]["tasks"] for name in CALLS_SERVICES)


def test_each_dag_runs_its_stages_in_the_order_the_data_flows(dags):
    def reaches(dag_id: str, source: str, target: str) -> bool:
        tasks = dags["dags"][dag_id]["tasks"]
        pending, seen = [source], set()
        while pending:
            current = pending.pop()
            if current == target:
                return True
            seen.add(current)
            pending += [t for t in tasks[current]["downstream"] if t not in seen]
        return False

    orders = {"eaglerec_features": ["ingest", "take_events", "raw_gate", "changed", "dbt.staging", "dbt.intermediate",
                                    "dbt.marts", "feast_apply", "materialize", "publish_features"],
              "eaglerec_training": ["training_set_gate", "choose_models", "train", "publish_versions"],
              "eaglerec_deploy": ["promote", "refit", "reload_recommender"]}
    for dag_id, order in orders.items():
        for before, after in zip(order, order[1:]):
            assert reaches(dag_id, before, after), f"{dag_id}: {before} does not lead to {after}"
    assert reaches("eaglerec_deploy", "refit", "compare") and reaches("eaglerec_deploy", "refit", "build_bento")


def test_training_is_one_task_mapped_over_the_models_the_trigger_forms_offer_from_the_catalogue(dags):
    from eaglerec.contracts.catalogue import load_catalogue

    training = dags["dags"]["eaglerec_training"]
    catalogue = load_catalogue()
    assert training["tasks"]["train"]["mapped"]
    mapped = [(dag_id, task) for dag_id, dag in dags["dags"].items() for task, info in dag["tasks"].items()
              if info["mapped"]]
    assert mapped == [("eaglerec_training", "train")]
    # Both forms (training's own, and features', whose run passes the choice on through its Asset event) offer a
    # multi-select of the catalogue's names (the form cannot submit a typo; the schema refuses one too).
    for dag_id in ("eaglerec_features", "eaglerec_training"):
        models = dags["dags"][dag_id]["params"]["models"]
        assert models["examples"] == models["items"]["enum"] == catalogue.names(), dag_id
        assert models["default"] == catalogue.names(defaults_only=True)
        assert set(models["values_display"]) == set(catalogue.names())


def test_the_features_form_offers_the_raw_gates_invalid_rows_policies(dags):
    """(The raw_gate task renders its command only at run time: the orchestration tests run it.)"""
    from eaglerec.contracts.names import INVALID_ROWS_POLICIES

    features = dags["dags"]["eaglerec_features"]
    invalid_rows = features["params"]["invalid_rows"]
    assert tuple(invalid_rows["enum"]) == INVALID_ROWS_POLICIES and invalid_rows["default"] == "stop"


def test_the_features_form_offers_the_feature_engines(dags):
    from eaglerec.features import ENGINES

    engine = dags["dags"]["eaglerec_features"]["params"]["engine"]
    assert tuple(engine["enum"]) == ENGINES and engine["default"] == "duckdb"


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
