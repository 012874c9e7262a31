"""Expectation suites for the raw MovieLens files.

A file is first parsed with the types it must have (pyarrow, strict: no empty numbers). When that works, the typed
suite alone decides: columns, non-empty, ids in range, half-star ratings, plausible timestamps, uniqueness, references
to movies.csv, and the shape of the text columns. When it does not (a value that is not a number, a broken line,
bad bytes), the file is read as plain strings and the text suite names the values and lines that are wrong, as they
stand in the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import great_expectations as gx

from eaglerec.event_log import LIVE_RATINGS_FILE

# MovieLens collected its first ratings in January 1995 (ml-25m's earliest is 1995-01-09).
MOVIELENS_FIRST_RATING_AT = 788_918_400  # 1995-01-01T00:00:00Z
HALF_STAR_RATINGS = [step / 2 for step in range(1, 11)]  # 0.5, 1.0, ..., 5.0
# The reference to movies.csv is checked on this derived column (True where the movieId is one of movies.csv's):
# Great Expectations re-serialises an expectation's whole value set each time it reads its configuration, and the
# set of all movie ids made that one check most of the gate's time (11 s of 13 on 80 users' ratings).
KNOWN_MOVIE = "movieId_in_movies_csv"
REFERENCING_FILES = ("ratings", "live_ratings", "links", "tags")

# Ids fit a 32-bit integer (dbt casts them to INTEGER); epoch seconds fit 11 digits.
MAX_ID = 999_999_999
POSITIVE_INT = r"^[1-9][0-9]{0,8}$"
UNSIGNED_INT = r"^[0-9]{1,11}$"
DECIMAL = r"^[0-9]{1,3}(?:\.[0-9]{1,6})?$"
NOT_BLANK = r"\S"
GENRE_LIST = r"^[^|]+(?:\|[^|]+)*$"
# What each pattern asks, in words, for the gate's report.
PATTERN_WORDS = {
    POSITIVE_INT: "a whole number from 1 to 999,999,999",
    UNSIGNED_INT: "a whole number of at most 11 digits",
    DECIMAL: "a decimal number such as 3.5",
    NOT_BLANK: "not blank",
    GENRE_LIST: "genres separated by |",
}


@dataclass(frozen=True)
class RawFileSpec:
    """What one raw file must look like: its columns in order and each column's text pattern."""

    file_name: str
    columns: tuple[str, ...]
    patterns: dict[str, str]
    optional_columns: tuple[str, ...] = ()
    # The dtype each column is parsed to for the typed pass.
    dtypes: dict[str, str] | None = None
    # A file the release may lack, and that may hold no rows (the service's logged ratings, taken by a features run).
    optional_file: bool = False
    # A file that may hold only its header: no feature reads it (links, tags; ml-100k and ml-1m have neither).
    may_be_empty: bool = False


RAW_FILE_SPECS = {
    "ratings": RawFileSpec(
        "ratings.csv",
        ("userId", "movieId", "rating", "timestamp"),
        {"userId": POSITIVE_INT, "movieId": POSITIVE_INT, "rating": DECIMAL, "timestamp": UNSIGNED_INT},
        dtypes={"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"},
    ),
    # The ratings users gave on the site (eaglerec/event_log.py), checked by the same rules as the release's.
    "live_ratings": RawFileSpec(
        LIVE_RATINGS_FILE,
        ("userId", "movieId", "rating", "timestamp"),
        {"userId": POSITIVE_INT, "movieId": POSITIVE_INT, "rating": DECIMAL, "timestamp": UNSIGNED_INT},
        dtypes={"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"},
        optional_file=True,
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
        optional_columns=("imdbId", "tmdbId"),
        dtypes={"movieId": "int64"},
        may_be_empty=True,
    ),
    "tags": RawFileSpec(
        "tags.csv",
        ("userId", "movieId", "tag", "timestamp"),
        {"userId": POSITIVE_INT, "movieId": POSITIVE_INT, "tag": NOT_BLANK, "timestamp": UNSIGNED_INT},
        dtypes={"userId": "int64", "movieId": "int64", "timestamp": "int64"},
        may_be_empty=True,
    ),
}


