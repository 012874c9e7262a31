"""`eaglerec promote`: run the champion gate again for a registered version (by default the latest), e.g. after the
champion was retrained elsewhere or the gate failed half-way. Training runs the same gate on its own."""

from __future__ import annotations

from pathlib import Path

from eaglerec.settings import Paths
from training.embeddings import GATE_METRIC, RETRIEVER_MODEL_NAME, publish_embeddings, score_registered_retriever
from training.registry import PromotionDecision, PromotionError, promote_if_better
from training.train import RANKER_MODEL_NAME, score_registered_ranker

REGISTERED_MODELS = {"ranker": RANKER_MODEL_NAME, "retriever": RETRIEVER_MODEL_NAME}


def find_latest_version(client, model_name: str) -> str:
    versions = client.search_model_versions(f"name = '{model_name}'")
    if not versions:
        raise PromotionError(f"{model_name} has no registered version: train one first")
    return str(max(int(version.version) for version in versions))


def promote_pending(kind: str, paths: Paths | None = None) -> list[PromotionDecision]:
    """Gate, oldest first, every version not gated yet (no `promotion_decision` tag): what parallel training tasks
    registered. Re-running it gates nothing twice."""
    import mlflow

    client = mlflow.MlflowClient()
    pending = sorted(int(v.version) for v in client.search_model_versions(f"name = '{REGISTERED_MODELS[kind]}'")
                      if "promotion_decision" not in v.tags)
    return [promote(kind, str(version), paths) for version in pending]


def promote(kind: str, version: str | None = None, paths: Paths | None = None) -> PromotionDecision:
    """Gate `version` of the ranker (test AUC) or the retriever (test Recall@10) against the champion; a promoted
    retriever's embedding tables are published for Feast."""
    import mlflow

    from training.data import load_ranking_data

    paths = paths or Paths.from_env()
    client = mlflow.MlflowClient()
    model_name = REGISTERED_MODELS[kind]
    version = version or find_latest_version(client, model_name)
    if kind == "ranker":
        run = client.get_run(client.get_model_version(model_name, version).run_id)
        user_fraction = float(run.data.params.get("user_fraction", 1.0))
        return promote_if_better(client, model_name, version, "auc", score_champion=lambda champion:
                                 score_registered_ranker(champion, load_ranking_data(paths, user_fraction).test))
    decision = promote_if_better(client, model_name, version, GATE_METRIC,
                                 score_champion=lambda champion: score_registered_retriever(champion, paths))
    if decision.promoted:
        folder = Path(mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}")) / "artifacts"
        publish_embeddings({name: str(folder / f"{name}.parquet") for name in ("movie_embeddings", "user_embeddings")},
                           paths)
    return decision
