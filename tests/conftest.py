"""Shared fixtures: tiny hand-made MovieLens files, and one real build of the bundled data set."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from eaglerec.settings import BUNDLED_DATASET_DIR, DEFAULT_DATASET, Paths, apply_offline_env

apply_offline_env()

TINY_MOVIES = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
2,"American President, The (1995)",Comedy|Drama|Romance
3,Babylon 5,Sci-Fi
4,"Shawshank Redemption, The (1994)",Crime|Drama
"""
TINY_RATINGS = """userId,movieId,rating,timestamp
1,1,4.0,964982703
1,2,3.5,964982703
1,3,2.0,964983000
2,1,5.0,1445714994
2,4,0.5,1445715000
3,2,3.0,1537799250
"""
TINY_LINKS = """movieId,imdbId,tmdbId
1,0114709,862
2,0112346,9087
3,0105946,
4,0111161,278
"""
TINY_TAGS = """userId,movieId,tag,timestamp
2,1,pixar,1445714996
3,4,"prison, hope",1537799251
"""


def write_tiny_release(folder: Path, **overrides: str | bytes) -> Path:
    """Write a valid four-file release into folder; overrides replace a file's content by name (ratings=...)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"movies": TINY_MOVIES, "ratings": TINY_RATINGS, "links": TINY_LINKS, "tags": TINY_TAGS, **overrides}
    for name, content in files.items():
        path = folder / f"{name}.csv"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, newline="")
    return folder


@pytest.fixture
def tiny_release(tmp_path: Path) -> Path:
    return write_tiny_release(tmp_path / "tiny")


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "home")


@pytest.fixture(scope="session")
def built_paths(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """One EAGLEREC_HOME with the bundled data ingested, validated and built by dbt (shared by the slow tests)."""
    from eaglerec.features import build_features
    from eaglerec.ingest import ingest
    from expectations.gate import validate_raw_dataset

    paths = Paths(tmp_path_factory.mktemp("built") / "home")
    result = ingest(str(BUNDLED_DATASET_DIR), paths=paths)
    validate_raw_dataset(result.raw_dir)
    build_features(DEFAULT_DATASET, paths=paths)
    return paths


@pytest.fixture(scope="session")
def bundled_frames() -> dict:
    """The bundled raw CSVs read independently with pandas (the reference the marts are checked against)."""
    import pandas as pd

    return {name: pd.read_csv(BUNDLED_DATASET_DIR / f"{name}.csv") for name in ("ratings", "movies", "links", "tags")}


def copy_release(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def find_free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def redis_address(tmp_path_factory: pytest.TempPathFactory):
    """A real redis-server on a free loopback port for the session, stopped by PID afterwards."""
    from eaglerec.processes import start_redis_server

    port = find_free_port()
    server = start_redis_server(port, tmp_path_factory.mktemp("redis"), persistent=False)
    yield f"127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


@contextlib.contextmanager
def environment_set(values: dict[str, str | None]):
    """os.environ with these variables set (None: unset) and put back afterwards: for module-scoped fixtures, whose
    services and subprocesses inherit the environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        yield


@contextlib.contextmanager
def running_tracking_server(root: Path):
    """A real MLflow tracking server (SQLite backend, local artifacts under root) on a free loopback port; yields
    its URI and stops it by PID."""
    from eaglerec.processes import stop_process
    from training.tracking import start_tracking_server, wait_for_tracking_server

    port = find_free_port()
    server = start_tracking_server(Paths(root), port=port)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_tracking_server(uri, server)
        yield uri
    finally:
        # The server runs gunicorn/uvicorn workers in its own session: stop the whole group.
        stop_process(server)


@contextlib.contextmanager
def own_tracking_server(tmp_path_factory: pytest.TempPathFactory, name: str):
    """A tracking server and registry of one test module's own (its assertions depend on every version registered
    before); the process's tracking URI is set back afterwards."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    with running_tracking_server(tmp_path_factory.mktemp(name)) as uri:
        yield uri
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory):
    """The session's MLflow server, shared by the modules that train and register."""
    with running_tracking_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(scope="session")
def serving_registry(built_paths, tracking_uri, tmp_path_factory):
    """A serving home (the marts, Feast applied and materialised) and a registry whose aliases the tests set: DIN as
    champion, NeuralCF as challenger, item2vec as champion retriever; all trained briefly on the bundled data."""
    import mlflow
    from mlflow import MlflowClient

    from eaglerec.contracts.catalogue import load_catalogue
    from eaglerec.feature_store import apply_feature_repo, materialize_online, open_feature_store
    from training.train import train_model

    mlflow.set_tracking_uri(tracking_uri)
    home = Paths(tmp_path_factory.mktemp("serving") / "home")
    shutil.copytree(built_paths.marts, home.marts)
    small = {"embedding_dim": 8, "hidden_units": (16,), "epochs": 1, "batch_size": 1024}
    rankers = {name: train_model(name, home, small, user_fraction=0.3) for name in ("din", "neural_cf")}
    retriever = train_model("item2vec", home, {"embedding_dim": 8, "epochs": 1})
    client = MlflowClient(tracking_uri)
    kinds = load_catalogue().kinds
    client.set_registered_model_alias(kinds["ranker"].registered_model, "champion", rankers["din"].version)
    client.set_registered_model_alias(kinds["ranker"].registered_model, "challenger", rankers["neural_cf"].version)
    client.set_registered_model_alias(kinds["retriever"].registered_model, "champion", retriever.version)
    apply_feature_repo(home, "sqlite")
    materialize_online(open_feature_store(home, "sqlite"))
    return {"home": home, "uri": tracking_uri, "rankers": rankers, "retriever": retriever}


def assert_gate_followed_its_intervals(client, registered_model: str, versions) -> None:
    """Each gated version became champion exactly when the recorded 95 % interval of (it - the champion then) lay
    above the minimum gain, or when there was no champion to compare with; the champion now is one of those."""
    for version in versions:
        tags = client.get_model_version(registered_model, version).tags
        if "promotion_interval" in tags:
            low = float(tags["promotion_interval"].strip("[]").split(",")[0])
            promoted = low > float(tags["promotion_min_gain"])
        else:  # the first champion, or a version gated when it already was the champion
            promoted = tags["promotion_champion_version"] in ("None", version)
        assert (tags.get("was_champion") == "true") == promoted, (version, tags["promotion_decision"])
    assert client.get_model_version_by_alias(registered_model, "champion").tags.get("was_champion") == "true"
