"""The loop on real files and a real service: ratings logged by the service are taken up to a watermark, pass the raw
gate's rules, and reach rating_events and rating_examples with point-in-time features; the marts record the
watermark, and what came after it is exactly what the service must replay. A held-out period of the bundled data is
replayed as live traffic through `bentoml serve`, measured per variant and by the A/B report, and the next features
run holds it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from eaglerec.event_log import LIVE_RATINGS_FILE, WATERMARK_FILE, LoggedRating, RatingLog, Watermark, take_live_ratings
from eaglerec.features import UngatedReleaseError, build_features, features_changed
from eaglerec.ingest import ingest
from eaglerec.settings import Paths
from expectations.gate import RawGateError, validate_raw_dataset
from tests.conftest import write_tiny_release
from training.tracking import read_live_data

pytestmark = pytest.mark.integration

DATASET = "tiny"
LATER = 1_700_000_000  # after every rating of the tiny release


def logged(key: str, user: int, movie: int, rating: float, rated_at: int) -> LoggedRating:
    return LoggedRating(key, user, movie, rating, rated_at, logged_at=LATER + 10_000)


@pytest.fixture
def home(tmp_path) -> Paths:
    paths = Paths(tmp_path / "home")
    ingest(str(write_tiny_release(tmp_path / "release")), DATASET, paths=paths)
    return paths


def test_logged_ratings_reach_rating_events_and_examples_with_point_in_time_features(home):
    log = RatingLog(home.events)
    log.append(logged("rerate", 1, 3, 5.0, LATER))  # the release has user 1's 2.0 for movie 3, earlier
    log.append(logged("new-1", 9, 1, 4.5, LATER + 100))  # a user the release does not know
    log.append(logged("new-2", 9, 2, 2.0, LATER + 200))
    log.append(logged("new-2", 9, 2, 5.0, LATER + 200))  # a retry with the same key: the first line stands
    log.append(failed := logged("failed", 9, 4, 1.0, LATER + 300))
    log.void(failed, reason="online push failed")  # answered 503: counts nowhere
    raw_dir = home.raw_dataset(DATASET)
    taken = take_live_ratings(home.events, raw_dir)
    assert (taken.events, taken.ratings) == (3, 3)
    validate_raw_dataset(raw_dir)
    build_features(DATASET, paths=home)

    events = pd.read_parquet(home.marts / "rating_events.parquet")
    got = {(r.user_id, r.movie_id): (r.rating, r.rated_at) for r in events.itertuples()}
    release = pd.read_csv(raw_dir / "ratings.csv")
    expected = {(r.userId, r.movieId): (r.rating, r.timestamp) for r in release.itertuples()}
    expected.update({(1, 3): (5.0, LATER), (9, 1): (4.5, LATER + 100), (9, 2): (2.0, LATER + 200)})
    assert got == expected

    examples = pd.read_parquet(home.marts / "rating_examples.parquet").set_index(["user_id", "movie_id"])
    # Point in time: each example sees only the ratings before it. User 1's earlier ratings are 4.0 and 3.5 (the
    # release's 2.0 for movie 3 was replaced); user 9's second rating sees the first.
    assert examples.loc[(1, 3), "user_rating_count"] == 2 and examples.loc[(1, 3), "user_avg_rating"] == 3.75
    assert examples.loc[(9, 1), "user_rating_count"] == 0
    assert examples.loc[(9, 2), "user_rating_count"] == 1 and examples.loc[(9, 2), "user_avg_rating"] == 4.5

    # The marts say where they stop; an event logged after the take is the service's to replay, the next run's to
    # take, and only that one. Until it is taken, nothing would change: an hourly run stops after the gate.
    assert Watermark.read(home.marts) == taken.watermark
    assert not features_changed(DATASET, home)
    log.append(logged("after", 9, 3, 3.0, LATER + 400))
    assert log.scan(after=Watermark.read(home.marts)).after == ["after"]
    take_live_ratings(home.events, raw_dir)
    validate_raw_dataset(raw_dir)
    assert features_changed(DATASET, home)
    assert json.loads((home.marts / WATERMARK_FILE).read_text())["events"] == 3
    assert read_live_data(home.marts) == {"live_events": 3, "live_ratings": 3}  # what training runs log


def test_bad_logged_ratings_stop_at_the_raw_gate_and_untaken_ones_at_the_build(home):
    log = RatingLog(home.events)
    log.append(logged("good", 1, 1, 4.0, LATER))
    log.append(logged("unknown-movie", 2, 99, 4.0, LATER))
    log.append(logged("bad-stars", 3, 2, 4.2, LATER))
    raw_dir = home.raw_dataset(DATASET)
    take_live_ratings(home.events, raw_dir)
    with pytest.raises(RawGateError) as failure:
        validate_raw_dataset(raw_dir)
    message = str(failure.value)
    assert f"{LIVE_RATINGS_FILE}" in message and "movieId" in message and "rating" in message

    # A release that passed without live ratings must not build once some were taken unchecked.
    (raw_dir / LIVE_RATINGS_FILE).unlink()
    validate_raw_dataset(raw_dir)
    RatingLog(home.events).void(logged("unknown-movie", 2, 99, 4.0, LATER), reason="test")
    RatingLog(home.events).void(logged("bad-stars", 3, 2, 4.2, LATER), reason="test")
    take_live_ratings(home.events, raw_dir)
    with pytest.raises(UngatedReleaseError, match=LIVE_RATINGS_FILE):
        build_features(DATASET, paths=home)


# --- replay: a held-out period of the bundled data as live traffic ------------------------------------------------

REPLAY_DATASET = "replay-slice"
REPLAYED = 150


@pytest.fixture(scope="module")
def replayed(serving_registry, tmp_path_factory):
    """The bundled data with its last 5 % of ratings (by time) held out; the rest built, gated and served (with the
    session's registered models) by `bentoml serve`; 150 held-out ratings, at most 10 a user, replayed against it."""
    from eaglerec.feature_store import apply_feature_repo, materialize_online, open_feature_store
    from eaglerec.held_out import hold_out_period
    from eaglerec.settings import BUNDLED_DATASET_DIR
    from monitoring.replay import replay
    from tests.services import start_service, stop_service

    root = tmp_path_factory.mktemp("replay")
    held = hold_out_period(BUNDLED_DATASET_DIR, root / "held", fraction=0.05)
    paths = Paths(root / "home")
    ingest(str(held.release_dir), REPLAY_DATASET, paths=paths)
    validate_raw_dataset(paths.raw_dataset(REPLAY_DATASET))
    build_features(REPLAY_DATASET, paths=paths)
    apply_feature_repo(paths, "sqlite")
    materialize_online(open_feature_store(paths, "sqlite"))
    process, base = start_service({**serving_registry, "home": paths}, "bentos.recommender.service:Recommender")
    try:
        result = replay(base, held.ratings, limit=REPLAYED, max_seconds=600, per_user=10)
        yield {"paths": paths, "base": base, "held": held, "result": result}
    finally:
        stop_service(process)


def wait_for_impressions(folder, count: int) -> list[dict]:
    import time

    from eaglerec.event_log import read_impressions

    deadline = time.monotonic() + 30
    while len(impressions := read_impressions(folder)) < count:  # the service flushes them every second
        assert time.monotonic() < deadline, f"{len(impressions)} impressions logged, expected {count}"
        time.sleep(0.5)
    return impressions


def test_a_replay_plays_the_held_out_period_and_both_logs_measure_it_alike(replayed):
    from monitoring.ab_outcomes import build_ab_report

    result, paths = replayed["result"], replayed["paths"]
    expected = REPLAYED
    assert result.played == expected and not result.refused and result.stopped_early is None
    impressions = wait_for_impressions(paths.events, expected)
    assert len(impressions) == expected

    # The replay's own count of "the next rating was shown", recomputed from the two logs: each event against the
    # user's latest impression before it.
    events = sorted(RatingLog(paths.events).scan().events.values(), key=lambda e: e.logged_at)
    assert len(events) == expected
    shown_by_variant: dict[str, int] = {}
    for event in events:
        before = [i for i in impressions if i["user_id"] == event.user_id and i["served_at"] <= event.logged_at]
        latest = max(before, key=lambda i: i["served_at"])
        was_shown = event.movie_id in {item["movie_id"] for item in latest["items"]}
        assert (event.request_id == latest["request_id"]) == was_shown
        shown_by_variant[latest["variant"]] = shown_by_variant.get(latest["variant"], 0) + was_shown
    assert {v: t.shown for v, t in result.by_variant.items()} == {v: shown_by_variant.get(v, 0)
                                                                    for v in result.by_variant}

    report = build_ab_report(paths.events)
    table = report.table.set_index("variant")
    assert set(table.index) == {"champion", "challenger"} == set(result.by_variant)
    assert table["impressions"].sum() == expected
    for variant in table.index:
        rate = table.loc[variant, "hit_rate"]
        assert rate.low <= rate.value <= rate.high
    assert report.verdicts["ranker-ab"]["verdict"] in ("challenger better", "challenger worse", "not yet significant")


def test_monitoring_finds_no_skew_on_the_served_home_and_names_a_user_whose_online_state_moved(replayed):
    import time

    from eaglerec.feature_store import load_movie_facts, open_feature_store, push_user_ratings
    from monitoring.health import check_health, measure_skew

    paths = replayed["paths"]
    store = open_feature_store(paths, "sqlite")
    report = check_health(paths, store, sample_users=100)
    assert report.skew.empty and report.skew_users == 100
    assert report.recent_events == REPLAYED and set(report.drift["feature"]) == {
        "rating", "release_year", "movie_popularity", "primary_genre"}
    assert len(report.scores) and report.scores["scores"].sum() == REPLAYED * 10
    assert report.scores["not_finite"].sum() == 0

    # A user with fewer ratings than the profile window holds, and a movie they never rated: one more rating,
    # pushed behind the marts' back, changes their count.
    replayed_users = {e.user_id for e in RatingLog(paths.events).scan().events.values()}
    rated = pd.read_parquet(paths.marts / "rating_events.parquet", columns=["user_id", "movie_id"])
    counts = rated[~rated["user_id"].isin(replayed_users)]["user_id"].value_counts()
    user = int(counts.idxmin())
    movie = int(min(set(rated["movie_id"]) - set(rated[rated["user_id"] == user]["movie_id"])))
    assert counts[user] < 100 and measure_skew(store, paths.marts, [user]).empty
    push_user_ratings(store, load_movie_facts(paths), user, [(movie, 5.0, int(time.time()))])
    differences = measure_skew(store, paths.marts, [user])
    assert set(differences["user_id"]) == {user} and "user_rating_count" in set(differences["feature"])


def test_the_next_features_run_holds_the_replayed_ratings_and_a_reload_counts_them_once(replayed):
    from eaglerec.feature_store import materialize_online, open_feature_store
    from tests.services import ADMIN_TOKEN, call

    paths, base, held = replayed["paths"], replayed["base"], replayed["held"]
    played = RatingLog(paths.events).scan().events
    user = max({e.user_id for e in played.values()}, key=lambda u: sum(e.user_id == u for e in played.values()))
    count_before = call(base, f"/users/{user}")[1]["rating_count"]

    raw_dir = paths.raw_dataset(REPLAY_DATASET)
    taken = take_live_ratings(paths.events, raw_dir)
    assert taken.ratings == len(played)
    validate_raw_dataset(raw_dir)
    build_features(REPLAY_DATASET, paths=paths)
    rating_events = pd.read_parquet(paths.marts / "rating_events.parquet")
    assert len(rating_events) == held.kept + len(played)
    got = set(zip(rating_events.user_id, rating_events.movie_id, rating_events.rated_at, strict=True))
    assert {(e.user_id, e.movie_id, e.rated_at) for e in played.values()} <= got
    examples = pd.read_parquet(paths.marts / "rating_examples.parquet")
    assert len(examples) == len(rating_events)

    # The service, reloaded on the new marts, holds the replayed ratings in them now, not also as live ones.
    materialize_online(open_feature_store(paths, "sqlite"))
    status, _ = call(base, "/admin/reload", b"", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status == 200
    assert call(base, f"/users/{user}")[1]["rating_count"] == count_before
