"""`eaglerec refit`: serve a model trained on all ratings. Selection (validation) and evaluation (test) need held-out
data; the served model should not lose it. So each served version (the `champion` and `challenger` of a kind, the
latest version of a `serve_latest` entry) is trained again with its run's configuration (params, plus what
validation chose: the best epoch, EASE's λ) on every rating, and registered as a refit linked both ways
(REFIT_OF_TAG, REFIT_VERSION_TAG); again when the marts change while it is served (new ratings). Aliases, the gate,
rollbacks and reports stay on the evaluated versions: their figures are the held-out ones. The service loads the
refit an aliased version links."""

from __future__ import annotations

from dataclasses import dataclass

from eaglerec.contracts.catalogue import CatalogueError, load_catalogue
from eaglerec.contracts.names import CHALLENGER, CHAMPION, MODEL_TAG, REFIT_OF_TAG, REFIT_VERSION_TAG
from eaglerec.settings import Paths
from training.tracking import load_training_config


class RefitError(Exception):
    """A version cannot be refit; the message says why."""


@dataclass(frozen=True)
class Refit:
    model_name: str  # the registered model
    model: str  # the catalogue entry
    evaluated_version: str
    refit_version: str
    run_id: str
    train_seconds: float

    def describe(self) -> str:
        return (f"{self.model} v{self.evaluated_version} refit on all ratings as {self.model_name} "
                f"v{self.refit_version} ({self.train_seconds:.0f} s, run {self.run_id[:8]})")


def is_refit(version) -> bool:
    return REFIT_OF_TAG in (version.tags or {})


def refit_version(kind: str, version: str, paths: Paths | None = None, verbose: int = 0) -> Refit:
    """Train version `version` of the kind's registered model again on all ratings, register the refit and link it."""
    import mlflow

    from training.train import resolve_params

    paths = paths or Paths.from_env()
    client = mlflow.MlflowClient()
    settings = load_catalogue().kinds[kind]
    evaluated = client.get_model_version(settings.registered_model, version)
    if is_refit(evaluated):
        raise RefitError(f"{settings.registered_model} v{version} is itself the refit of "
                         f"v{evaluated.tags[REFIT_OF_TAG]}")
    config = load_training_config(evaluated.run_id)
    if config is None:
        raise RefitError(f"{settings.registered_model} v{version}: its run {evaluated.run_id} logged no training "
                         "configuration (trained before refits existed); train the model again to refit it")
    entry = load_catalogue().entry(config["model"])
    params = resolve_params(entry, {**config["params"], **config["refit_overrides"]})
    if kind == "ranker":
        from training.ranking import refit_ranker

        run = refit_ranker(entry, params, paths, float(config["user_fraction"]), evaluated, verbose)
    else:
        from training.retrieval import refit_retriever

        run = refit_retriever(entry, params, paths, evaluated, verbose)
    client.set_model_version_tag(settings.registered_model, run.version, REFIT_OF_TAG, str(evaluated.version))
    client.set_model_version_tag(settings.registered_model, run.version, "refit_overrides",
                                 str(config["refit_overrides"]))
    client.update_model_version(settings.registered_model, run.version, description=(
        f"{entry.name} v{evaluated.version}'s configuration refit on all ratings for serving; its held-out figures "
        f"are v{evaluated.version}'s."))
    client.set_model_version_tag(settings.registered_model, str(evaluated.version), REFIT_VERSION_TAG, run.version)
    return Refit(settings.registered_model, entry.name, str(evaluated.version), run.version, run.run_id,
                 run.train_seconds)


def find_served_versions(client, kind: str) -> list:
    """The evaluated versions the service loads for a kind: champion, challenger (rankers), and the latest version of
    each `serve_latest` entry."""
    from mlflow.exceptions import MlflowException

    catalogue = load_catalogue()
    registered_model = catalogue.kinds[kind].registered_model
    served = {}
    for alias in (CHAMPION, CHALLENGER) if kind == "ranker" else (CHAMPION,):
        try:
            version = client.get_model_version_by_alias(registered_model, alias)
        except MlflowException:
            continue
        served[version.version] = version
    serve_latest = {entry.name for entry in catalogue.models.values() if entry.serve_latest and entry.kind.name == kind}
    latest = {}
    for version in client.search_model_versions(f"name = '{registered_model}'"):
        name = version.tags.get(MODEL_TAG)
        if name in serve_latest and not is_refit(version) and (
                name not in latest or int(version.version) > int(latest[name].version)):
            latest[name] = version
    served.update({version.version: version for version in latest.values()})
    return [served[key] for key in sorted(served, key=int)]


def needs_refit(client, version, data_version: str) -> bool:
    """A served version needs a refit when it has none, or when its refit learnt from older marts than today's (a
    champion keeps its alias across features runs: its refit must keep up with the ratings)."""
    refit = (version.tags or {}).get(REFIT_VERSION_TAG)
    if refit is None:
        return True
    linked = client.get_model_version(version.name, refit)
    return client.get_run(linked.run_id).data.tags.get("data_version") != data_version


def refit_served(kinds: list[str] | None = None, paths: Paths | None = None, verbose: int = 0,
                 skipped: list[str] | None = None) -> list[Refit]:
    """Refit every served version whose refit is missing or older than the current marts, for each kind whose
    catalogue entry asks for refits (all by default). Re-running it on the same marts refits nothing twice. A version
    that cannot be refit (a model this catalogue no longer has, a run from before configurations were logged) keeps
    what it serves; why goes to `skipped`."""
    import mlflow

    from training.tracking import hash_data_version

    paths = paths or Paths.from_env()
    data_version = hash_data_version(paths.marts)
    client = mlflow.MlflowClient()
    catalogue = load_catalogue()
    done = []
    for kind in kinds or list(catalogue.kinds):
        if not catalogue.kinds[kind].refit:
            continue
        for version in find_served_versions(client, kind):
            if not needs_refit(client, version, data_version):
                continue
            try:
                done.append(refit_version(kind, version.version, paths, verbose))
            except (RefitError, CatalogueError) as reason:
                (skipped if skipped is not None else []).append(f"{version.name} v{version.version}: {reason}")
    return done
