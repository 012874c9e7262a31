"""Feast: apply the feature repo, materialise the marts online, build training sets, read online features."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from eaglerec.contracts.names import RANKER_SERVICE, USER_STATE_SERVICE
from eaglerec.near_line import MovieFacts, fold_rating, profile_from_activity
from eaglerec.settings import REPO_ROOT, Paths, duckdb_memory_limit

FEATURE_REPO_DIR = REPO_ROOT / "feature_repo"
# The online store is chosen by configuration: each name selects a feature_store YAML of the same repo.
ONLINE_STORE_FILES = {"sqlite": "feature_store.yaml", "redis": "feature_store.redis.yaml"}
DEFAULT_REDIS_ADDRESS = "127.0.0.1:6379"
# MovieLens has no ratings before 1995: a first materialisation from here loads every as-of state.
HISTORY_START = datetime(1995, 1, 1, tzinfo=UTC)


class FeatureStoreError(Exception):
    """A feature store operation cannot run; the message says what is missing."""


def select_online_store(online_store: str | None = None) -> str:
    online_store = online_store or os.environ.get("EAGLEREC_ONLINE_STORE", "sqlite")
    if online_store not in ONLINE_STORE_FILES:
        raise FeatureStoreError(f"EAGLEREC_ONLINE_STORE={online_store!r}: expected one of {sorted(ONLINE_STORE_FILES)}")
    return online_store


def export_feast_environment(paths: Paths) -> None:
    """Set the variables feature_store*.yaml and data_sources.py read (Feast substitutes ${VAR} only if set)."""
    os.environ["EAGLEREC_HOME"] = str(paths.home)
    os.environ.setdefault("EAGLEREC_REDIS_ADDRESS", DEFAULT_REDIS_ADDRESS)
    (paths.home / "feast").mkdir(parents=True, exist_ok=True)


def feature_store_yaml(online_store: str | None = None) -> Path:
    return FEATURE_REPO_DIR / ONLINE_STORE_FILES[select_online_store(online_store)]


def open_feature_store(paths: Paths | None = None, online_store: str | None = None):
    """Return a FeatureStore over this project's feature repo with the selected online store."""
    from feast import FeatureStore

    export_feast_environment(paths or Paths.from_env())
    bound_offline_store_memory()
    return FeatureStore(repo_path=str(FEATURE_REPO_DIR), fs_yaml_file=feature_store_yaml(online_store))


def bound_offline_store_memory() -> None:
    """Give Feast's DuckDB offline store (ibis's default DuckDB backend) the memory limit dbt's DuckDB has.

    Unbounded, DuckDB may take 80 % of RAM: materialising the 25M-rating marts (latest row per user out of 25M
    rows) was killed by the kernel at 24 GB. Bounded, it spills to disk instead."""
    import ibis

    ibis.set_backend(ibis.duckdb.connect(memory_limit=duckdb_memory_limit(), preserve_insertion_order=False))


def apply_feature_repo(paths: Paths | None = None, online_store: str | None = None) -> None:
    """`feast apply`: register the repo's entities, sources, views and services and create the online tables."""
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    export_feast_environment(paths or Paths.from_env())
    config = load_repo_config(FEATURE_REPO_DIR, feature_store_yaml(online_store))
    cwd = Path.cwd()
    # The repo's modules import each other by file name, as under the `feast` command.
    if str(FEATURE_REPO_DIR) not in sys.path:
        sys.path.insert(0, str(FEATURE_REPO_DIR))
    forget_repo_modules()
    try:
        # Sources are read when materialising, not now: the repo can be registered before the marts exist.
        apply_total(config, FEATURE_REPO_DIR, skip_source_validation=True)
    finally:
        os.chdir(cwd)


def forget_repo_modules() -> None:
    """Drop the feature repo's modules from the import cache: data_sources.py reads $EAGLEREC_HOME when imported, and
    Feast imports the repo with importlib (cached), so another home in the same process would keep the old paths."""
    for path in FEATURE_REPO_DIR.glob("*.py"):
        sys.modules.pop(path.stem, None)


def materialize_online(store, end: datetime | None = None) -> dict[str, str]:
    """Load the latest state of every view whose source exists into the online store; return what ran per view."""
    end = end or datetime.now(UTC)
    done = {}
    for view in store.list_feature_views():
        if not Path(view.batch_source.path).exists():
            done[view.name] = "skipped (no source file yet)"
            continue
        if view.most_recent_end_time is None:
            store.materialize(start_date=HISTORY_START, end_date=end, feature_views=[view.name])
            done[view.name] = "full"
        else:
            store.materialize_incremental(end_date=end, feature_views=[view.name])
            done[view.name] = "incremental"
    return done


