"""Names and schemas the service shares with training and Feast: registered model names (from the catalogue), the
features it reads online, and the documented environment variables."""

import re
from pathlib import Path

import pytest

from eaglerec.settings import REPO_ROOT

pytestmark = pytest.mark.contracts


def test_the_service_loads_the_registered_models_the_catalogue_declares(monkeypatch):
    from bentos.recommender.engine import ServingConfig
    from eaglerec.contracts.catalogue import load_catalogue

    for variable in ("EAGLEREC_RANKER_MODEL", "EAGLEREC_RETRIEVER_MODEL"):
        monkeypatch.delenv(variable, raising=False)
    config, catalogue = ServingConfig.from_env(), load_catalogue()
    assert (config.ranker_model, config.retriever_model) == (catalogue.kinds["ranker"].registered_model,
                                                             catalogue.kinds["retriever"].registered_model)
    # What requests may name is a ranker that training registers.
    named = [entry for entry in catalogue.models.values() if entry.serve_latest or entry.aliases]
    assert named and all(entry.kind.name == "ranker" and entry.registered for entry in named)


def test_feast_serves_every_input_the_service_reads_online(tmp_path, monkeypatch):
    import sys

    from feast.repo_operations import parse_repo

    from eaglerec.contracts.features import MOVIE_FEATURES, USER_FEATURES
    from eaglerec.feature_store import FEATURE_REPO_DIR, export_feast_environment, forget_repo_modules
    from eaglerec.settings import Paths

    # Registered with monkeypatch first, so that the variables export_feast_environment sets are restored.
    monkeypatch.setenv("EAGLEREC_HOME", str(tmp_path))
    monkeypatch.setenv("EAGLEREC_REDIS_ADDRESS", "127.0.0.1:6379")
    export_feast_environment(Paths(tmp_path))
    sys.path.insert(0, str(FEATURE_REPO_DIR))  # the repo's modules import each other by file name
    try:
        repo = parse_repo(FEATURE_REPO_DIR)
    finally:
        sys.path.remove(str(FEATURE_REPO_DIR))
        forget_repo_modules()  # imported with this test's home
    service = next(s for s in repo.feature_services if s.name == "user_state_v1")
    served = {f.name for projection in service.feature_view_projections for f in projection.features}
    assert {f.name for f in USER_FEATURES if f.kind != "user"} <= served
    assert {"recent_movie_ids", "recent_ratings", "user_genres"} <= served
    movie_service = next(s for s in repo.feature_services if s.name == "movie_state_v1")
    movie_served = {f.name for projection in movie_service.feature_view_projections for f in projection.features}
    assert {f.name for f in MOVIE_FEATURES if f.kind != "movie"} <= movie_served


def test_every_environment_variable_the_code_reads_is_documented_in_env_example():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    read = set()
    for folder in ("eaglerec", "bentos", "training", "expectations", "feature_repo"):
        for path in Path(REPO_ROOT, folder).rglob("*.py"):
            read |= set(re.findall(r"environ(?:\.get\(|\[)\"(EAGLEREC_[A-Z0-9_]+|MLFLOW_TRACKING_URI)\"",
                                   path.read_text()))
    assert read and read <= documented, f"undocumented: {sorted(read - documented)}"
