"""The loop's offline half on real files: ratings logged by the service are taken up to a watermark, pass the raw
gate's rules, and reach rating_events and rating_examples with point-in-time features; the marts record the
watermark, and what came after it is exactly what the service must replay."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from eaglerec.event_log import LIVE_RATINGS_FILE, WATERMARK_FILE, LoggedRating, RatingLog, Watermark, take_live_ratings
from eaglerec.features import UngatedReleaseError, build_features
from eaglerec.ingest import ingest
from eaglerec.settings import Paths
from expectations.gate import RawGateError, validate_raw_dataset
from tests.conftest import write_tiny_release

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
    log.void(failed, "online push failed")  # answered 503: counts nowhere
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
    # take, and only that one.
    assert Watermark.read(home.marts) == taken.watermark
    log.append(logged("after", 9, 3, 3.0, LATER + 400))
    assert log.scan(after=Watermark.read(home.marts)).after == ["after"]
    assert json.loads((home.marts / WATERMARK_FILE).read_text())["events"] == 3


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
    RatingLog(home.events).void(logged("unknown-movie", 2, 99, 4.0, LATER), "test")
    RatingLog(home.events).void(logged("bad-stars", 3, 2, 4.2, LATER), "test")
    take_live_ratings(home.events, raw_dir)
    with pytest.raises(UngatedReleaseError, match=LIVE_RATINGS_FILE):
        build_features(DATASET, paths=home)
