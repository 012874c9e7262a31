"""The raw gate: run the raw suites over an ingested dataset and stop the pipeline with a precise message."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eaglerec.contracts.names import INVALID_ROWS_POLICIES, MAX_INVALID_SHARE, RAW_GATE_RECORD
from eaglerec.files import compute_sha256
from expectations.raw_suites import (
    KNOWN_MOVIE,
    PATTERN_WORDS,
    RAW_FILE_SPECS,
    REFERENCING_FILES,
    RawFileSpec,
    build_reference_suite,
    build_text_suite,
    build_typed_suite,
    find_known_movies,
)

# Rows shown per problem in the log; every bad row is in the report's CSV.
EXAMPLE_ROWS = 3
BAD_ROWS_FILE = "bad_rows.csv"
# invalid_rows="drop": the bad rows go to this report file, the rest of the release to ACCEPTED_DIR (dbt reads
# there). The release's own files stay as ingested, so an hourly re-ingest of the same source still sees them
# unchanged; a changed source replaces the raw folder, and with it the accepted copy and the gate's record.
QUARANTINE_FILE = "quarantined_rows.csv"
ACCEPTED_DIR = "_accepted"

BAD_ROW_COLUMNS = ("file", "line", "column", "rule", "check", "value", "row")
# The header is line 1, so data row i (0-based) stands on line i + 2.
FIRST_DATA_LINE = 2


class GateError(Exception):
    """A gate stopped the pipeline: `problems` lists every failed check; the message says what did not happen."""

    def __init__(self, gate: str, subject, problems: list[str], consequence: str, advice: str = ""):
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{gate} failed for {subject} ({len(problems)} problem(s)); {consequence}:\n{listing}"
                         + (f"\n{advice}" if advice else ""))


class RawGateError(GateError):
    """The raw data failed validation; each problem names file, column, the rule in words, how many rows broke it
    and example lines; every bad row is in `bad_rows_file` when the gate was given a reports folder."""

    def __init__(self, raw_dir: Path, problems: list[str], bad_rows_file: Path | None = None, bad_rows: int = 0,
                 droppable: bool = False):
        self.bad_rows_file = bad_rows_file
        advice = []
        if bad_rows_file is not None:
            advice.append(f"Every bad row ({bad_rows:,}) with the rule it breaks: {bad_rows_file}")
        advice.append(f"What to do: correct the release (line numbers are those of the files in {raw_dir}), "
                      "then ingest it and run the features again"
                      + (", or run with invalid_rows=drop to leave these rows out." if droppable else "."))
        super().__init__("raw gate", raw_dir, problems, "nothing downstream was written", "\n".join(advice))


@dataclass(frozen=True)
class GateReport:
    raw_dir: Path
    row_counts: dict[str, int]
    checksums: dict[str, str]
    expectations_run: int
    # invalid_rows="drop": rows left out per file, the problems they had, and where they are written.
    dropped_rows: dict[str, int] | None = None
    dropped_problems: tuple[str, ...] = ()
    quarantine_file: Path | None = None


def read_text_frame(path: Path) -> pd.DataFrame:
    """Read a CSV exactly as text (no NA guessing, BOM tolerated) so every value is checked as written."""
    frame = pd.read_csv(path, dtype="string", keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas silently turns a first column without a header into the index when every row has one field more.
        raise pd.errors.ParserError(f"every row has more fields than the {len(frame.columns)} of the header (line 2: "
                                    f"{len(frame.columns) + 1} fields)")
    return frame


def find_undecodable_line(path: Path) -> tuple[int, bytes]:
    """Return the first line of a file that is not valid UTF-8, with its number."""
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return line_number, line.rstrip(b"\r\n")
    return 0, b""


def describe_read_error(path: Path, exc: Exception) -> str:
    if isinstance(exc, pd.errors.EmptyDataError):
        return f"{path.name}: the file is empty (no header, no rows)"
    if isinstance(exc, UnicodeDecodeError):
        line_number, line = find_undecodable_line(path)
        return f"{path.name}: not UTF-8 text: line {line_number}: {line!r}"
    return f"{path.name}: cannot be parsed as CSV: {exc}"


def format_value(value) -> str:
    """A value as a person reads it: numbers plainly (no numpy wrapper), text quoted as written."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, np.integer | int):
        return str(int(value))
    if isinstance(value, np.floating | float):
        return "NaN" if np.isnan(value) else repr(float(value))
    return str(value)


def describe_row(frame: pd.DataFrame, index: int) -> str:
    return ", ".join(f"{column}={format_value(frame.at[index, column])}" for column in frame.columns)


