"""Expectation suites for the raw MovieLens files, one pair per file.

Each file is checked in two passes. The text pass runs on the file read as strings (so a bad value is reported as
it stands in the file, with its line): columns, non-empty, and the lexical shape of every value. The typed pass
runs only when the text pass succeeded, on the parsed values: ranges, sets, uniqueness and references.
"""

from __future__ import annotations

from dataclasses import dataclass

import great_expectations as gx

# MovieLens collected its first ratings in January 1995 (ml-25m's earliest is 1995-01-09).
MOVIELENS_FIRST_RATING_AT = 788_918_400  # 1995-01-01T00:00:00Z
HALF_STAR_RATINGS = [step / 2 for step in range(1, 11)]  # 0.5, 1.0, ..., 5.0

# Ids fit a 32-bit integer (dbt casts them to INTEGER); epoch seconds fit 11 digits.
POSITIVE_INT = r"^[1-9][0-9]{0,8}$"
UNSIGNED_INT = r"^[0-9]{1,11}$"
DECIMAL = r"^[0-9]{1,3}(?:\.[0-9]{1,6})?$"
NOT_BLANK = r"\S"
GENRE_LIST = r"^[^|]+(?:\|[^|]+)*$"


@dataclass(frozen=True)
class RawFileSpec:
    """What one raw file must look like: its columns in order and each column's text pattern."""

    file_name: str
    columns: tuple[str, ...]
    patterns: dict[str, str]
    optional_columns: tuple[str, ...] = ()
    # The dtype each column is parsed to for the typed pass.
    dtypes: dict[str, str] | None = None


RAW_FILE_SPECS = {
    "ratings": RawFileSpec(
        "ratings.csv",
        ("userId", "movieId", "rating", "timestamp"),
        {"userId": POSITIVE_INT, "movieId": POSITIVE_INT, "rating": DECIMAL, "timestamp": UNSIGNED_INT},
        dtypes={"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"},
    ),
    "movies": RawFileSpec(
        "movies.csv",
        ("movieId", "title", "genres"),
        {"movieId": POSITIVE_INT, "title": NOT_BLANK, "genres": GENRE_LIST},
        dtypes={"movieId": "int64"},
    ),
    "links": RawFileSpec(
        "links.csv",
        ("movieId", "imdbId", "tmdbId"),
        {"movieId": POSITIVE_INT, "imdbId": UNSIGNED_INT, "tmdbId": UNSIGNED_INT},
        optional_columns=("tmdbId",),
        dtypes={"movieId": "int64"},
    ),
    "tags": RawFileSpec(
        "tags.csv",
        ("userId", "movieId", "tag", "timestamp"),
        {"userId": POSITIVE_INT, "movieId": POSITIVE_INT, "tag": NOT_BLANK, "timestamp": UNSIGNED_INT},
        dtypes={"userId": "int64", "movieId": "int64", "timestamp": "int64"},
    ),
}


def build_text_suite(spec: RawFileSpec) -> gx.ExpectationSuite:
    """Return the text-pass suite of a raw file: columns, non-empty, and each value's shape."""
    suite = gx.ExpectationSuite(name=f"raw_{spec.file_name}_text")
    suite.add_expectation(gx.expectations.ExpectTableColumnsToMatchOrderedList(column_list=list(spec.columns)))
    suite.add_expectation(gx.expectations.ExpectTableRowCountToBeBetween(min_value=1))
    for column, pattern in spec.patterns.items():
        if column in spec.optional_columns:
            # Empty means "unknown" here (tmdbId is missing for a few movies); anything else must match.
            pattern = f"^$|(?:{pattern})"
        suite.add_expectation(gx.expectations.ExpectColumnValuesToMatchRegex(column=column, regex=pattern))
    return suite


def build_typed_suite(name: str, movie_ids: list[int], now: int) -> gx.ExpectationSuite:
    """Return the typed-pass suite of a raw file: ranges, half-star ratings, uniqueness, references to movies."""
    expect = gx.expectations
    suite = gx.ExpectationSuite(name=f"raw_{name}_typed")
    timestamp_range = {"min_value": MOVIELENS_FIRST_RATING_AT, "max_value": now}
    if name == "ratings":
        suite.add_expectation(expect.ExpectColumnValuesToBeInSet(column="rating", value_set=HALF_STAR_RATINGS))
        suite.add_expectation(expect.ExpectColumnValuesToBeBetween(column="timestamp", **timestamp_range))
        suite.add_expectation(expect.ExpectCompoundColumnsToBeUnique(column_list=["userId", "movieId"]))
    if name == "tags":
        suite.add_expectation(expect.ExpectColumnValuesToBeBetween(column="timestamp", **timestamp_range))
    if name in ("movies", "links"):
        suite.add_expectation(expect.ExpectColumnValuesToBeUnique(column="movieId"))
    if name in ("ratings", "links", "tags"):
        suite.add_expectation(expect.ExpectColumnValuesToBeInSet(column="movieId", value_set=movie_ids))
    return suite