def add_structure(suite: gx.ExpectationSuite, spec: RawFileSpec, columns: list[str]) -> None:
    """Add the checks every pass shares: the header, at least one row, and the text pattern of `columns`."""
    suite.add_expectation(gx.expectations.ExpectTableColumnsToMatchOrderedList(column_list=list(spec.columns)))
    if not (spec.optional_file or spec.may_be_empty):
        suite.add_expectation(gx.expectations.ExpectTableRowCountToBeBetween(min_value=1))
    for column in columns:
        pattern = spec.patterns[column]
        if column in spec.optional_columns:
            # Empty means "unknown" here (tmdbId is missing for a few movies, imdbId where a release has no link
            # to IMDb); anything else must match.
            pattern = f"^$|(?:{pattern})"
        suite.add_expectation(gx.expectations.ExpectColumnValuesToMatchRegex(column=column, regex=pattern))


def build_text_suite(spec: RawFileSpec) -> gx.ExpectationSuite:
    """Return the text suite of a raw file read as strings: header, non-empty, and every value's shape."""
    suite = gx.ExpectationSuite(name=f"raw_{spec.file_name}_text")
    add_structure(suite, spec, list(spec.patterns))
    return suite


def find_known_movies(frame, movie_ids):
    """A one-column frame on frame's index: KNOWN_MOVIE, whether each row's movieId is one of movie_ids (not a copy
    of the file's columns: at 25M ratings that copy cost 0.8 GB)."""
    import pandas as pd

    return pd.DataFrame({KNOWN_MOVIE: frame["movieId"].isin(movie_ids)}, index=frame.index)


def build_typed_suite(name: str, now: int) -> gx.ExpectationSuite:
    """Return the typed suite of a parsed raw file: structure, ranges, ratings, uniqueness (the references to
    movies.csv are build_reference_suite's)."""
    expect = gx.expectations
    spec = RAW_FILE_SPECS[name]
    suite = gx.ExpectationSuite(name=f"raw_{name}_typed")
    typed_columns = list(spec.dtypes or {})
    add_structure(suite, spec, [column for column in spec.patterns if column not in typed_columns])
    for column in typed_columns:
        # A float parser reads "nan"; Great Expectations skips nulls in every other check.
        suite.add_expectation(expect.ExpectColumnValuesToNotBeNull(column=column))
    for column in ("userId", "movieId"):
        if column in typed_columns:
            suite.add_expectation(expect.ExpectColumnValuesToBeBetween(column=column, min_value=1, max_value=MAX_ID))
    if "timestamp" in typed_columns:
        suite.add_expectation(expect.ExpectColumnValuesToBeBetween(
            column="timestamp", min_value=MOVIELENS_FIRST_RATING_AT, max_value=now))
    if name in ("ratings", "live_ratings"):
        suite.add_expectation(expect.ExpectColumnValuesToBeInSet(column="rating", value_set=HALF_STAR_RATINGS))
        suite.add_expectation(expect.ExpectCompoundColumnsToBeUnique(column_list=["userId", "movieId"]))
    if name in ("movies", "links"):
        suite.add_expectation(expect.ExpectColumnValuesToBeUnique(column="movieId"))
    return suite


def build_reference_suite(name: str, movies: int) -> gx.ExpectationSuite:
    """Return the suite of a file's references to movies.csv (of `movies` movies), run on find_known_movies' frame;
    meta says what the gate's report names: the column and the number of movies."""
    suite = gx.ExpectationSuite(name=f"raw_{name}_reference")
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(
        column=KNOWN_MOVIE, value_set=[True], meta={"column": "movieId", "movies": movies}))
    return suite