def describe_rule(config) -> str:
    """What a check asks of the values, in words."""
    kwargs = config.kwargs
    kind = config.type
    if kind == "expect_column_values_to_be_between":
        # Great Expectations hands the bounds back as floats.
        low, high = (int(bound) if float(bound).is_integer() else bound for bound in (kwargs["min_value"],
                                                                                      kwargs["max_value"]))
        if kwargs["column"] == "timestamp":  # epoch seconds
            return (f"must be between {low} ({pd.Timestamp(low, unit='s'):%Y-%m-%d}) and {high} "
                    f"({pd.Timestamp(high, unit='s'):%Y-%m-%d})")
        return f"must be between {low:,} and {high:,}"
    if kind == "expect_column_values_to_be_in_set":
        values = kwargs["value_set"]
        if kwargs["column"] == KNOWN_MOVIE:
            return f"must be a movieId of movies.csv (one of its {config.meta['movies']:,} movies)"
        return "must be one of " + ", ".join(format_value(value) for value in values)
    if kind == "expect_column_values_to_not_be_null":
        condition = kwargs.get("row_condition")
        if isinstance(condition, dict) and {"column", "operator", "parameter"} <= set(condition):
            condition = f"{condition['column'].get('name')} {condition['operator']} {condition['parameter']}"
        return "must not be empty or NaN" + (f" where {condition}" if condition else "")
    if kind == "expect_column_values_to_match_regex":
        regex = kwargs["regex"]
        optional = regex.startswith("^$|(?:")
        inner = regex[len("^$|(?:"):-1] if optional else regex
        return f"must be {'empty or ' if optional else ''}{PATTERN_WORDS.get(inner, f'text matching {inner}')}"
    if kind == "expect_compound_columns_to_be_unique":
        return f"must be unique together: one row per ({', '.join(kwargs['column_list'])})"
    if kind == "expect_column_values_to_be_unique":
        return "must be unique"
    if kind == "expect_table_row_count_to_be_between":
        return f"must hold at least {kwargs['min_value']} row"
    if kind == "expect_table_row_count_to_equal":
        return f"must hold exactly {kwargs['value']:,} rows"
    if kind == "expect_column_mean_to_be_between":
        return f"must have a mean between {kwargs['min_value']} and {kwargs['max_value']}"
    return kind


def describe_failure(file_name: str, frame: pd.DataFrame, result) -> tuple[str, list[dict]]:
    """One problem of a failed check, its first line short enough for a log viewer (file, column, the rule in words,
    how many rows and which share, the check's name), then up to EXAMPLE_ROWS example lines; and every bad row."""
    config = result.expectation_config
    kwargs = config.kwargs
    if "column" in (config.meta or {}):  # a check on a derived column reports the column it was derived from
        kwargs = {**kwargs, "column": config.meta["column"]}
    where = f"column {kwargs['column']!r}" if "column" in kwargs else (
        f"columns {kwargs['column_list']}" if "column_list" in kwargs else "table")
    outcome = result.result
    if config.type == "expect_table_columns_to_match_ordered_list":
        expected, observed = kwargs["column_list"], list(outcome.get("observed_value") or [])
        missing = [column for column in expected if column not in observed]
        extra = [column for column in observed if column not in expected]
        detail = f"header {observed}, expected {expected}"
        detail += f"; missing column(s) {missing}" if missing else ""
        detail += f"; unexpected column(s) {extra}" if extra else ""
        return f"{file_name}: {detail} [{config.type}]", []
    if "unexpected_count" not in outcome:
        return (f"{file_name}: {where} {describe_rule(config)}; observed {format_value(outcome.get('observed_value'))} "
                f"[{config.type}]"), []
    indexes = outcome.get("unexpected_index_list") or outcome.get("partial_unexpected_index_list") or []
    count, total = outcome["unexpected_count"], outcome["element_count"]
    rule = describe_rule(config)
    columns = [kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list", []))
    examples = "".join(f"\n      line {index + FIRST_DATA_LINE}: {describe_row(frame, index)}"
                       for index in indexes[:EXAMPLE_ROWS])
    more = f"\n      … {count - EXAMPLE_ROWS:,} more in the bad-row file" if count > EXAMPLE_ROWS else ""
    bad_rows = [{"file": file_name, "line": index + FIRST_DATA_LINE, "column": "+".join(columns), "rule": rule,
                 "check": config.type,
                 "value": ", ".join(format_value(frame.at[index, column]) for column in columns),
                 "row": describe_row(frame, index)} for index in indexes]
    share = f"{100 * count / total:.3g} %" if total else "all"
    return f"{file_name}: {where} {rule}: {count:,} of {total:,} rows ({share}) [{config.type}]{examples}{more}", \
        bad_rows


def write_bad_rows(bad_rows: list[dict], reports_dir: Path, file_name: str = BAD_ROWS_FILE) -> Path:
    """Every bad row, sorted by file and line, one line per (row, rule) it breaks."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / file_name
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=BAD_ROW_COLUMNS)
        writer.writeheader()
        writer.writerows(sorted(bad_rows, key=lambda row: (row["file"], row["line"], row["rule"])))
    return path


class SuiteRunner:
    """Runs expectation suites on pandas frames with one ephemeral Great Expectations context."""

    def __init__(self):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("raw")
        self.batches = {}

    def validate(self, name: str, frame: pd.DataFrame, suite) -> list:
        """Return the failed expectation results of suite on frame."""
        if name not in self.batches:
            asset = self.source.add_dataframe_asset(name=name)
            self.batches[name] = asset.add_batch_definition_whole_dataframe("whole")
        batch = self.batches[name].get_batch(batch_parameters={"dataframe": frame})
        result_format = {"result_format": "COMPLETE", "partial_unexpected_count": EXAMPLE_ROWS}
        outcome = batch.validate(suite, result_format=result_format)
        return [result for result in outcome.results if not result.success]


def read_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        return next(csv.reader(handle), [])


def read_typed_frame(path: Path, spec: RawFileSpec) -> pd.DataFrame | None:
    """Parse a raw file with the types its columns must have; None when it does not parse cleanly as such."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if read_header(path) != list(spec.columns):
        return None
    types = {column: pa.from_numpy_dtype(np.dtype(spec.dtypes.get(column, "object")))
             if column in (spec.dtypes or {}) else pa.string() for column in spec.columns}
    convert = pacsv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                   quoted_strings_can_be_null=False)
    try:
        table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True),
                               convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    # A UTF-8 byte order mark stays in the first name here; the text path reads such a file correctly.
    return table.to_pandas() if table.column_names == list(spec.columns) else None


