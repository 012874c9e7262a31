"""`eaglerec tune`: search a model's hyperparameters on validation with Optuna's TPE sampler, within a budget of trials
and minutes; test is never looked at while searching. The search space is the module's `suggest_params(trial)` (a
dict of `Params` overrides). Each trial is an MLflow run nested under the study's run, with its params and its
validation score; the study itself lives in $EAGLEREC_HOME/tuning/optuna.db, named by model, data version and user
fraction, so a later call on the same data resumes it. The best trial's configuration is then trained as an ordinary
run of the harness: scored on test once, registered and gated like any other."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import import_module

from eaglerec.contracts.catalogue import CatalogueError, ModelEntry, load_catalogue
from eaglerec.contracts.names import MODEL_TAG
from eaglerec.settings import Paths
from training.tracking import TrainedRun, describe_lineage, read_git_commit, use_experiment

# Trials are scored on the kind's gate metric, on validation. The studies, under $EAGLEREC_HOME/tuning/:
TUNING_DB = "optuna.db"


@dataclass(frozen=True)
class Tuning:
    model: str
    study: str
    run_id: str  # the study's MLflow run (its trials are nested under it)
    trials_run: int  # in this call
    trials_total: int  # in the study, earlier calls included
    best_overrides: dict
    best_validation: float
    seconds: float
    final: TrainedRun | None = None

    def describe(self) -> str:
        text = (f"{self.model}: {self.trials_run} trials in {self.seconds:.0f} s ({self.trials_total} in study "
                f"{self.study}); best validation {self.best_validation:.4f} with {self.best_overrides}")
        if self.final is not None:
            shown = {name: round(value, 4) for name, value in self.final.metrics.items() if name.startswith("test_")}
            text += f"; trained as run {self.final.run_id[:8]}: {shown}"
            if self.final.decision:
                text += f"; {self.final.decision}"
        return text


def build_validation_scorer(entry: ModelEntry, paths: Paths, user_fraction: float) -> Callable[[object], float]:
    """params -> the kind's gate metric on validation of a model trained with them (the data is loaded once)."""
    module = import_module(entry.module)
    metric = entry.kind.gate_metric
    if entry.kind.name == "ranker":
        from training.metrics import score_ranker
        from training.ranking import load_ranker_inputs

        inputs = load_ranker_inputs(paths, user_fraction)

        def score_ranker_params(params) -> float:
            trained = module.train(inputs, params)
            return score_ranker(inputs.labels["validation"], trained.score("validation"))[metric]

        return score_ranker_params
    if user_fraction != 1.0:
        raise CatalogueError(f"{entry.name}: retrievers train on every user (a user fraction applies to rankers only)")
    from training.retrievers import load_retrieval_split, score_on_validation

    split = load_retrieval_split(paths)
    cutoff = int(metric.rsplit("_", 1)[1])

    def score_retriever_params(params) -> float:
        trained = module.train(split, params)
        return score_on_validation(trained.evaluated or trained.served, split, cutoff)

    return score_retriever_params


def tune_model(name: str, paths: Paths | None = None, trials: int = 20, timeout_minutes: float | None = None,
               user_fraction: float = 1.0, overrides: dict | None = None, seed: int = 0,
               final: bool = True) -> Tuning:
    """Run up to `trials` trials (and no new one after `timeout_minutes`) of the model's search space on validation,
    log them to MLflow, then (if `final`) train the best configuration as an ordinary, gated run. `overrides` fix
    params for every trial (e.g. epochs); a trial's suggestions take precedence over them."""
    import keras
    import mlflow
    import optuna

    from training.train import resolve_params, train_model

    paths = paths or Paths.from_env()
    entry = load_catalogue().entry(name)
    suggest = getattr(import_module(entry.module), "suggest_params", None)
    if suggest is None:
        raise CatalogueError(f"{name}: {entry.module} defines no suggest_params(trial), so it has no search space")
    if trials < 1 or (timeout_minutes is not None and timeout_minutes <= 0):
        raise ValueError("the tuning budget needs at least one trial and a positive number of minutes")
    overrides = dict(overrides or {})
    resolve_params(entry, overrides)  # unknown names fail here, before any trial
    score = build_validation_scorer(entry, paths, user_fraction)
    lineage = describe_lineage(paths)
    metric = f"validation_{entry.kind.gate_metric}"
    study_name = f"{name}:{lineage['data_version']}:users={user_fraction}"
    (paths.home / "tuning").mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{paths.home / 'tuning' / TUNING_DB}", study_name=study_name,
                                direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                load_if_exists=True)
    before = len(study.trials)
    use_experiment(entry.kind.experiment)
    started = time.perf_counter()
    with mlflow.start_run(run_name=f"{name} · {lineage['dataset']} · tuning") as study_run:
        mlflow.set_tags({**lineage, MODEL_TAG: entry.name, "tuning_study": study_name, "git_commit": read_git_commit()})
        mlflow.log_params({"model": name, "user_fraction": user_fraction, "tuning_trials": trials,
                           "tuning_timeout_minutes": timeout_minutes, "tuning_seed": seed,
                           "tuning_metric": metric, "tuning_sampler": "TPE", **{f"fixed_{key}": value
                                                                                 for key, value in overrides.items()}})

        def objective(trial) -> float:
            suggested = suggest(trial)
            params = resolve_params(entry, {**overrides, **suggested})
            trial.set_user_attr("overrides", {**overrides, **suggested})
            with mlflow.start_run(run_name=f"{name} · trial {trial.number}", nested=True):
                mlflow.set_tags({MODEL_TAG: entry.name, "tuning_study": study_name, "tuning_trial": trial.number})
                mlflow.log_params(asdict(params))
                value = score(params)
                mlflow.log_metric(metric, value)
            keras.backend.clear_session()  # each trial builds new models: free the last one's graph
            return value

        study.optimize(objective, n_trials=trials, timeout=None if timeout_minutes is None else 60 * timeout_minutes,
                       gc_after_trial=True)
        best = study.best_trial
        mlflow.log_metrics({f"best_{metric}": best.value, "trials_run": len(study.trials) - before,
                            "trials_total": len(study.trials)})
        mlflow.log_dict(best.user_attrs["overrides"], "tuning/best_overrides.json")
        mlflow.log_text(study.trials_dataframe().to_csv(index=False), "tuning/trials.csv")
    seconds = time.perf_counter() - started
    outcome = None
    if final:
        outcome = train_model(name, paths, best.user_attrs["overrides"], user_fraction)
        mlflow.MlflowClient().set_tag(outcome.run_id, "tuning_run", study_run.info.run_id)
    return Tuning(name, study_name, study_run.info.run_id, len(study.trials) - before, len(study.trials),
                  best.user_attrs["overrides"], best.value, seconds, outcome)
