"""`eaglerec promote`: run the champion gate again for a registered version (by default the latest), or for every
version not gated yet (what parallel training tasks registered). Training runs the same gate on its own."""

from __future__ import annotations

from eaglerec.contracts.catalogue import load_catalogue
from eaglerec.contracts.names import REFIT_OF_TAG
from eaglerec.settings import Paths
from training.registry import PromotionDecision, PromotionError, promote_if_better
from training.tracking import load_test_answers


def find_latest_version(client, model_name: str) -> str:
    """The latest evaluated version (a refit for serving is never gated)."""
    versions = [v for v in client.search_model_versions(f"name = '{model_name}'") if REFIT_OF_TAG not in v.tags]
    if not versions:
        raise PromotionError(f"{model_name} has no registered version: train one first")
    return str(max(int(version.version) for version in versions))


def promote_pending(kind: str, paths: Paths | None = None) -> list[PromotionDecision]:
    """Gate, oldest first, every evaluated version of the kind's registered model not gated yet (no
    `promotion_decision` tag; refits for serving are not gated). Re-running it gates nothing twice."""
    import mlflow

    client = mlflow.MlflowClient()
    registered_model = load_catalogue().kinds[kind].registered_model
    pending = sorted(int(v.version) for v in client.search_model_versions(f"name = '{registered_model}'")
                     if "promotion_decision" not in v.tags and REFIT_OF_TAG not in v.tags)
    return [promote(kind, str(version), paths) for version in pending]


def promote(kind: str, version: str | None = None, paths: Paths | None = None) -> PromotionDecision:
    """Gate `version` of the kind's registered model against its champion on the kind's gate metric."""
    import mlflow

    paths = paths or Paths.from_env()
    client = mlflow.MlflowClient()
    settings = load_catalogue().kinds[kind]
    version = version or find_latest_version(client, settings.registered_model)
    metric = settings.gate_metric
    candidate = client.get_model_version(settings.registered_model, version)
    answers = load_test_answers(candidate.run_id)
    if kind == "ranker":
        from training.data import load_ranking_data
        from training.ranking import compare_rankers, describe_test_examples, predict_registered_ranker

        user_fraction = float(client.get_run(candidate.run_id).data.params.get("user_fraction", 1.0))

        def load_test():
            return load_ranking_data(paths, user_fraction).test

        if answers is None:  # a run from before test answers were logged: score its model now
            test = load_test()
            answers = describe_test_examples(test, predict_registered_ranker(candidate, test))

        def compare(champion, same_test_set):
            return compare_rankers(answers, champion, load_test, metric, same_test_set)
    else:
        from training.retrieval import compare_retrievers, describe_test_users, load_registered_retriever
        from training.retrievers import load_retrieval_split

        if answers is None:  # as above; described by liked movies only, as a champion from other data would be
            retriever = load_registered_retriever(f"models:/{candidate.name}/{candidate.version}")
            answers = describe_test_users(retriever, load_retrieval_split(paths), anonymous=True)

        def compare(champion, same_test_set):
            return compare_retrievers(answers, champion, load_retrieval_split(paths), metric, same_test_set)
    return promote_if_better(client, settings.registered_model, version, metric, compare, settings.gate_min_gain)