def parse_typed(spec: RawFileSpec, frame: pd.DataFrame) -> pd.DataFrame:
    typed = frame.copy()
    for column, dtype in (spec.dtypes or {}).items():
        typed[column] = pd.to_numeric(frame[column]).astype(dtype)
    return typed


def write_accepted_copy(path: Path, dest: Path, dropped: set[int]) -> None:
    """Copy a raw CSV without the data rows whose 0-based indexes are in dropped (blank lines skipped, as the
    frame readers skip them, so index i is the frame's row i)."""
    with path.open(newline="", encoding="utf-8-sig") as source, dest.open("w", newline="", encoding="utf-8") as out:
        reader, writer = csv.reader(source), csv.writer(out, lineterminator="\n")
        writer.writerow(next(reader))
        index = 0
        for record in reader:
            if not record:
                continue
            if index not in dropped:
                writer.writerow(record)
            index += 1


def write_accepted_dir(raw_dir: Path, present: list[str], dropped: dict[str, set[int]]) -> Path:
    """raw_dir/_accepted: every validated file, without its dropped rows (files with none are hard links)."""
    import os

    accepted = raw_dir / ACCEPTED_DIR
    accepted.mkdir()
    for file_name in present:
        if dropped.get(file_name):
            write_accepted_copy(raw_dir / file_name, accepted / file_name, dropped[file_name])
        else:
            os.link(raw_dir / file_name, accepted / file_name)
    return accepted


