"""Feast over the marts: registry, point-in-time training sets, SQLite and Redis online stores, the push path."""

import shutil
import time

import numpy as np
import pandas as pd
import pytest

from eaglerec.feature_store import (
    apply_feature_repo,
    load_movie_facts,
    load_training_frame,
    materialize_online,
    open_feature_store,
    push_rating_event,
    read_online_features,
)
from eaglerec.near_line import profile_from_activity
from eaglerec.settings import Paths
from tests.reference import FLATTENED_LISTS, expected_user_features, index_movies, same, unflatten

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER_FEATURES = ["user_last_rated_at", "user_rating_count", "user_avg_rating", "user_rating_stddev",
                 "user_avg_release_year", "user_release_year_stddev", "user_liked_movie_ids", "user_genres",
                 *[f"user_liked_movie_{rank}" for rank in range(1, 6)], *[f"user_genre_{rank}" for rank in range(1, 6)]]
MOVIE_FEATURES = ["movie_last_rated_at", "release_year", "movie_genre_1", "movie_genre_2", "movie_genre_3",
                  "movie_rating_count", "movie_avg_rating", "movie_rating_stddev"]


def copy_marts(source: Paths, dest_root) -> Paths:
    paths = Paths(dest_root / "home")
    shutil.copytree(source.marts, paths.marts)
    return paths


def materialized_store(paths: Paths, online_store: str):
    apply_feature_repo(paths, online_store)
    store = open_feature_store(paths, online_store)
    materialize_online(store)
    return store


@pytest.fixture(scope="module")
def sqlite_store(built_paths, tmp_path_factory):
    return materialized_store(copy_marts(built_paths, tmp_path_factory.mktemp("feast_sqlite")), "sqlite")


@pytest.fixture(scope="module")
def redis_store(built_paths, tmp_path_factory, redis_address, monkeypatch_module):
    monkeypatch_module.setenv("EAGLEREC_REDIS_ADDRESS", redis_address)
    return materialized_store(copy_marts(built_paths, tmp_path_factory.mktemp("feast_redis")), "redis")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def latest_rows(mart: pd.DataFrame, key: str) -> pd.DataFrame:
    return mart.sort_values("valid_from").groupby(key).tail(1).set_index(key)


def assert_rows_equal(actual: pd.DataFrame, expected: pd.DataFrame, columns: list[str]) -> None:
    mismatches = [(index, column, actual.at[index, column], expected.at[index, column])
                  for index in expected.index for column in columns
                  if not same(actual.at[index, column], none_if_missing(expected.at[index, column]))]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"


