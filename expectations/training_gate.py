"""The training-set gate: a model trains only on a frame whose features and labels look as they must."""

from __future__ import annotations

import pandas as pd

from expectations.gate import GateError, SuiteRunner, describe_failure

# Every event has user and movie statistics (a first event sees the zero-history row); averages exist with history.
ALWAYS_PRESENT = ("user_id", "movie_id", "rated_at", "label", "user_rating_count", "movie_rating_count")
PRESENT_WITH_HISTORY = {"user_rating_count": ("user_avg_rating", "user_last_rated_at"),
                        "movie_rating_count": ("movie_avg_rating", "movie_last_rated_at")}


class TrainingSetGateError(GateError):
    """The training frame failed its suite; training must not start."""

    def __init__(self, name: str, problems: list[str]):
        super().__init__("training-set gate", name, problems, "no model was trained")


def build_training_suite(expected_rows: int, label_rate: tuple[float, float]):
    import great_expectations as gx
    from great_expectations.expectations.row_conditions import Column

    expect = gx.expectations
    suite = gx.ExpectationSuite(name="training_set")
    suite.add_expectation(expect.ExpectTableRowCountToEqual(value=expected_rows))
    for column in ALWAYS_PRESENT:
        suite.add_expectation(expect.ExpectColumnValuesToNotBeNull(column=column))
    for count_column, dependents in PRESENT_WITH_HISTORY.items():
        for column in dependents:
            suite.add_expectation(expect.ExpectColumnValuesToNotBeNull(
                column=column, row_condition=Column(count_column) > 0))
    suite.add_expectation(expect.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]))
    suite.add_expectation(expect.ExpectColumnMeanToBeBetween(column="label", min_value=label_rate[0],
                                                             max_value=label_rate[1]))
    suite.add_expectation(expect.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "movie_id"]))
    return suite


def validate_training_frame(frame: pd.DataFrame, expected_rows: int, name: str = "training set",
                            label_rate: tuple[float, float] = (0.1, 0.9)) -> None:
    """Raise TrainingSetGateError unless the frame has the events asked for, its features and sane labels."""
    missing = [column for column in (*ALWAYS_PRESENT, *sum(PRESENT_WITH_HISTORY.values(), ())) if column not in frame]
    if missing:
        raise TrainingSetGateError(name, [f"missing column(s) {missing}"])
    failures = SuiteRunner().validate("training_set", frame.reset_index(drop=True),
                                      build_training_suite(expected_rows, label_rate))
    if failures:
        raise TrainingSetGateError(name, [describe_failure(name, frame.reset_index(drop=True), failure)[0]
                                          for failure in failures])