def load_training_frame(events: pd.DataFrame, store, service: str = RANKER_SERVICE) -> pd.DataFrame:
    """Return rating events joined point-in-time with the features of a feature service (Feast historical path)."""
    entity_frame = events.assign(event_timestamp=pd.to_datetime(events["rated_at"], unit="s", utc=True))
    features = store.get_feature_service(service)
    frame = store.get_historical_features(entity_df=entity_frame, features=features).to_df()
    return frame.drop(columns=["event_timestamp"])


def read_online_features(store, service: str, entity_rows: list[dict]) -> pd.DataFrame:
    """Return the online features of a service for the given entity keys, one row per key, in order."""
    features = store.get_feature_service(service)
    return store.get_online_features(features=features, entity_rows=entity_rows).to_df()


class OnlineReader:
    """Reads entities' features of a feature service straight from the online store, the views resolved once.

    The same values as `get_online_features` (a test compares them) at a fraction of the cost: the SDK rebuilds its
    request context from the registry on every call (~18 ms here against ~0.2 ms for these reads)."""

    def __init__(self, store, service: str, views: tuple[str, ...] | None = None):
        """Read the service's features, or only those of some of its views."""
        self.store = store
        feature_service = store.get_feature_service(service)
        self.views = [(store.get_feature_view(projection.name), [f.name for f in projection.features])
                      for projection in feature_service.feature_view_projections
                      if views is None or projection.name in views]
        entity = store.get_entity(self.views[0][0].entities[0])
        self.join_key = entity.join_key
        self.make_value = proto_converter(entity.value_type)
        self.provider = store._get_provider()

    def entity_key(self, entity_id):
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey

        return EntityKey(join_keys=[self.join_key], entity_values=[self.make_value(entity_id)])

    def read(self, entity_id) -> dict:
        """Return {feature: python value} for one entity; features it has no value for are absent."""
        return self.read_many([entity_id])[0]

    def read_many(self, entity_ids: list) -> list[dict]:
        """read() of several entities, one store read per view."""
        from feast.type_map import feast_value_type_to_python_type

        keys = [self.entity_key(entity_id) for entity_id in entity_ids]
        features: list[dict] = [{} for _ in entity_ids]
        for view, names in self.views:
            rows = self.provider.online_read(config=self.store.config, table=view, entity_keys=keys,
                                             requested_features=names)
            for found, (_, values) in zip(features, rows, strict=True):
                for name, value in (values or {}).items():
                    if name in names:
                        found[name] = feast_value_type_to_python_type(value)
        return features


ACTIVITY_COLUMNS = ("recent_movie_ids", "recent_ratings", "recent_rated_ats")
ACTIVITY_VIEW, PROFILE_VIEW = "user_recent_activity", "user_profiles"


def load_movie_facts(paths: Paths | None = None) -> dict[int, MovieFacts]:
    """Return every movie's release year and genres from the movie_catalog mart."""
    catalog = pd.read_parquet((paths or Paths.from_env()).marts / "movie_catalog.parquet",
                              columns=["movie_id", "release_year", "genres"])
    return {int(movie_id): MovieFacts(None if pd.isna(year) else int(year), tuple(genres))
            for movie_id, year, genres in catalog.itertuples(index=False)}


def push_rating_event(store, movies: dict[int, MovieFacts], user_id: int, movie_id: int, rating: float,
                      rated_at: int) -> dict:
    """Update a user's recent activity and profile in the online store at once; return the new profile."""
    return push_user_ratings(store, movies, user_id, [(movie_id, rating, rated_at)])


def push_user_ratings(store, movies: dict[int, MovieFacts], user_id: int,
                      ratings: list[tuple[int, float, int]]) -> dict:
    """Fold ratings (movie_id, rating, rated_at), in the order given, into a user's online state; return the new
    profile. For a one-off push: the service keeps one UserStateWriter for all of its pushes."""
    return UserStateWriter(store, movies).push({user_id: ratings})[user_id][-1]


