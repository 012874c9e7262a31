"""Faults, for real: a feature build killed mid-way; the Redis online store going down and coming back under a serving
recommender, with rating events in flight; the recommender killed with SIGKILL and started again; MLflow unreachable
during /admin/reload."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from eaglerec.files import compute_sha256
from eaglerec.processes import start_redis_server
from eaglerec.settings import DEFAULT_DATASET, Paths
from tests.conftest import find_free_port
from tests.services import ADMIN_TOKEN, call, copy_serving_home, start_service, stop_service, without_request_id

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECOMMENDER = "bentos.recommender.service:Recommender"


def checksums(folder: Path) -> dict[str, str]:
    return {path.name: compute_sha256(path) for path in sorted(folder.iterdir()) if path.is_file()}


def test_a_killed_feature_build_leaves_the_marts_whole_and_a_rerun_succeeds(built_paths, tmp_path):
    from eaglerec.features import build_features

    paths = Paths(tmp_path / "home")
    shutil.copytree(built_paths.home, paths.home, ignore=shutil.ignore_patterns("mlflow", "feast", "embeddings"))
    before = checksums(paths.marts)
    build = subprocess.Popen([str(Path(sys.executable).with_name("eaglerec")), "build-features"],
                             env={**os.environ, "EAGLEREC_HOME": str(paths.home)}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    staging = paths.home / "marts.building"
    deadline = time.monotonic() + 300
    while not list(staging.glob("*.parquet")):  # kill it once dbt is writing marts
        assert build.poll() is None and time.monotonic() < deadline, "the build ended before writing a mart"
        time.sleep(0.2)
    os.killpg(build.pid, signal.SIGKILL)
    build.wait()

    assert checksums(paths.marts) == before  # readers saw the old marts, whole
    build_features(DEFAULT_DATASET, paths=paths)
    assert set(checksums(paths.marts)) == set(before) and not staging.exists()


class TcpRelay:
    """A loopback TCP relay to a real server: closing it makes the server unreachable, as a network outage would."""

    def __init__(self, target_port: int):
        self.target_port, self.port = target_port, find_free_port()
        self.listener, self.connections = None, []

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self.accept, args=(self.listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones (a client's pooled keep-alive connection included)."""
        self.listener.close()
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self.connections = []

    def accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def pipe(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def fragile(serving_registry, tmp_path_factory):
    """The recommender on its own Redis online store (persistent, so a restart brings the data back) and reaching
    MLflow through a relay the tests can cut."""
    root = tmp_path_factory.mktemp("faults")
    redis_port, redis_dir = find_free_port(), root / "redis"
    redis_dir.mkdir()
    redis = start_redis_server(redis_port, redis_dir, persistent=True)
    previous = os.environ.get("EAGLEREC_REDIS_ADDRESS")
    os.environ["EAGLEREC_REDIS_ADDRESS"] = f"127.0.0.1:{redis_port}"
    relay = TcpRelay(int(serving_registry["uri"].rsplit(":", 1)[1]))
    relay.start()
    registry = {**copy_serving_home(serving_registry, root, "redis"), "uri": f"http://127.0.0.1:{relay.port}"}
    process, base = start_service(registry, RECOMMENDER, {"EAGLEREC_ONLINE_STORE": "redis"})
    state = {"base": base, "redis": redis, "redis_port": redis_port, "redis_dir": redis_dir, "relay": relay,
             "home": registry["home"], "registry_uri": serving_registry["uri"], "registry": registry,
             "process": process}
    yield state
    stop_service(state["process"])
    state["redis"].terminate()
    if previous is None:
        os.environ.pop("EAGLEREC_REDIS_ADDRESS", None)
    else:
        os.environ["EAGLEREC_REDIS_ADDRESS"] = previous


def test_no_bad_release_changes_the_marts_the_online_store_the_registry_or_the_answers(fragile, tmp_path):
    """Every case of the raw gate's bad-input matrix, ingested over a serving platform: it stops at the gate, and
    what the platform serves stays exactly as it was."""
    from mlflow import MlflowClient

    from eaglerec.feature_store import OnlineReader, open_feature_store
    from eaglerec.features import UngatedReleaseError, build_features
    from eaglerec.ingest import ingest
    from expectations.gate import RawGateError, validate_raw_dataset
    from tests.conftest import write_tiny_release
    from tests.integration.test_raw_gate import BAD_INPUTS, UNREADABLE

    paths, base = fragile["home"], fragile["base"]
    reader = OnlineReader(open_feature_store(paths, "redis"), "user_state_v1")
    client = MlflowClient(fragile["registry_uri"])

    def snapshot() -> dict:
        return {"marts": checksums(paths.marts), "online": [reader.read(user) for user in (1, 7, 414)],
                "registry": sorted((v.name, v.version, tuple(v.aliases)) for name in ("eaglerec-ranker",
                                   "eaglerec-retriever") for v in client.search_model_versions(f"name = '{name}'")),
                "answers": [without_request_id(call(base, "/recommend", {"user_id": user, "k": 10,
                                                                        "variant": "champion"})) for user in (1, 7)]}

    before = snapshot()
    cases = {**{case: overrides for case, (overrides, *_) in BAD_INPUTS.items()},
             **{case: overrides for case, (overrides, _) in UNREADABLE.items()}}
    for case, overrides in cases.items():
        release = write_tiny_release(tmp_path / case.replace(" ", "_").replace("/", "_"), **overrides)
        ingest(str(release), DEFAULT_DATASET, paths=paths)
        with pytest.raises(RawGateError):
            validate_raw_dataset(paths.raw_dataset(DEFAULT_DATASET))
        with pytest.raises(UngatedReleaseError, match="no passed raw gate"):
            build_features(DEFAULT_DATASET, paths=paths)
    assert snapshot() == before


def test_redis_down_degrades_the_answers_and_they_recover_when_it_returns(fragile):
    base = fragile["base"]
    status, healthy = call(base, "/recommend", {"user_id": 7, "k": 10})
    assert status == 200 and not healthy["degraded"]
    assert call(base, "/readyz")[1]["degraded"] is False

    fragile["redis"].terminate()
    fragile["redis"].wait(timeout=10)
    status, degraded = call(base, "/recommend", {"user_id": 7, "k": 10})
    assert status == 200 and degraded["degraded"] and len(degraded["items"]) == 10
    # Recomputed from the ratings in memory, the state gives the same features: the same recommendations.
    assert [i["movie_id"] for i in degraded["items"]] == [i["movie_id"] for i in healthy["items"]]
    status, ready = call(base, "/readyz")
    assert status == 200 and ready["degraded"] and ready["online_store"] == "unavailable"
    status, refused = call(base, "/events", {"user_id": 7, "movie_id": 1, "rating": 4.0})
    assert status == 503 and "not recorded" in refused["error"]

    fragile["redis"] = start_redis_server(fragile["redis_port"], fragile["redis_dir"], persistent=True)
    status, ready = call(base, "/readyz")
    assert status == 200 and not ready["degraded"]
    status, recovered = call(base, "/recommend", {"user_id": 7, "k": 10})
    assert status == 200 and not recovered["degraded"] and recovered["items"] == healthy["items"]

    # The refused event counts nowhere: sent again, it is recorded (once).
    status, retried = call(base, "/events", {"user_id": 7, "movie_id": 1, "rating": 4.0, "event_id": "after-outage"})
    assert status == 200 and not retried["duplicate"]


def unrated_movies(home: Paths, user_id: int, count: int) -> list[int]:
    import pandas as pd

    events = pd.read_parquet(home.marts / "rating_events.parquet", columns=["user_id", "movie_id"])
    rated = set(events[events.user_id == user_id].movie_id)
    return [int(movie) for movie in sorted(set(events.movie_id) - rated)[:count]]


def test_redis_stopping_mid_way_through_a_stream_of_events_half_records_none(fragile):
    """16 events, one at a time, while Redis stops after the 8th and comes back 3 events later (each refused event
    waits out the Redis client's retries, seconds): each is recorded (200) or counts nowhere (503). Once Redis is
    back, the user holds exactly the accepted ones; the refused ones, sent again, are recorded once."""
    base, user = fragile["base"], 11
    movies = unrated_movies(fragile["home"], user, 16)
    count_before = call(base, f"/users/{user}")[1]["rating_count"]
    outcomes = {}
    for n, movie in enumerate(movies):
        if n == 8:
            fragile["redis"].terminate()
            fragile["redis"].wait(timeout=10)
        status, _ = call(base, "/events", {"user_id": user, "movie_id": movie, "rating": 4.5,
                                           "event_id": f"stream-{movie}"})
        outcomes[movie] = status
        if n == 10:
            fragile["redis"] = start_redis_server(fragile["redis_port"], fragile["redis_dir"], persistent=True)
    accepted = {movie for movie, status in outcomes.items() if status == 200}
    refused = {movie for movie, status in outcomes.items() if status == 503}
    assert accepted | refused == set(movies) and len(accepted) >= 8 and len(refused) >= 1
    assert call(base, "/readyz")[1]["degraded"] is False

    status, profile = call(base, f"/users/{user}")
    shown = {row["movie_id"] for row in profile["history"]}
    assert profile["rating_count"] == count_before + len(accepted)
    assert accepted <= shown and not refused & shown
    for movie in refused:
        status, answer = call(base, "/events", {"user_id": user, "movie_id": movie, "rating": 4.5,
                                                "event_id": f"stream-{movie}"})
        assert status == 200 and not answer["duplicate"]
    assert call(base, f"/users/{user}")[1]["rating_count"] == count_before + len(movies)


def test_mlflow_down_during_reload_keeps_the_last_good_models(fragile):
    base, admin = fragile["base"], {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    _, before = call(base, "/recommend", {"user_id": 9, "k": 5})
    fragile["relay"].stop()
    status, failed = call(base, "/admin/reload", b"", admin)
    assert status == 503 and "still serving" in failed["error"]
    status, after = call(base, "/recommend", {"user_id": 9, "k": 5})
    assert status == 200 and after["ranker"] == before["ranker"] and after["items"] == before["items"]
    fragile["relay"].start()
    status, reloaded = call(base, "/admin/reload", b"", admin)
    assert status == 200 and reloaded["after"]["ranker_champion"] == reloaded["before"]["ranker_champion"]


def descendants(pid: int) -> list[int]:
    """Every live descendant of a process (its children, theirs, ...), from /proc."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(FileNotFoundError):
                children = [int(child) for child in (task / "children").read_text().split()]
                found += children
                pending += children
    return found


def status_of(pid: int) -> str:
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/status").read_text().lower()
    return ""


def test_events_survive_a_sigkill_and_a_retry_is_counted_once(fragile):
    """Events are durable before the answer: kill -9 the service, start it again, and every accepted event is there
    (in /users and in the next recommendation's exclusions), once; retries after the restart change nothing."""
    base, user = fragile["base"], 42
    movies = unrated_movies(fragile["home"], user, 12)
    count_before = call(base, f"/users/{user}")[1]["rating_count"]
    for movie in movies:
        status, answer = call(base, "/events", {"user_id": user, "movie_id": movie, "rating": 5.0,
                                                "event_id": f"kill-{movie}"})
        assert status == 200 and not answer["duplicate"]
    status, answer = call(base, "/events", {"user_id": user, "movie_id": movies[0], "rating": 5.0,
                                            "event_id": f"kill-{movies[0]}"})
    assert status == 200 and answer["duplicate"]
    status, answer = call(base, "/events", {"user_id": user, "movie_id": movies[0], "rating": 1.0,
                                            "event_id": f"kill-{movies[0]}"})
    assert status == 409 and "already recorded" in answer["error"]

    # Every process of the service at once: `bentoml serve` and its worker (which runs in a session of its own).
    service = [fragile["process"].pid, *descendants(fragile["process"].pid)]
    assert len(service) >= 2
    for pid in service:
        os.kill(pid, signal.SIGKILL)
    fragile["process"].wait(timeout=30)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in status_of(pid) for pid in service[1:]):
        assert time.monotonic() < deadline, "the service's worker outlived SIGKILL"
        time.sleep(0.2)
    fragile["process"], base = start_service(fragile["registry"], RECOMMENDER, {"EAGLEREC_ONLINE_STORE": "redis"})
    fragile["base"] = base

    status, profile = call(base, f"/users/{user}")
    assert status == 200 and profile["rating_count"] == count_before + len(movies)
    assert set(movies) <= {row["movie_id"] for row in profile["history"]}
    for movie in movies:
        status, answer = call(base, "/events", {"user_id": user, "movie_id": movie, "rating": 5.0,
                                                "event_id": f"kill-{movie}"})
        assert status == 200 and answer["duplicate"]
    assert call(base, f"/users/{user}")[1]["rating_count"] == count_before + len(movies)
    status, recommended = call(base, "/recommend", {"user_id": user, "k": 20})
    assert status == 200 and not {item["movie_id"] for item in recommended["items"]} & set(movies)
