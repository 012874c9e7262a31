"""The raw gate on real files: the bundled data passes; each kind of bad input stops with a precise message."""

import csv
import json
import time

import pytest

from eaglerec.contracts.names import RAW_GATE_RECORD
from eaglerec.features import UngatedReleaseError, build_features, require_passed_gate
from eaglerec.settings import Paths
from expectations.gate import RawGateError, validate_raw_dataset
from tests.conftest import TINY_MOVIES, TINY_RATINGS, write_tiny_release

pytestmark = pytest.mark.integration

FUTURE = int(time.time()) + 86_400


def replace_line(text: str, line_number: int, new_line: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[line_number - 1] = new_line + "\n"
    return "".join(lines)


def test_the_bundled_data_passes_and_the_pass_is_recorded(tmp_path):
    from eaglerec.settings import BUNDLED_DATASET_DIR
    from tests.conftest import copy_release

    raw_dir = copy_release(BUNDLED_DATASET_DIR, tmp_path / "ml-latest-small")
    report = validate_raw_dataset(raw_dir)

    assert report.row_counts == {"ratings": 100_836, "movies": 9_742, "links": 9_742, "tags": 3_683}
    recorded = json.loads((raw_dir / RAW_GATE_RECORD).read_text())
    assert recorded["status"] == "passed"
    assert require_passed_gate(raw_dir)["checksums"] == report.checksums


BAD_INPUTS = {
    # case: (file overrides, file, expectation, column, line numbers that must be named)
    "missing column": (
        {"ratings": "".join(line.rsplit(",", 1)[0] + "\n" for line in TINY_RATINGS.splitlines())},
        "ratings.csv", "expect_table_columns_to_match_ordered_list", "missing column(s) ['timestamp']", []),
    "extra column": (
        {"movies": TINY_MOVIES.replace("movieId,title,genres", "movieId,title,genres,year")},
        "movies.csv", "expect_table_columns_to_match_ordered_list", "unexpected column(s) ['year']", []),
    "non-numeric rating": (
        {"ratings": replace_line(TINY_RATINGS, 4, "1,3,four,964983000")},
        "ratings.csv", "expect_column_values_to_match_regex", "column 'rating'", [4]),
    "rating 7": (
        {"ratings": replace_line(TINY_RATINGS, 5, "2,1,7,1445714994")},
        "ratings.csv", "expect_column_values_to_be_in_set", "column 'rating'", [5]),
    "rating between half steps": (
        {"ratings": replace_line(TINY_RATINGS, 5, "2,1,4.25,1445714994")},
        "ratings.csv", "expect_column_values_to_be_in_set", "column 'rating'", [5]),
    "negative user id": (
        {"ratings": replace_line(TINY_RATINGS, 2, "-1,1,4.0,964982703")},
        "ratings.csv", "expect_column_values_to_be_between", "column 'userId'", [2]),
    "id too large for an integer": (
        {"links": "movieId,imdbId,tmdbId\n1,0114709,862\n12345678901,0113497,8844\n"},
        "links.csv", "expect_column_values_to_be_between", "column 'movieId'", [3]),
    "rating nan": (
        {"ratings": replace_line(TINY_RATINGS, 3, "1,2,nan,964982703")},
        "ratings.csv", "expect_column_values_to_not_be_null", "column 'rating'", [3]),
    "empty rating": (
        {"ratings": replace_line(TINY_RATINGS, 3, "1,2,,964982703")},
        "ratings.csv", "expect_column_values_to_match_regex", "column 'rating'", [3]),
    "duplicate (user, movie)": (
        {"ratings": TINY_RATINGS + "1,2,5.0,964990000\n"},
        "ratings.csv", "expect_compound_columns_to_be_unique", "columns ['userId', 'movieId']", [3, 8]),
    "duplicate movie id": (
        {"movies": TINY_MOVIES + "4,Another (2001),Drama\n"},
        "movies.csv", "expect_column_values_to_be_unique", "column 'movieId'", [5, 6]),
    "rating for a movie not in movies.csv": (
        {"ratings": replace_line(TINY_RATINGS, 7, "3,99,3.0,1537799250")},
        "ratings.csv", "expect_column_values_to_be_in_set", "column 'movieId'", [7]),
    "timestamp in the future": (
        {"ratings": replace_line(TINY_RATINGS, 6, f"2,4,0.5,{FUTURE}")},
        "ratings.csv", "expect_column_values_to_be_between", "column 'timestamp'", [6]),
    "timestamp before MovieLens": (
        {"tags": "userId,movieId,tag,timestamp\n2,1,pixar,86400\n"},
        "tags.csv", "expect_column_values_to_be_between", "column 'timestamp'", [2]),
    "header only": (
        {"ratings": "userId,movieId,rating,timestamp\n"},
        "ratings.csv", "expect_table_row_count_to_be_between", "table", []),
    "truncated last line": (
        {"ratings": TINY_RATINGS + "3,4,4."},
        "ratings.csv", "expect_column_values_to_match_regex", "column 'rating'", [8]),
    "blank title": (
        {"movies": replace_line(TINY_MOVIES, 3, "2,  ,Comedy")},
        "movies.csv", "expect_column_values_to_match_regex", "column 'title'", [3]),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_stops_at_the_gate_naming_file_expectation_column_and_lines(case, tmp_path):
    overrides, file_name, expectation, where, lines = BAD_INPUTS[case]
    raw_dir = write_tiny_release(tmp_path / "tiny", **overrides)

    with pytest.raises(RawGateError) as failure:
        validate_raw_dataset(raw_dir)

    problem = next((p for p in failure.value.problems if p.startswith(file_name) and expectation in p), None)
    assert problem, f"no {expectation} problem for {file_name} in: {failure.value.problems}"
    assert where in problem
    for line in lines:
        assert f"line {line}:" in problem
    assert not (raw_dir / RAW_GATE_RECORD).exists()


UNREADABLE = {
    "empty file": ({"ratings": ""}, "ratings.csv: the file is empty"),
    "broken quoting": ({"movies": TINY_MOVIES + '5,"Unclosed (2001),Drama\n'}, "movies.csv: cannot be parsed as CSV"),
    "too many fields": ({"links": "movieId,imdbId,tmdbId\n1,0114709,862,7\n"}, "links.csv: cannot be parsed as CSV"),
    "not UTF-8": ({"movies": TINY_MOVIES.encode() + "5,Am\xe9lie (2001),Romance\n".encode("latin-1")},
                  r"movies.csv: not UTF-8 text: line 6: b'5,Am\\xe9lie \(2001\),Romance'"),
}


@pytest.mark.parametrize("case", UNREADABLE)
def test_unreadable_files_stop_at_the_gate_with_the_reason(case, tmp_path):
    overrides, message = UNREADABLE[case]
    raw_dir = write_tiny_release(tmp_path / "tiny", **overrides)
    with pytest.raises(RawGateError, match=message):
        validate_raw_dataset(raw_dir)


def test_crlf_line_ends_and_a_utf8_bom_are_accepted(tmp_path):
    crlf = {name: text.replace("\n", "\r\n") for name, text in {"ratings": TINY_RATINGS, "movies": TINY_MOVIES}.items()}
    raw_dir = write_tiny_release(tmp_path / "tiny", ratings=b"\xef\xbb\xbf" + crlf["ratings"].encode(),
                                 movies=crlf["movies"])
    report = validate_raw_dataset(raw_dir)
    assert report.row_counts["ratings"] == 6


def test_every_problem_is_reported_at_once(tmp_path):
    raw_dir = write_tiny_release(tmp_path / "tiny", ratings=replace_line(TINY_RATINGS, 4, "1,3,x,964983000"),
                                 links="movieId,imdbId\n1,0114709\n")
    with pytest.raises(RawGateError) as failure:
        validate_raw_dataset(raw_dir)
    assert {p.split(":")[0] for p in failure.value.problems} == {"ratings.csv", "links.csv"}


def test_a_failed_gate_stops_the_feature_build_and_leaves_the_marts_as_they_were(tmp_path):
    paths = Paths(tmp_path / "home")
    raw_dir = write_tiny_release(paths.raw / "tiny", ratings=replace_line(TINY_RATINGS, 5, "2,1,7,1445714994"))
    paths.marts.mkdir(parents=True)
    sentinel = paths.marts / "user_profiles.parquet"
    sentinel.write_bytes(b"the marts of the last good build")

    with pytest.raises(RawGateError):
        validate_raw_dataset(raw_dir)
    with pytest.raises(UngatedReleaseError, match="no passed raw gate recorded"):
        build_features("tiny", paths=paths)
    assert sentinel.read_bytes() == b"the marts of the last good build"
    assert not paths.warehouse.exists()


def test_files_changed_after_the_gate_must_pass_it_again(tmp_path):
    raw_dir = write_tiny_release(tmp_path / "tiny")
    validate_raw_dataset(raw_dir)
    (raw_dir / "ratings.csv").write_text(TINY_RATINGS + "3,4,9,1537799260\n")
    with pytest.raises(UngatedReleaseError, match="ratings.csv: changed since it was validated"):
        require_passed_gate(raw_dir)


def test_the_report_says_each_rule_in_words_with_counts_and_writes_every_bad_row(tmp_path):
    """The issue's case: timestamps of 0 and a duplicate (user, movie) pair. Each problem's first line names file,
    column, the rule with its bounds, the count and share; values print plainly; every bad row is in the CSV; the
    last line says what to do."""
    bad = TINY_RATINGS + "4,1,4.0,0\n4,2,3.0,0\n4,3,2.5,0\n1,2,5.0,964990000\n"
    raw_dir = write_tiny_release(tmp_path / "tiny", ratings=bad)
    reports = tmp_path / "reports"
    with pytest.raises(RawGateError) as failure:
        validate_raw_dataset(raw_dir, reports_dir=reports)
    message = str(failure.value)
    timestamp = next(p for p in failure.value.problems if "'timestamp'" in p)
    first_line = timestamp.splitlines()[0]
    assert first_line.startswith("ratings.csv: column 'timestamp' must be between 788918400 (1995-01-01) and ")
    assert "3 of 10 rows (30 %)" in first_line and len(first_line) <= 170
    assert "line 8: userId=4, movieId=1, rating=4.0, timestamp=0" in timestamp
    duplicate = next(p for p in failure.value.problems if "unique" in p)
    assert "must be unique together: one row per (userId, movieId): 2 of 10 rows (20 %)" in duplicate
    assert "np." not in message and "int64" not in message
    assert message.splitlines()[-1].startswith("What to do: correct the release")
    assert f"Every bad row (5) with the rule it breaks: {reports / 'bad_rows.csv'}" in message

    with (reports / "bad_rows.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["line"], row["column"]) for row in rows] == [
        ("3", "userId+movieId"), ("8", "timestamp"), ("9", "timestamp"), ("10", "timestamp"), ("11", "userId+movieId")]
    assert rows[1]["value"] == "0" and rows[1]["rule"].startswith("must be between 788918400")
    assert rows[0]["row"] == "userId=1, movieId=2, rating=3.5, timestamp=964982703"

    # Corrected, the release passes and the stale bad-row file is gone.
    write_tiny_release(raw_dir)
    validate_raw_dataset(raw_dir, reports_dir=reports)
    assert not (reports / "bad_rows.csv").exists()


def test_drop_leaves_the_bad_rows_out_into_a_quarantine_file_and_the_release_untouched(tmp_path):
    """invalid_rows=drop on the issue's case plus a text error and a movie with a blank title: the rows that break
    a rule go to quarantined_rows.csv with their reasons; the ratings, link and tag of the dropped movie go too (they
    would point at nothing); the raw files stay as ingested; dbt reads the accepted copy."""
    bad = TINY_RATINGS + "4,1,4.0,0\n1,2,5.0,964990000\n3,3,4.x,1537799260\n"
    movies = replace_line(TINY_MOVIES, 5, "4,  ,Crime|Drama")  # movie 4, rated on line 6 of ratings.csv
    paths = Paths(tmp_path / "home")
    raw_dir = write_tiny_release(paths.raw / "tiny", ratings=bad, movies=movies)
    originals = {path.name: path.read_bytes() for path in raw_dir.iterdir()}
    reports = tmp_path / "reports"

    report = validate_raw_dataset(raw_dir, reports_dir=reports, invalid_rows="drop", max_invalid_share=0.6)

    # Hand count: ratings lines 3 and 9 (a duplicate pair), 8 (timestamp 0), 10 (rating '4.x'), 6 (movie 4); movie 4
    # on line 5 of movies.csv, and its link (line 5) and tag (line 3).
    assert report.dropped_rows == {"ratings.csv": 5, "movies.csv": 1, "links.csv": 1, "tags.csv": 1}
    assert report.row_counts == {"ratings": 4, "movies": 3, "links": 3, "tags": 1}
    with report.quarantine_file.open(newline="") as handle:
        quarantined = {(row["file"], int(row["line"]), row["check"]) for row in csv.DictReader(handle)}
    assert {(file, line) for file, line, _ in quarantined} == {
        ("ratings.csv", 3), ("ratings.csv", 9), ("ratings.csv", 8), ("ratings.csv", 10), ("ratings.csv", 6),
        ("movies.csv", 5), ("links.csv", 5), ("tags.csv", 3)}
    assert ("ratings.csv", 6, "expect_column_values_to_be_in_set") in quarantined
    assert {path.name: path.read_bytes() for path in raw_dir.iterdir() if path.is_file() and
            path.name != RAW_GATE_RECORD} == originals
    accepted = raw_dir / "_accepted"
    assert (accepted / "ratings.csv").read_text() == (
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,2.0,964983000\n2,1,5.0,1445714994\n"
        "3,2,3.0,1537799250\n")
    assert (accepted / "tags.csv").read_text() == "userId,movieId,tag,timestamp\n2,1,pixar,1445714996\n"
    recorded = json.loads((raw_dir / RAW_GATE_RECORD).read_text())
    assert recorded["invalid_rows"] == "drop" and recorded["dropped_rows"] == report.dropped_rows

    build_features("tiny", paths=paths)
    import pandas as pd

    events = pd.read_parquet(paths.marts / "rating_events.parquet")
    assert sorted(zip(events["user_id"], events["movie_id"])) == [(1, 1), (1, 3), (2, 1), (3, 2)]
    assert json.loads((paths.marts / "_build.json").read_text())["dropped_rows"] == report.dropped_rows

    # Validated again without dropping, the same release stops, and the accepted copy is gone.
    with pytest.raises(RawGateError, match="or run with invalid_rows=drop to leave these rows out"):
        validate_raw_dataset(raw_dir, reports_dir=reports)
    assert not accepted.exists() and not (reports / "quarantined_rows.csv").exists()


def test_drop_stops_past_the_cap_and_on_file_level_problems(tmp_path):
    from eaglerec.settings import BUNDLED_DATASET_DIR
    from tests.conftest import copy_release

    raw_dir = copy_release(BUNDLED_DATASET_DIR, tmp_path / "ml-latest-small")
    lines = (raw_dir / "ratings.csv").read_text().splitlines(keepends=True)
    # 1,009 of 100,836 rows (1.0006 %) with timestamp 0: just over the 1 % default cap.
    for number in range(1, 1010):
        user, movie, rating, _ = lines[number].rstrip("\n").split(",")
        lines[number] = f"{user},{movie},{rating},0\n"
    (raw_dir / "ratings.csv").write_text("".join(lines))
    with pytest.raises(RawGateError, match=r"ratings\.csv: 1,009 of 100,836 rows \(1 %\) break a rule, more than "
                                           r"the 1 % invalid_rows=drop may leave out"):
        validate_raw_dataset(raw_dir, invalid_rows="drop")
    # 1,008 rows (0.9996 %) are under it.
    lines[1009] = BUNDLED_DATASET_DIR.joinpath("ratings.csv").read_text().splitlines(keepends=True)[1009]
    (raw_dir / "ratings.csv").write_text("".join(lines))
    assert validate_raw_dataset(raw_dir, invalid_rows="drop").dropped_rows == {"ratings.csv": 1_008}

    tiny = write_tiny_release(tmp_path / "tiny", links="movieId,imdbId\n1,0114709\n")
    with pytest.raises(RawGateError, match="links.csv: header") as failure:
        validate_raw_dataset(tiny, invalid_rows="drop", max_invalid_share=0.5)
    assert "invalid_rows=drop" not in str(failure.value)
