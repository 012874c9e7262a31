"""The training-set gate on a real Feast training frame: it passes as built, and stops each kind of fault."""

import numpy as np
import pandas as pd
import pytest

from expectations.training_gate import TrainingSetGateError, validate_training_frame

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 1490


@pytest.fixture(scope="module")
def training_frame(built_paths) -> pd.DataFrame:
    from eaglerec.feature_store import apply_feature_repo, load_training_frame, open_feature_store

    apply_feature_repo(built_paths)
    events = pd.read_parquet(built_paths.marts / "rating_events.parquet")
    # Users' first events have no history (so no averages): the gate must accept them.
    first_events = events.sort_values(["rated_at", "movie_id"]).groupby("user_id").head(1).head(20)
    events = pd.concat([events.sample(1480, random_state=11), first_events]).drop_duplicates(["user_id", "movie_id"])
    events = events.sample(EVENTS, random_state=1, replace=False) if len(events) > EVENTS else events
    return load_training_frame(events, open_feature_store(built_paths))


def test_the_training_frame_as_built_passes(training_frame):
    assert len(training_frame) == EVENTS and (training_frame.user_rating_count == 0).sum() >= 10
    validate_training_frame(training_frame, expected_rows=EVENTS)


def with_nulls(frame: pd.DataFrame, column: str, where) -> pd.DataFrame:
    broken = frame.copy()
    broken[column] = broken[column].astype("float64")
    broken.loc[where(broken), column] = np.nan
    return broken


FAULTS = {
    "rows lost in the join": (lambda f: f.iloc[:-10], "expect_table_row_count_to_equal"),
    "a count that must exist is null": (
        lambda f: with_nulls(f, "movie_rating_count", lambda b: b.index < 3), "column 'movie_rating_count'"),
    "an average missing despite history": (
        lambda f: with_nulls(f, "user_avg_rating", lambda b: b.user_rating_count > 50), "column 'user_avg_rating'"),
    "every label 0": (lambda f: f.assign(label=0), "expect_column_mean_to_be_between"),
    "a label that is not 0/1": (lambda f: f.assign(label=np.where(f.index == f.index[0], 2, f.label)),
                                "expect_column_values_to_be_in_set"),
    "duplicated events": (lambda f: pd.concat([f.iloc[:-5], f.iloc[:5]]), "expect_compound_columns_to_be_unique"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_stops_training_with_a_named_problem(fault, training_frame):
    corrupt, expected_text = FAULTS[fault]
    with pytest.raises(TrainingSetGateError) as failure:
        validate_training_frame(corrupt(training_frame), expected_rows=EVENTS)
    assert any(expected_text in problem for problem in failure.value.problems), failure.value.problems
