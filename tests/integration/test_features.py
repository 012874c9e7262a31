"""The dbt marts on the bundled data, checked against an independent recomputation in plain pandas."""

import hashlib
import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest

from eaglerec.features import build_features
from eaglerec.settings import DEFAULT_DATASET, Paths
from tests.reference import (
    FLATTENED_LISTS,
    HISTORY,
    POSITIVE,
    expected_movie_features,
    expected_user_features,
    index_movies,
    same,
    unflatten,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLED_EVENTS = 300
SAMPLED_TIED_EVENTS = 60


def read_mart(paths: Paths, name: str) -> pd.DataFrame:
    return pd.read_parquet(paths.marts / f"{name}.parquet")


@pytest.fixture(scope="module")
def movies_by_id(bundled_frames) -> pd.DataFrame:
    return index_movies(bundled_frames["movies"])


@pytest.fixture(scope="module")
def examples(built_paths) -> pd.DataFrame:
    return read_mart(built_paths, "rating_examples")


def sample_events(ratings: pd.DataFrame) -> pd.DataFrame:
    """Random events plus events that share their second with another rating of the same user (the tie case)."""
    tied = ratings[ratings.duplicated(["userId", "timestamp"], keep=False)]
    return pd.concat([ratings.sample(SAMPLED_EVENTS, random_state=7), tied.sample(SAMPLED_TIED_EVENTS, random_state=7)])


def test_leakage_proof_features_equal_an_independent_recomputation(bundled_frames, movies_by_id, examples):
    ratings = bundled_frames["ratings"]
    indexed = examples.set_index(["user_id", "movie_id"])
    mismatches = []
    for event in sample_events(ratings).itertuples():
        row = indexed.loc[(event.userId, event.movieId)]
        expected = {**expected_user_features(ratings, movies_by_id, event.userId, event.timestamp),
                    **expected_movie_features(ratings, movies_by_id, event.movieId, event.timestamp)}
        for column, value in expected.items():
            actual = unflatten(row, column) if column in FLATTENED_LISTS else row[column]
            if not same(actual, value):
                mismatches.append((event.userId, event.movieId, event.timestamp, column, actual, value))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"


def test_no_feature_counts_a_rating_at_or_after_its_event(bundled_frames, examples):
    ratings = bundled_frames["ratings"].copy()
    # rank(method="min") - 1 = how many of the user's (movie's) ratings are strictly earlier: ties excluded.
    ratings["user_before"] = (ratings.groupby("userId").timestamp.rank(method="min") - 1).astype(int)
    ratings["movie_before"] = (ratings.groupby("movieId").timestamp.rank(method="min") - 1).astype(int)
    merged = ratings.merge(examples, left_on=["userId", "movieId"], right_on=["user_id", "movie_id"], validate="1:1")

    assert len(merged) == len(ratings) == len(examples)
    assert (merged.user_rating_count == merged.user_before.clip(upper=HISTORY)).all()
    assert (merged.movie_rating_count == merged.movie_before).all()
    assert (examples.user_last_rated_at.dropna() < examples.rated_at[examples.user_last_rated_at.notna()]).all()
    assert (examples.movie_last_rated_at.dropna() < examples.rated_at[examples.movie_last_rated_at.notna()]).all()
    # Ratings sharing a second see identical user features: neither counts the other.
    tied = merged[merged.duplicated(["userId", "timestamp"], keep=False)]
    assert len(tied) > 1000
    assert (tied.groupby(["userId", "timestamp"]).user_rating_count.nunique() == 1).all()


def test_profile_rows_are_one_per_entity_second_plus_a_start_row(bundled_frames, built_paths):
    ratings, movies = bundled_frames["ratings"], bundled_frames["movies"]
    user_profiles = read_mart(built_paths, "user_profiles")
    movie_profiles = read_mart(built_paths, "movie_profiles")

    assert len(user_profiles) == len(ratings.drop_duplicates(["userId", "timestamp"])) + ratings.userId.nunique()
    assert len(movie_profiles) == len(ratings.drop_duplicates(["movieId", "timestamp"])) + len(movies)
    start = ratings.timestamp.min()
    assert (user_profiles.groupby("user_id").valid_from.min() == start).all()
    latest = movie_profiles.sort_values("valid_from").groupby("movie_id").tail(1).set_index("movie_id")
    totals = ratings.groupby("movieId").rating.agg(["count", "mean"])
    assert (latest.loc[totals.index, "movie_rating_count"] == totals["count"]).all()
    assert np.allclose(latest.loc[totals.index, "movie_avg_rating"], totals["mean"])


def expected_per_user_split(ratings: pd.DataFrame) -> pd.Series:
    ordered = ratings.sort_values(["userId", "timestamp", "movieId"])
    position = ordered.groupby("userId").cumcount()
    size = ordered.groupby("userId").movieId.transform("size")
    split = np.where(position * 100 >= 80 * size, "test", np.where(position * 100 >= 70 * size, "validation", "train"))
    return pd.Series(split, index=pd.MultiIndex.from_arrays([ordered.userId, ordered.movieId]))


def test_rating_events_label_and_per_user_time_split(bundled_frames, built_paths):
    ratings = bundled_frames["ratings"]
    events = read_mart(built_paths, "rating_events").set_index(["user_id", "movie_id"]).sort_index()
    expected = expected_per_user_split(ratings).sort_index()

    assert (events.split.to_numpy() == expected.to_numpy()).all()
    labels = ratings.set_index(["userId", "movieId"]).rating.ge(POSITIVE).astype(int).sort_index()
    assert (events.label.to_numpy() == labels.to_numpy()).all()
    shares = events.split.value_counts(normalize=True)
    assert 0.18 < shares["test"] < 0.22 and 0.08 < shares["validation"] < 0.12


def test_user_watch_sequences_are_positives_in_time_order(bundled_frames, built_paths):
    ratings = bundled_frames["ratings"]
    split = expected_per_user_split(ratings)
    positives = ratings[ratings.rating >= POSITIVE].sort_values(["userId", "timestamp", "movieId"])
    positives = positives.assign(split=split.loc[list(zip(positives.userId, positives.movieId))].to_numpy())
    sequences = read_mart(built_paths, "user_watch_sequences").set_index("user_id")

    assert set(sequences.index) == set(positives.userId)
    for user_id, group in positives.groupby("userId"):
        assert list(sequences.at[user_id, "movie_ids"]) == group.movieId.tolist()
        assert list(sequences.at[user_id, "train_movie_ids"]) == group.movieId[group.split == "train"].tolist()


@pytest.fixture(scope="module")
def other_split_paths(built_paths, tmp_path_factory) -> Paths:
    paths = Paths(tmp_path_factory.mktemp("splits") / "home")
    shutil.copytree(built_paths.raw, paths.raw)
    return paths


def test_random_split_is_a_seeded_md5_bucket(bundled_frames, other_split_paths):
    build_features(DEFAULT_DATASET, paths=other_split_paths, split_method="random", split_seed=11,
                   select="+rating_events")
    events = read_mart(other_split_paths, "rating_events")
    buckets = [int(hashlib.md5(f"11:{u}:{m}".encode()).hexdigest()[:8], 16) % 100
               for u, m in zip(events.user_id, events.movie_id)]
    expected = np.where(np.array(buckets) >= 80, "test", np.where(np.array(buckets) >= 70, "validation", "train"))
    assert (events.split.to_numpy() == expected).all()


def test_global_time_split_cuts_all_ratings_once(bundled_frames, other_split_paths):
    build_features(DEFAULT_DATASET, paths=other_split_paths, split_method="global_time", select="+rating_events")
    events = read_mart(other_split_paths, "rating_events").sort_values(["rated_at", "user_id", "movie_id"])
    position = np.arange(len(events))
    expected = np.where(position * 100 >= 80 * len(events), "test",
                        np.where(position * 100 >= 70 * len(events), "validation", "train"))
    assert (events.split.to_numpy() == expected).all()
    assert events[events.split == "test"].rated_at.min() >= events[events.split == "train"].rated_at.max()


def test_the_warehouse_holds_every_layer(built_paths):
    with duckdb.connect(str(built_paths.warehouse), read_only=True) as con:
        relations = {name for (name,) in con.execute("select table_name from information_schema.tables").fetchall()}
    assert {"stg_movielens__ratings", "int_ratings_sequenced", "user_profiles", "rating_examples"} <= relations


def test_user_recent_activity_holds_each_users_last_100_ratings_most_recent_first(bundled_frames, built_paths):
    ratings = bundled_frames["ratings"].sort_values(["userId", "timestamp", "movieId"], ascending=[True, False, False])
    activity = read_mart(built_paths, "user_recent_activity").set_index("user_id")

    assert len(activity) == ratings.userId.nunique()
    for user_id, group in ratings.groupby("userId"):
        recent = group.head(HISTORY)
        row = activity.loc[user_id]
        assert list(row.recent_movie_ids) == recent.movieId.tolist()
        assert list(row.recent_ratings) == recent.rating.tolist()
        assert list(row.recent_rated_ats) == recent.timestamp.tolist()
        assert row.valid_from == group.timestamp.max() + 1
