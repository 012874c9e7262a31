"""The training-set gate: a model trains only on examples whose features and labels look as they must.

Two ways to run one suite (build_training_suite):
- validate_training_frame: Great Expectations on a pandas frame (Feast's training frames, small);
- validate_training_parquet: the rating_examples mart where it lies, in DuckDB. Every rule of the suite is counted
  exactly in SQL (null, set, uniqueness, row count, mean) within DuckDB's memory limit, and Great Expectations runs
  the row rules on a seeded sample as a second reading of them. At 25M examples Great Expectations on the whole
  frame peaked at 19.1 GB (pandas copies per rule); counting in DuckDB keeps to its limit and reports the same
  problems, examples and bad rows.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from eaglerec.settings import duckdb_memory_limit
from expectations.gate import GateError, SuiteRunner, describe_failure

# Every event has user and movie statistics (a first event sees the zero-history row); averages exist with history.
ALWAYS_PRESENT = ("user_id", "movie_id", "rated_at", "label", "user_rating_count", "movie_rating_count")
PRESENT_WITH_HISTORY = {"user_rating_count": ("user_avg_rating", "user_last_rated_at"),
                        "movie_rating_count": ("movie_avg_rating", "movie_last_rated_at")}
REQUIRED_COLUMNS = (*ALWAYS_PRESENT, *sum(PRESENT_WITH_HISTORY.values(), ()))
# Rows of the mart Great Expectations reads; bad rows listed per failed rule (their count is always exact).
SAMPLE_ROWS = 100_000
SAMPLE_SEED = 42
BAD_ROW_LIMIT = 1_000


class TrainingSetGateError(GateError):
    """The training frame failed its suite; training must not start."""

    def __init__(self, name: str, problems: list[str]):
        super().__init__("training-set gate", name, problems, "no model was trained")


def build_training_suite(expected_rows: int, label_rate: tuple[float, float], table_rules: bool = True):
    import great_expectations as gx
    from great_expectations.expectations.row_conditions import Column

    expect = gx.expectations
    suite = gx.ExpectationSuite(name="training_set")
    if table_rules:
        suite.add_expectation(expect.ExpectTableRowCountToEqual(value=expected_rows))
    for column in ALWAYS_PRESENT:
        suite.add_expectation(expect.ExpectColumnValuesToNotBeNull(column=column))
    for count_column, dependents in PRESENT_WITH_HISTORY.items():
        for column in dependents:
            suite.add_expectation(expect.ExpectColumnValuesToNotBeNull(
                column=column, row_condition=Column(count_column) > 0))
    suite.add_expectation(expect.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]))
    if table_rules:
        suite.add_expectation(expect.ExpectColumnMeanToBeBetween(column="label", min_value=label_rate[0],
                                                                 max_value=label_rate[1]))
    suite.add_expectation(expect.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "movie_id"]))
    return suite


def require_columns(name: str, columns) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise TrainingSetGateError(name, [f"missing column(s) {missing}"])


def validate_training_frame(frame: pd.DataFrame, expected_rows: int, name: str = "training set",
                            label_rate: tuple[float, float] = (0.1, 0.9)) -> None:
    """Raise TrainingSetGateError unless the frame has the events asked for, its features and sane labels."""
    problems = [problem for problem, _ in find_frame_problems(frame, expected_rows, name, label_rate)]
    if problems:
        raise TrainingSetGateError(name, problems)


def find_frame_problems(frame: pd.DataFrame, expected_rows: int, name: str = "training set",
                        label_rate: tuple[float, float] = (0.1, 0.9)) -> list[tuple[str, list[dict]]]:
    """Each failed rule of the training suite on a frame: its problem text and its bad rows."""
    require_columns(name, frame.columns)
    frame = frame.reset_index(drop=True)
    failures = SuiteRunner().validate("training_set", frame, build_training_suite(expected_rows, label_rate))
    return [describe_failure(name, frame, failure) for failure in failures]


@dataclass(frozen=True)
class CountedResult:
    """A rule's outcome counted in SQL, shaped as Great Expectations' result so describe_failure words it alike."""

    expectation_config: object
    result: dict


def validate_training_parquet(path: Path, expected_rows: int, name: str = "rating_examples",
                              label_rate: tuple[float, float] = (0.1, 0.9), sample_rows: int = SAMPLE_ROWS) -> None:
    """Raise TrainingSetGateError unless the parquet file passes the training suite (see the module's doc)."""
    problems = [problem for problem, _ in find_parquet_problems(path, expected_rows, name, label_rate, sample_rows)]
    if problems:
        raise TrainingSetGateError(name, problems)


def find_parquet_problems(path: Path, expected_rows: int, name: str = "rating_examples",
                          label_rate: tuple[float, float] = (0.1, 0.9),
                          sample_rows: int = SAMPLE_ROWS) -> list[tuple[str, list[dict]]]:
    """Each failed rule of the training suite on a parquet file: its problem text and its bad rows (at most
    BAD_ROW_LIMIT; the text's count is exact). With none, the row rules on a seeded sample by Great Expectations."""
    import duckdb
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    require_columns(name, schema.names)
    runner = SuiteRunner()  # Great Expectations' context: the suite's expectations need one
    suite = build_training_suite(expected_rows, label_rate)
    floats = {field.name for field in schema if str(field.type) in ("double", "float")}
    # Spills go to a scratch folder of their own (an in-memory DuckDB would spill into the working directory).
    with tempfile.TemporaryDirectory(prefix="training-gate-") as scratch, duckdb.connect(config={
            "memory_limit": duckdb_memory_limit(), "preserve_insertion_order": False,
            "temp_directory": scratch}) as con:
        counted = ParquetCounter(con, str(path), floats)
        problems = []
        for expectation in suite.expectations:
            outcome = counted.check(expectation.configuration)
            if outcome is not None:
                problems.append(describe_failure(name, counted.rows(outcome.result.pop("rows")), outcome))
        if problems:
            return problems
        sample = counted.sample(sample_rows)
    # Indexed by the file's row numbers, so a problem names the rows of the file.
    failures = runner.validate("training_sample", sample, build_training_suite(expected_rows, label_rate,
                                                                               table_rules=False))
    return [describe_failure(f"{name} (a sample of {len(sample):,} rows)", sample, failure) for failure in failures]


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


COMPARISONS = ("<", "<=", ">", ">=", "=", "!=")


class ParquetCounter:
    """Counts a parquet file's rows breaking each rule of a suite; row numbers are the file's (0-based). The SQL
    text holds only the suite's column names (quoted) and fixed words; every value is a bound parameter."""

    def __init__(self, con, path: str, floats: set[str]):
        self.con, self.path, self.floats = con, path, floats
        self.source = "read_parquet($path, file_row_number = true)"

    def query(self, sql: str, **values) -> list[tuple]:
        return self.con.execute(sql, {"path": self.path, **values}).fetchall()

    def is_null(self, column: str) -> str:
        # Great Expectations on pandas counts NaN as missing.
        quoted = identifier(column)
        return f"({quoted} is null or isnan({quoted}))" if column in self.floats else f"{quoted} is null"

    def check(self, config) -> CountedResult | None:
        """The rule's outcome if it failed, else None."""
        kind, kwargs = config.type, config.kwargs
        if kind == "expect_table_row_count_to_equal":
            counting = f"select count(*) from {self.source}"
            (observed,), = self.query(counting)
            return None if observed == kwargs["value"] else CountedResult(config, {"observed_value": observed,
                                                                                   "rows": []})
        if kind == "expect_column_mean_to_be_between":
            averaging = f"select avg({identifier(kwargs['column'])}) from {self.source}"
            (observed,), = self.query(averaging)
            passed = observed is not None and kwargs["min_value"] <= observed <= kwargs["max_value"]
            return None if passed else CountedResult(config, {"observed_value": observed, "rows": []})
        if kind == "expect_compound_columns_to_be_unique":
            return self.check_unique(config)
        values = {}
        if kind == "expect_column_values_to_not_be_null":
            unexpected = self.is_null(kwargs["column"])
        elif kind == "expect_column_values_to_be_in_set":
            column = identifier(kwargs["column"])
            unexpected = f"{column} is not null and not list_contains($value_set, {column})"
            values["value_set"] = list(kwargs["value_set"])
        else:
            raise NotImplementedError(f"the SQL training-set gate has no count for {kind}")
        scope = self.condition(kwargs.get("row_condition"), values)
        counting = f"select count(*), count(*) filter ({unexpected}) from {self.source} where {scope}"
        (elements, count), = self.query(counting, **values)
        if not count:
            return None
        listing = (f"select file_row_number from {self.source} where {scope} and ({unexpected}) "
                   "order by file_row_number limit $limit")
        rows = self.query(listing, **values, limit=BAD_ROW_LIMIT)
        return CountedResult(config, {"unexpected_count": count, "element_count": elements,
                                      "unexpected_index_list": [row for row, in rows], "rows": rows})

    @staticmethod
    def condition(row_condition, values: dict) -> str:
        """Great Expectations' row condition as SQL (its value bound into `values`)."""
        if not row_condition:
            return "true"
        if row_condition.get("type") != "comparison" or row_condition["operator"] not in COMPARISONS:
            raise NotImplementedError(f"the SQL training-set gate has no translation of {row_condition}")
        values["condition_value"] = row_condition["parameter"]
        return f"{identifier(row_condition['column']['name'])} {row_condition['operator']} $condition_value"

    def check_unique(self, config) -> CountedResult | None:
        columns = ", ".join(map(identifier, config.kwargs["column_list"]))
        all_missing = " and ".join(self.is_null(column) for column in config.kwargs["column_list"])
        keyed = f"(select * from {self.source} where not ({all_missing}))"
        duplicated = f"(select {columns} from {keyed} group by all having count(*) > 1)"
        counting = f"select count(*) from {keyed} semi join {duplicated} using ({columns})"
        (count,), = self.query(counting)
        if not count:
            return None
        counting_keyed = f"select count(*) from {keyed}"
        (elements,), = self.query(counting_keyed)
        listing = (f"select file_row_number from {keyed} semi join {duplicated} using ({columns}) "
                   "order by file_row_number limit $limit")
        rows = self.query(listing, limit=BAD_ROW_LIMIT)
        return CountedResult(config, {"unexpected_count": count, "element_count": elements,
                                      "unexpected_index_list": [row for row, in rows], "rows": rows})

    def rows(self, numbered: list[tuple]) -> pd.DataFrame:
        """The file's rows of these row numbers, indexed by them."""
        numbers = [number for number, in numbered]
        if not numbers:
            return pd.DataFrame()
        fetching = (f"select * from {self.source} where file_row_number in (select unnest($numbers)) "
                    "order by file_row_number")
        frame = self.con.execute(fetching, {"path": self.path, "numbers": numbers}).df()
        return frame.set_index("file_row_number").rename_axis(None)

    def sample(self, rows: int) -> pd.DataFrame:
        """A seeded sample of the file's rows (the smallest hashes of row number and seed), in file order, indexed
        by row number."""
        sampling = (f"select * from (select * from {self.source} order by hash(file_row_number, $seed) limit $rows) "
                    "order by file_row_number")
        frame = self.con.execute(sampling, {"path": self.path, "seed": SAMPLE_SEED, "rows": rows}).df()
        return frame.set_index("file_row_number").rename_axis(None)
