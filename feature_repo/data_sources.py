"""One source per dbt mart, named like it; push sources for the near-line path."""

import os
from pathlib import Path

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

# Where the marts live: $EAGLEREC_HOME (the same default as the eaglerec package: ./var).
STATE_DIR = Path(os.environ.get("EAGLEREC_HOME", Path(__file__).resolve().parent.parent / "var"))
MARTS_DIR = STATE_DIR / "marts"


def parquet_source(folder: Path, name: str, timestamp_field: str) -> FileSource:
    return FileSource(name=name, path=str(folder / f"{name}.parquet"), file_format=ParquetFormat(),
                      timestamp_field=timestamp_field)


user_profiles_source = parquet_source(MARTS_DIR, "user_profiles", "valid_from_timestamp")
movie_profiles_source = parquet_source(MARTS_DIR, "movie_profiles", "valid_from_timestamp")
user_recent_activity_source = parquet_source(MARTS_DIR, "user_recent_activity", "valid_from_timestamp")

# A rating event updates these two views online at once, without waiting for a batch run.
user_profiles_push_source = PushSource(name="user_profiles_push", batch_source=user_profiles_source)
user_recent_activity_push_source = PushSource(name="user_recent_activity_push",
                                              batch_source=user_recent_activity_source)