class UserStateWriter:
    """Folds ratings into users' online recent activity and recomputes their profiles as dbt would, then writes both
    views for a whole batch of users: one store read and one write per view, straight through the provider.

    The Feast SDK path (get_online_features, then store.push of a one-row DataFrame per view) cost 47-69 ms per
    rating here, most of it rebuilding request contexts and converting DataFrames; this writes the same rows (a test
    reads them back through the SDK) in 1.4-1.7 ms (`make bench-events`). Not thread-safe by design: a
    read-fold-write must not interleave with another for the same user, so the service calls it from one writer
    thread.

    Idempotent: folding a rating the state already holds replaces it with itself, so replaying events is safe."""

    def __init__(self, store, movies: dict[int, MovieFacts]):
        self.store = store
        self.movies = movies
        self.reader = OnlineReader(store, USER_STATE_SERVICE, views=(ACTIVITY_VIEW,))
        self.views = {name: store.get_feature_view(name) for name in (ACTIVITY_VIEW, PROFILE_VIEW)}
        self.converters = {name: {field.name: proto_converter(field.dtype.to_value_type()) for field in view.features}
                           for name, view in self.views.items()}
        relax_sqlite_commits(store)

    def push(self, ratings_by_user: dict[int, list[tuple[int, float, int]]]) -> dict[int, list[dict]]:
        """Fold each user's ratings (movie_id, rating, rated_at), in the order given, and write the new states;
        return each user's profile after each of their ratings (the last one is what the store now holds)."""
        unknown = [movie_id for ratings in ratings_by_user.values() for movie_id, _, _ in ratings
                   if movie_id not in self.movies]
        if unknown:
            raise FeatureStoreError(f"movie_id {unknown[0]}: not in movie_catalog")
        users = [user_id for user_id, ratings in ratings_by_user.items() if ratings]
        rows: dict[str, list] = {ACTIVITY_VIEW: [], PROFILE_VIEW: []}
        profiles: dict[int, list[dict]] = {}
        for user_id, current in zip(users, self.reader.read_many(users), strict=True):
            activity = {name: current.get(name) for name in ACTIVITY_COLUMNS}
            profiles[user_id] = []
            for movie_id, rating, rated_at in ratings_by_user[user_id]:
                activity = fold_rating(activity, movie_id, rating, rated_at)
                profiles[user_id].append(profile_from_activity(activity, self.movies))
            # The new state holds from the next second, like the rows dbt writes.
            valid_from = datetime.fromtimestamp(activity["recent_rated_ats"][0] + 1, UTC)
            key = self.reader.entity_key(user_id)
            rows[ACTIVITY_VIEW].append((key, self.to_protos(ACTIVITY_VIEW, activity), valid_from, None))
            rows[PROFILE_VIEW].append((key, self.to_protos(PROFILE_VIEW, profiles[user_id][-1]), valid_from, None))
        for view, data in rows.items():
            if data:
                self.reader.provider.online_write_batch(self.store.config, self.views[view], data, progress=None)
        return profiles

    def to_protos(self, view: str, row: dict) -> dict:
        return {feature: convert(row[feature]) for feature, convert in self.converters[view].items()}


def proto_converter(value_type):
    """A function from a Python value (None for missing) to the Value proto Feast stores for this type; the same
    bytes as Feast's python_values_to_proto_values (a test compares them) at a twentieth of its cost."""
    from feast.protos.feast.types import Value_pb2
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    scalars = {ValueType.INT32: "int32_val", ValueType.INT64: "int64_val", ValueType.DOUBLE: "double_val",
               ValueType.FLOAT: "float_val", ValueType.STRING: "string_val", ValueType.BOOL: "bool_val"}
    lists = {ValueType.INT32_LIST: ("int32_list_val", Value_pb2.Int32List),
             ValueType.INT64_LIST: ("int64_list_val", Value_pb2.Int64List),
             ValueType.DOUBLE_LIST: ("double_list_val", Value_pb2.DoubleList),
             ValueType.STRING_LIST: ("string_list_val", Value_pb2.StringList)}
    if value_type in scalars:
        field = scalars[value_type]
        return lambda value: Value_pb2.Value() if value is None else Value_pb2.Value(**{field: value})
    if value_type in lists:
        field, list_type = lists[value_type]
        return lambda value: Value_pb2.Value() if value is None else Value_pb2.Value(**{field: list_type(val=value)})
    return lambda value: python_values_to_proto_values([value], value_type)[0]


def relax_sqlite_commits(store) -> None:
    """Let the SQLite online store commit without an fsync (WAL journal, synchronous=NORMAL): the event log is the
    durable copy of every pushed rating, and the service replays it on start, so a power cut may cost the online
    store its last commits but never a rating. WAL keeps the file consistent through a crash, and lets a reader
    (the service) and a writer (a materialisation) work at once. The two commits' fsyncs were about 40 % of a push
    in a profile."""
    online_store = store._get_provider().online_store
    if type(online_store).__name__ == "SqliteOnlineStore":
        connection = online_store._get_conn(store.config)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
