"""The raw gate: run the raw suites over an ingested dataset and stop the pipeline with a precise message."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eaglerec.contracts.names import RAW_GATE_RECORD
from eaglerec.files import compute_sha256
from expectations.raw_suites import RAW_FILE_SPECS, RawFileSpec, build_text_suite, build_typed_suite

EXAMPLE_ROWS = 5
# The header is line 1, so data row i (0-based) stands on line i + 2.
FIRST_DATA_LINE = 2


class GateError(Exception):
    """A gate stopped the pipeline: `problems` lists every failed check; the message says what did not happen."""

    def __init__(self, gate: str, subject, problems: list[str], consequence: str):
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{gate} failed for {subject} ({len(problems)} problem(s)); {consequence}:\n{listing}")


class RawGateError(GateError):
    """The raw data failed validation; each problem names file, expectation, column and example rows."""

    def __init__(self, raw_dir: Path, problems: list[str]):
        super().__init__("raw gate", raw_dir, problems, "nothing downstream was written")


@dataclass(frozen=True)
class GateReport:
    raw_dir: Path
    row_counts: dict[str, int]
    checksums: dict[str, str]
    expectations_run: int


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


def describe_rows(frame: pd.DataFrame, indexes: list[int]) -> str:
    rows = []
    for index in indexes[:EXAMPLE_ROWS]:
        values = ", ".join(f"{column}={frame.at[index, column]!r}" for column in frame.columns)
        rows.append(f"line {index + FIRST_DATA_LINE}: {values}")
    return "; ".join(rows)


def describe_failure(file_name: str, text_frame: pd.DataFrame, result) -> str:
    """Return one line naming file, expectation, column and example rows of a failed expectation."""
    config = result.expectation_config
    kwargs = config.kwargs
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
    elif "unexpected_count" in outcome:
        examples = describe_rows(text_frame, outcome.get("partial_unexpected_index_list") or [])
        detail = f"{outcome['unexpected_count']} of {outcome['element_count']} rows unexpected; e.g. {examples}"
    else:
        expected = {key: value for key, value in kwargs.items() if key not in ("batch_id",)}
        detail = f"observed {outcome.get('observed_value')!r}, expected {expected}"
    return f"{file_name}: {config.type} on {where}: {detail}"


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
        result_format = {"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLE_ROWS}
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


def validate_raw_dataset(raw_dir: Path, now: int | None = None) -> GateReport:
    """Validate every raw file of a dataset; on success record the gate result, else raise RawGateError."""
    raw_dir = Path(raw_dir)
    gate_file = raw_dir / RAW_GATE_RECORD
    # A stale pass must never outlive a new failure.
    gate_file.unlink(missing_ok=True)
    now = int(time.time()) if now is None else now
    gate = SuiteRunner()
    problems, typed, expectations_run = [], {}, 0
    for name, spec in RAW_FILE_SPECS.items():
        path = raw_dir / spec.file_name
        if not path.is_file():
            if spec.optional_file:
                continue
            problems.append(f"{spec.file_name}: missing from {raw_dir}")
            continue
        frame = read_typed_frame(path, spec)
        if frame is not None:
            typed[name] = frame
            continue
        try:
            frame = read_text_frame(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
            problems.append(describe_read_error(path, exc))
            continue
        suite = build_text_suite(spec)
        expectations_run += len(suite.expectations)
        failures = gate.validate(name, frame, suite)
        problems += [describe_failure(spec.file_name, frame, failure) for failure in failures]
        if not failures:
            typed[name] = parse_typed(spec, frame)
    if problems:
        raise RawGateError(raw_dir, problems)

    movie_ids = typed["movies"]["movieId"].unique().tolist()
    for name, frame in typed.items():
        suite = build_typed_suite(name, movie_ids, now)
        expectations_run += len(suite.expectations)
        failures = gate.validate(f"{name}_typed", frame, suite)
        file_name = RAW_FILE_SPECS[name].file_name
        problems += [describe_failure(file_name, frame, failure) for failure in failures]
    if problems:
        raise RawGateError(raw_dir, problems)

    report = GateReport(
        raw_dir=raw_dir,
        row_counts={name: len(frame) for name, frame in typed.items()},
        checksums={spec.file_name: compute_sha256(raw_dir / spec.file_name) for name, spec in RAW_FILE_SPECS.items()
                   if name in typed},
        expectations_run=expectations_run,
    )
    gate_file.write_text(json.dumps({
        "status": "passed", "validated_at": now, "row_counts": report.row_counts,
        "checksums": report.checksums, "expectations_run": expectations_run,
    }, indent=2))
    return report
