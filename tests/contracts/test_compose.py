"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none here): the compose file validates
against the Compose Specification schema (compose_spec.json, as shipped in docker-compose 1.29.2, Apache-2.0), and
every command, path and module it names exists in the repository or is built by the Dockerfile."""

import json
import re

import jsonschema
import pytest
import yaml

from eaglerec.settings import REPO_ROOT

pytestmark = pytest.mark.contracts

COMPOSE = REPO_ROOT / "docker-compose.yml"
IMAGE_ROOT = "/opt/eaglerec"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_compose_file_follows_the_compose_specification(compose):
    schema = json.loads((REPO_ROOT / "tests" / "contracts" / "compose_spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(compose)


def test_the_platform_services_are_all_there(compose):
    assert {"redis", "mlflow", "airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "airflow-worker", "recommender"} <= set(compose["services"])


def test_airflow_runs_on_celery_with_the_settings_the_host_set_up_uses(compose):
    """The containers run the executor `EAGLEREC_AIRFLOW_EXECUTOR=celery` runs (and tests) on one host: the same
    settings, the broker and result backend on the compose Redis, apart from the Feast online store's database."""
    from cli.orchestration import celery_environment

    environment = compose["x-airflow-env"]
    assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert set(celery_environment()) <= set(environment)
    databases = {environment[key].removeprefix("redis://redis:6379/")
                 for key in ("AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND")}
    assert len(databases) == 2 and "0" not in databases and all(database.isdigit() for database in databases)
    assert compose["x-eaglerec-env"]["EAGLEREC_REDIS_ADDRESS"] == "redis:6379"  # Feast: database 0
    assert compose["services"]["airflow-worker"]["command"][1:3] == ["celery", "worker"]
    assert "eaglerec-var" in compose["volumes"]


def test_every_command_runs_a_program_the_image_builds_and_names_code_that_exists(compose):
    built = {f".venvs/{env}/bin": REPO_ROOT / ".venvs" / env / "bin" for env in ("ml", "airflow")}
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        program = service["command"][0]
        folder, _, binary = program.rpartition("/")
        assert folder in built and (built[folder] / binary).exists(), f"{name}: {program} is not in the built envs"
        for argument in service["command"][1:]:
            if re.fullmatch(r"[a-z_.]+:[A-Z]\w+", argument):  # a module:Class service target
                module = argument.split(":")[0]
                assert (REPO_ROOT / (module.replace(".", "/") + ".py")).exists(), f"{name}: {argument}"
    assert (REPO_ROOT / compose["services"]["mlflow"]["build"]["dockerfile"]).exists()


def test_paths_in_the_environment_exist_in_the_image(compose):
    environment = compose["x-airflow-env"]
    dags = environment["AIRFLOW__CORE__DAGS_FOLDER"].removeprefix(IMAGE_ROOT + "/")
    assert (REPO_ROOT / dags / "eaglerec_pipeline.py").exists()
    assert environment["EAGLEREC_ML_BIN"] == f"{IMAGE_ROOT}/.venvs/ml/bin"
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert f"WORKDIR {IMAGE_ROOT}" in dockerfile and "make envs" in dockerfile
    assert "envs:" in (REPO_ROOT / "Makefile").read_text()


def test_ports_are_published_on_loopback_only_and_secrets_come_from_the_environment(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    text = COMPOSE.read_text()
    for secret in ("EAGLEREC_ADMIN_TOKEN", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        value = re.search(rf"{secret}: (.+)", text).group(1)
        assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", value), f"{secret} must come from .env, not the file"
