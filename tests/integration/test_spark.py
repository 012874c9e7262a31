"""dbt on Spark, for real: the bundled data set built by the same dbt project on DuckDB and on a local Spark (dbt-spark,
session method, local[2], the Spark env), then every mart compared row for row: the same columns with the same types,
the same rows matched on the mart's unique key (from its dbt uniqueness test), every value equal (floats within 1e-9,
lists element by element). Part of `make test-scale` (marker scale_out)."""

from __future__ import annotations

import math
import shutil
import time

import pyarrow.parquet as pq
import pytest
import yaml

from eaglerec.features import build_features, list_marts, spark_dir
from eaglerec.ingest import ingest
from eaglerec.settings import BUNDLED_DATASET_DIR, DBT_PROJECT_DIR, DEFAULT_DATASET, Paths
from expectations.gate import validate_raw_dataset

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.scale_out]

TOLERANCE = 1e-9


def read_mart_keys() -> dict[str, list[str]]:
    """Each mart's unique key, as its dbt test declares it (a `unique` column or unique_combination_of_columns)."""
    keys = {}
    for model in yaml.safe_load((DBT_PROJECT_DIR / "models" / "marts" / "_marts__models.yml").read_text())["models"]:
        for column in model.get("columns", []):
            if "unique" in column.get("data_tests", []):
                keys[model["name"]] = [column["name"]]
        for test in model.get("data_tests", []):
            if isinstance(test, dict) and "unique_combination_of_columns" in test:
                keys[model["name"]] = test["unique_combination_of_columns"]["arguments"]["combination_of_columns"]
    return keys


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory) -> dict[str, Paths]:
    """The bundled release ingested and gated once, then built by DuckDB in one home and by Spark in a copy."""
    root = tmp_path_factory.mktemp("engines")
    duckdb_home = Paths(root / "duckdb")
    validate_raw_dataset(ingest(str(BUNDLED_DATASET_DIR), paths=duckdb_home).raw_dir)
    spark_home = Paths(root / "spark")
    shutil.copytree(duckdb_home.raw_dataset(DEFAULT_DATASET), spark_home.raw_dataset(DEFAULT_DATASET))
    build_features(DEFAULT_DATASET, paths=duckdb_home)
    started = time.monotonic()
    build_features(DEFAULT_DATASET, paths=spark_home, engine="spark")
    print(f"dbt build of {DEFAULT_DATASET} on Spark (local[2]): {time.monotonic() - started:.1f} s")
    return {"duckdb": duckdb_home, "spark": spark_home}


def same_value(left, right) -> bool:
    if isinstance(left, float) or isinstance(right, float):
        if left is None or right is None:
            return left is None and right is None
        return (math.isnan(left) and math.isnan(right)) or abs(left - right) <= TOLERANCE
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same_value(a, b) for a, b in zip(left, right))
    return left == right


def test_the_parity_check_tells_values_apart():
    assert same_value(1.0, 1.0 + 1e-12) and same_value(None, None) and same_value(float("nan"), float("nan"))
    assert not same_value(1.0, 1.0 + 1e-6) and not same_value(1.0, None) and not same_value([1, 2], [2, 1])
    assert not same_value([0.5], [0.5, 1.0]) and same_value(["Drama"], ["Drama"]) and not same_value(3, 4)


def assert_same_mart(two_builds: dict[str, Paths], mart: str, keys: list[str]) -> None:
    duckdb_table = pq.read_table(two_builds["duckdb"].marts / f"{mart}.parquet")
    spark_table = pq.read_table(two_builds["spark"].marts / f"{mart}.parquet")
    types = {field.name: str(field.type) for field in duckdb_table.schema}
    assert {field.name: str(field.type) for field in spark_table.schema} == types, mart
    assert spark_table.num_rows == duckdb_table.num_rows > 0, mart
    by_key = {tuple(row[key] for key in keys): row for row in spark_table.to_pylist()}
    assert len(by_key) == spark_table.num_rows, f"{mart}: key {keys} repeats in the Spark build"
    unequal = []
    for row in duckdb_table.to_pylist():
        other = by_key.get(tuple(row[key] for key in keys))
        if other is None or not all(same_value(row[column], other[column]) for column in types):
            unequal.append((row, other))
    assert not unequal, f"{mart}: {len(unequal)} rows differ, e.g. {unequal[0]}"


def test_every_mart_built_on_spark_equals_duckdbs_row_for_row(two_builds):
    keys = read_mart_keys()
    assert set(keys) == set(list_marts()), "every mart needs a uniqueness test to be compared by"
    for mart in list_marts():
        assert_same_mart(two_builds, mart, keys[mart])


def test_the_random_split_places_every_rating_alike_on_both_engines(two_builds):
    """rating_events alone rebuilt (the Spark metastore keeps the upstream tables between runs) with the seeded random
    split, whose hash each engine reads from hex in its own way. (The global time split uses only constructs the
    engines share.)"""
    before = pq.read_table(two_builds["spark"].marts / "rating_events.parquet").column("split").to_pylist()
    for engine, home in two_builds.items():
        build_features(DEFAULT_DATASET, paths=home, split_method="random", select="rating_events", engine=engine)
    splits = pq.read_table(two_builds["spark"].marts / "rating_events.parquet").column("split").to_pylist()
    assert {"train", "validation", "test"} == set(splits) and splits != before
    assert_same_mart(two_builds, "rating_events", read_mart_keys()["rating_events"])


def test_spark_keeps_its_state_in_the_home_and_the_build_record_names_no_engine(two_builds):
    """The metastore, the warehouse and Derby's log are under EAGLEREC_HOME/spark, none in the project; the marts'
    data version is the same as DuckDB's (the same inputs, code and vars: the same data)."""
    state = spark_dir(two_builds["spark"])
    assert (state / "metastore_db").is_dir() and (state / "warehouse" / "eaglerec.db").is_dir()
    assert not (DBT_PROJECT_DIR / "metastore_db").exists() and not (DBT_PROJECT_DIR / "derby.log").exists()
    records = [(home.marts / "_build.json").read_text() for home in two_builds.values()]
    assert records[0] == records[1]
