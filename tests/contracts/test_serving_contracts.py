"""Names and schemas the service shares with training and Feast: registered model names, the features it reads
online, and the documented environment variables."""

import re
from pathlib import Path

import pytest

from eaglerec.settings import REPO_ROOT

pytestmark = pytest.mark.contracts


def test_the_service_loads_the_models_training_registers():
    from bentos.recommender import models
    from training.embeddings import RETRIEVER_MODEL_NAME
    from training.train import DEEP_RANKERS, RANKER_MODEL_NAME

    assert (models.RANKER_MODEL_NAME, models.RETRIEVER_MODEL_NAME) == (RANKER_MODEL_NAME, RETRIEVER_MODEL_NAME)
    assert set(models.EXTRA_RANKERS) <= set(DEEP_RANKERS)


def test_feast_serves_every_input_the_service_reads_online(tmp_path, monkeypatch):
    import sys

    from feast.repo_operations import parse_repo

    from eaglerec.feature_store import FEATURE_REPO_DIR, export_feast_environment, forget_repo_modules
    from eaglerec.settings import Paths
    from training.feature_spec import MOVIE_FEATURES, USER_FEATURES

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
    movie_view = next(v for v in repo.feature_views if v.name == "movie_profiles")
    assert {f.name for f in MOVIE_FEATURES if f.kind != "movie"} <= {f.name for f in movie_view.features}


def test_every_environment_variable_the_code_reads_is_documented_in_env_example():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    read = set()
    for folder in ("eaglerec", "bentos", "training", "expectations", "feature_repo"):
        for path in Path(REPO_ROOT, folder).rglob("*.py"):
            read |= set(re.findall(r"environ(?:\.get\(|\[)\"(EAGLEREC_[A-Z0-9_]+|MLFLOW_TRACKING_URI)\"",
                                   path.read_text()))
    assert read and read <= documented, f"undocumented: {sorted(read - documented)}"