def validate_raw_dataset(raw_dir: Path, now: int | None = None, reports_dir: Path | None = None,
                         invalid_rows: str = "stop", max_invalid_share: float = MAX_INVALID_SHARE) -> GateReport:
    """Validate every raw file of a dataset; on success record the gate result, else raise RawGateError (and write
    every bad row to reports_dir/bad_rows.csv when given one).

    invalid_rows="drop": rows that break a row rule (a range, a pattern, uniqueness, a reference) are left out
    instead, into reports_dir/quarantined_rows.csv with their reasons, and the rest is written to raw_dir/_accepted
    for dbt; file-level problems (header, unreadable, empty) and more than max_invalid_share of a file's rows still
    stop the gate."""
    import shutil

    if invalid_rows not in INVALID_ROWS_POLICIES:
        raise ValueError(f"invalid_rows {invalid_rows!r}: expected one of {', '.join(INVALID_ROWS_POLICIES)}")
    raw_dir = Path(raw_dir)
    gate_file = raw_dir / RAW_GATE_RECORD
    # A stale pass must never outlive a new failure, nor a stale bad-row file or accepted copy a new run.
    gate_file.unlink(missing_ok=True)
    shutil.rmtree(raw_dir / ACCEPTED_DIR, ignore_errors=True)
    if reports_dir is not None:
        for name in (BAD_ROWS_FILE, QUARANTINE_FILE):
            (Path(reports_dir) / name).unlink(missing_ok=True)
    now = int(time.time()) if now is None else now
    gate = SuiteRunner()
    problems, bad_rows, typed, expectations_run = [], [], {}, 0
    # invalid_rows="drop": the 0-based rows left out per file, the problems they had, the rows read per file.
    dropped, dropped_problems, dropped_rows, totals = {}, [], [], {}
    droppable = True

    def stop() -> RawGateError:
        written = write_bad_rows(bad_rows, reports_dir) if reports_dir is not None and bad_rows else None
        return RawGateError(raw_dir, problems, written, len({(row["file"], row["line"]) for row in bad_rows}),
                            droppable=invalid_rows == "stop" and droppable)

    def judge(batch: str, name: str, frame: pd.DataFrame, suite, checked: pd.DataFrame | None = None) -> bool:
        """Run a suite on checked (default: frame, the rows as read); record its failures as problems, or as drops
        when they are row-level and dropping is on. Return True when no failure is left that stops the gate."""
        nonlocal droppable, expectations_run
        expectations_run += len(suite.expectations)
        file_name = RAW_FILE_SPECS[name].file_name
        clean = True
        for failure in gate.validate(batch, frame if checked is None else checked, suite):
            problem, rows = describe_failure(file_name, frame, failure)
            if invalid_rows == "drop" and rows:
                dropped_problems.append(problem)
                dropped_rows.extend(rows)
                dropped.setdefault(file_name, set()).update(row["line"] - FIRST_DATA_LINE for row in rows)
                continue
            droppable = droppable and bool(rows)
            problems.append(problem)
            bad_rows.extend(rows)
            clean = False
        return clean

    for name, spec in RAW_FILE_SPECS.items():
        path = raw_dir / spec.file_name
        if not path.is_file():
            if spec.optional_file:
                continue
            problems.append(f"{spec.file_name}: missing from {raw_dir}")
            droppable = False
            continue
        frame = read_typed_frame(path, spec)
        if frame is not None:
            typed[name], totals[spec.file_name] = frame, len(frame)
            continue
        try:
            frame = read_text_frame(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
            problems.append(describe_read_error(path, exc))
            droppable = False
            continue
        totals[spec.file_name] = len(frame)
        if judge(name, name, frame, build_text_suite(spec)):
            kept = frame.drop(index=sorted(dropped.get(spec.file_name, ())))
            typed[name] = parse_typed(spec, kept)
    if problems:
        raise stop()

    # Movies first: with dropping on, the other files' references are checked against the movies kept.
    for name in sorted(typed, key=lambda name: name != "movies"):
        movie_ids = typed["movies"]["movieId"].unique()
        judge(f"{name}_typed", name, typed[name], build_typed_suite(name, now))
        if name in REFERENCING_FILES:
            judge(f"{name}_reference", name, typed[name], build_reference_suite(name, len(movie_ids)),
                  find_known_movies(typed[name], movie_ids))
        if name == "movies" and dropped.get("movies.csv"):
            typed["movies"] = typed["movies"].drop(index=sorted(dropped["movies.csv"] & set(typed["movies"].index)))
    for file_name, rows in dropped.items():
        if len(rows) > max_invalid_share * totals[file_name]:
            problems.append(f"{file_name}: {len(rows):,} of {totals[file_name]:,} rows "
                            f"({100 * len(rows) / totals[file_name]:.3g} %) break a rule, more than the "
                            f"{100 * max_invalid_share:g} % invalid_rows=drop may leave out")
            problems.extend(dropped_problems)
            bad_rows.extend(dropped_rows)
            dropped_problems.clear()
            dropped_rows.clear()
            break
    if problems:
        raise stop()

    quarantine = None
    if dropped:
        accepted = write_accepted_dir(raw_dir, [RAW_FILE_SPECS[name].file_name for name in typed], dropped)
        quarantine = write_bad_rows(dropped_rows, Path(reports_dir) if reports_dir is not None else accepted,
                                    QUARANTINE_FILE)
    counts = {file_name: len(rows) for file_name, rows in dropped.items()}
    report = GateReport(
        raw_dir=raw_dir,
        row_counts={name: totals[RAW_FILE_SPECS[name].file_name] - counts.get(RAW_FILE_SPECS[name].file_name, 0)
                    for name in typed},
        checksums={spec.file_name: compute_sha256(raw_dir / spec.file_name) for name, spec in RAW_FILE_SPECS.items()
                   if name in typed},
        expectations_run=expectations_run,
        dropped_rows=counts,
        dropped_problems=tuple(dropped_problems),
        quarantine_file=quarantine,
    )
    gate_file.write_text(json.dumps({
        "status": "passed", "validated_at": now, "row_counts": report.row_counts,
        "checksums": report.checksums, "expectations_run": expectations_run, "invalid_rows": invalid_rows,
        "dropped_rows": counts, **({"accepted_dir": ACCEPTED_DIR} if dropped else {}),
    }, indent=2))
    return report