def none_if_missing(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def test_apply_registers_every_view_and_service(sqlite_store):
    assert {view.name for view in sqlite_store.list_feature_views()} == {
        "user_profiles", "movie_profiles", "user_recent_activity"}
    assert {service.name for service in sqlite_store.list_feature_services()} == {
        "ranker_v1", "user_state_v1", "movie_state_v1"}


def test_historical_features_equal_the_dbt_training_set(sqlite_store, built_paths):
    examples = pd.read_parquet(built_paths.marts / "rating_examples.parquet")
    tied = examples[examples.duplicated(["user_id", "rated_at"], keep=False)]
    events = pd.concat([examples.sample(2000, random_state=3), tied.sample(300, random_state=3)])
    events = events[["user_id", "movie_id", "rating", "rated_at", "label", "split"]].drop_duplicates()

    frame = load_training_frame(events, sqlite_store)

    assert len(frame) == len(events)
    frame = frame.set_index(["user_id", "movie_id"])
    expected = examples.set_index(["user_id", "movie_id"]).loc[frame.index]
    # rating_examples is flat: Feast's list features are compared with the lists its columns hold.
    for name in FLATTENED_LISTS:
        expected[name] = [unflatten(row, name) for _, row in expected.iterrows()]
    assert_rows_equal(frame, expected, USER_FEATURES + MOVIE_FEATURES)


def test_online_reads_return_each_users_and_movies_latest_state(sqlite_store, built_paths):
    users = latest_rows(pd.read_parquet(built_paths.marts / "user_profiles.parquet"), "user_id")
    movies = latest_rows(pd.read_parquet(built_paths.marts / "movie_profiles.parquet"), "movie_id")
    user_ids = [1, 2, 414, 599, 610]
    # Popular, rare and never-rated movies in one batch.
    movie_ids = sorted(movies.sample(97, random_state=5).index.tolist() + [1, 318, 176601])

    online_users = read_online_features(sqlite_store, "user_state_v1", [{"user_id": u} for u in user_ids])
    online_movies = read_online_features(sqlite_store, "movie_state_v1", [{"movie_id": m} for m in movie_ids])

    assert online_users.user_id.tolist() == user_ids and online_movies.movie_id.tolist() == movie_ids
    assert_rows_equal(online_users.set_index("user_id"), users.loc[user_ids], USER_FEATURES)
    assert_rows_equal(online_movies.set_index("movie_id"), movies.loc[movie_ids], MOVIE_FEATURES)


def test_a_second_materialisation_is_incremental(sqlite_store):
    outcome = materialize_online(sqlite_store)
    assert set(outcome.values()) == {"incremental"} and len(outcome) == 3


def test_the_redis_online_store_serves_the_same_features_as_sqlite(sqlite_store, redis_store):
    entity_rows = [{"movie_id": movie_id} for movie_id in (1, 2, 3, 318, 356, 176601)]
    from_sqlite = read_online_features(sqlite_store, "movie_state_v1", entity_rows).set_index("movie_id")
    from_redis = read_online_features(redis_store, "movie_state_v1", entity_rows).set_index("movie_id")
    assert_rows_equal(from_redis, from_sqlite, MOVIE_FEATURES)
    users_sqlite = read_online_features(sqlite_store, "user_state_v1", [{"user_id": 7}]).set_index("user_id")
    users_redis = read_online_features(redis_store, "user_state_v1", [{"user_id": 7}]).set_index("user_id")
    assert_rows_equal(users_redis, users_sqlite, USER_FEATURES + ["recent_movie_ids", "recent_ratings"])


@pytest.mark.parametrize("online_store", ["sqlite", "redis"])
def test_a_pushed_rating_is_read_back_at_once(online_store, built_paths, bundled_frames, tmp_path, request):
    if online_store == "redis":
        request.getfixturevalue("redis_store")  # a redis-server and EAGLEREC_REDIS_ADDRESS for this module
    store = materialized_store(copy_marts(built_paths, tmp_path), online_store)
    ratings, movies = bundled_frames["ratings"], index_movies(bundled_frames["movies"])
    user_id, movie_id, rated_at = 42, 1, int(time.time())
    assert not ((ratings.userId == user_id) & (ratings.movieId == movie_id)).any()

    push_rating_event(store, load_movie_facts(Paths(tmp_path / "home")), user_id, movie_id, 4.5, rated_at)
    state = read_online_features(store, "user_state_v1", [{"user_id": user_id}]).iloc[0]

    with_event = pd.concat([ratings, pd.DataFrame([{"userId": user_id, "movieId": movie_id, "rating": 4.5,
                                                    "timestamp": rated_at}])])
    expected = expected_user_features(with_event, movies, user_id, rated_at + 1)
    for column, value in expected.items():
        assert same(none_if_missing(state[column]), value), column
    assert list(state.recent_movie_ids)[0] == movie_id and state.user_liked_movie_1 == movie_id
    assert state.user_last_rated_at == rated_at


def test_the_near_line_recomputation_equals_dbt_for_every_user(built_paths):
    activity = pd.read_parquet(built_paths.marts / "user_recent_activity.parquet").set_index("user_id")
    profiles = latest_rows(pd.read_parquet(built_paths.marts / "user_profiles.parquet"), "user_id")
    movies = load_movie_facts(built_paths)
    recomputed = pd.DataFrame([
        {"user_id": user_id, **profile_from_activity({name: list(row[name]) for name in activity.columns
                                                      if name.startswith("recent_")}, movies)}
        for user_id, row in activity.iterrows()]).set_index("user_id")
    assert_rows_equal(recomputed, profiles.loc[recomputed.index], USER_FEATURES)
