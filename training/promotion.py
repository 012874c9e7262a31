"""`eaglerec promote`: run the champion gate again for a registered version (by default the latest), or for every
version not gated yet (what parallel training tasks registered). Training runs the same gate on its own."""

from __future__ import annotations

from eaglerec.contracts.catalogue import load_catalogue
from eaglerec.settings import Paths
from training.registry import PromotionDecision, PromotionError, promote_if_better


def find_latest_version(client, model_name: str) -> str:
    versions = client.search_model_versions(f"name = '{model_name}'")
    if not versions:
        raise PromotionError(f"{model_name} has no registered version: train one first")
    return str(max(int(version.version) for version in versions))


def promote_pending(kind: str, paths: Paths | None = None) -> list[PromotionDecision]:
    """Gate, oldest first, every version of the kind's registered model not gated yet (no `promotion_decision`
    tag). Re-running it gates nothing twice."""
    import mlflow

    client = mlflow.MlflowClient()
    registered_model = load_catalogue().kinds[kind].registered_model
    pending = sorted(int(v.version) for v in client.search_model_versions(f"name = '{registered_model}'")
                     if "promotion_decision" not in v.tags)
    return [promote(kind, str(version), paths) for version in pending]


def promote(kind: str, version: str | None = None, paths: Paths | None = None) -> PromotionDecision:
    """Gate `version` of the kind's registered model against its champion on the kind's gate metric."""
    import mlflow

    paths = paths or Paths.from_env()
    client = mlflow.MlflowClient()
    settings = load_catalogue().kinds[kind]
    version = version or find_latest_version(client, settings.registered_model)
    metric = settings.gate_metric
    if kind == "ranker":
        from training.data import load_ranking_data
        from training.ranking import score_registered_ranker

        run = client.get_run(client.get_model_version(settings.registered_model, version).run_id)
        user_fraction = float(run.data.params.get("user_fraction", 1.0))

        def score_champion(champion):
            return score_registered_ranker(champion, load_ranking_data(paths, user_fraction).test, metric)
    else:
        from training.retrieval import score_registered_retriever
        from training.retrievers import load_retrieval_split

        def score_champion(champion):
            return score_registered_retriever(champion, load_retrieval_split(paths), metric)
    return promote_if_better(client, settings.registered_model, version, metric, score_champion=score_champion)
