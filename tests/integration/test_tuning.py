"""Tuning on validation through the real harness (bundled marts, a real MLflow server, Optuna's SQLite study): each
trial a nested run scored on validation only, the best chosen by validation, the budget kept, the study resumed, the
best configuration trained as an ordinary gated run."""

import ast

import mlflow
import pytest
from mlflow import MlflowClient

from eaglerec.contracts.catalogue import CatalogueError
from tests.conftest import own_tracking_server
from training.tuning import tune_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SLICE = 0.1


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    with own_tracking_server(tmp_path_factory, "mlflow_tuning") as uri:
        yield uri


@pytest.fixture(scope="module")
def tuned(built_paths, tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)
    return tune_model("neural_cf", built_paths, trials=3, user_fraction=SLICE, overrides={"epochs": 1}, seed=1)


def trial_runs(client, tuning_run_id: str):
    run = client.get_run(tuning_run_id)
    return [trial for trial in client.search_runs([run.info.experiment_id],
                                                  f"tags.tuning_study = '{run.data.tags['tuning_study']}'")
            if "tuning_trial" in trial.data.tags]


def test_every_trial_is_a_nested_run_scored_on_validation_only_and_the_best_is_validations_best(tuned, tracking_uri):
    client = MlflowClient(tracking_uri)
    trials = trial_runs(client, tuned.run_id)
    assert len(trials) == 3 == tuned.trials_run
    assert all(trial.data.tags["mlflow.parentRunId"] == tuned.run_id for trial in trials)
    assert all(set(trial.data.metrics) == {"validation_auc"} for trial in trials)  # test is never scored
    best = max(trials, key=lambda trial: trial.data.metrics["validation_auc"])
    assert tuned.best_validation == pytest.approx(best.data.metrics["validation_auc"])
    for name, value in tuned.best_overrides.items():
        logged = ast.literal_eval(best.data.params[name])
        assert logged == (tuple(value) if isinstance(value, list) else value), name
    study = client.get_run(tuned.run_id)
    assert study.data.params["tuning_trials"] == "3" and study.data.params["fixed_epochs"] == "1"
    assert study.data.metrics["best_validation_auc"] == pytest.approx(tuned.best_validation)


def test_the_best_configuration_is_trained_as_an_ordinary_registered_and_gated_run(tuned, tracking_uri):
    client = MlflowClient(tracking_uri)
    run = client.get_run(tuned.final.run_id)
    for name, value in tuned.best_overrides.items():
        assert ast.literal_eval(run.data.params[name]) == (tuple(value) if isinstance(value, list) else value), name
    assert "test_auc" in run.data.metrics and run.data.tags["tuning_run"] == tuned.run_id
    version = client.get_model_version("eaglerec-ranker", tuned.final.version)
    assert "promotion_decision" in version.tags


def test_the_study_resumes_and_its_time_budget_ends_the_search(tuned, built_paths):
    again = tune_model("neural_cf", built_paths, trials=50, timeout_minutes=0.001, user_fraction=SLICE,
                       overrides={"epochs": 1}, final=False)
    # The first trial starts whatever the budget; none after it, the minutes being spent.
    assert (again.study, again.trials_run, again.trials_total, again.final) == (tuned.study, 1, 4, None)


def test_a_model_without_a_search_space_or_a_budget_is_refused(built_paths):
    with pytest.raises(CatalogueError, match="no suggest_params"):
        tune_model("most_popular", built_paths, trials=1)
    with pytest.raises(ValueError, match="at least one trial"):
        tune_model("neural_cf", built_paths, trials=0)
