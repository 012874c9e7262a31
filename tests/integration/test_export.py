"""The SparrowRecSys export: its 27 columns in its order, its conventions for missing values."""

import pandas as pd
import pytest

from eaglerec.export import SPARROWRECSYS_COLUMNS, ExportError, export_sparrowrecsys
from eaglerec.settings import Paths

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The header of SparrowRecSys's trainingSamples.csv, written out here independently of the exporter's mapping.
SPARROWRECSYS_HEADER = (
    "movieId,userId,rating,timestamp,label,releaseYear,movieGenre1,movieGenre2,movieGenre3,movieRatingCount,"
    "movieAvgRating,movieRatingStddev,userRatedMovie1,userRatedMovie2,userRatedMovie3,userRatedMovie4,"
    "userRatedMovie5,userRatingCount,userAvgReleaseYear,userReleaseYearStddev,userAvgRating,userRatingStddev,"
    "userGenre1,userGenre2,userGenre3,userGenre4,userGenre5"
)


def test_export_writes_the_27_columns_split_like_sparrowrecsys(built_paths, tmp_path):
    written = export_sparrowrecsys(built_paths, tmp_path / "export")
    training = pd.read_csv(tmp_path / "export" / "trainingSamples.csv", keep_default_na=False)
    test = pd.read_csv(tmp_path / "export" / "testSamples.csv", keep_default_na=False)
    examples = pd.read_parquet(built_paths.marts / "rating_examples.parquet")

    assert (tmp_path / "export" / "trainingSamples.csv").read_text().splitlines()[0] == SPARROWRECSYS_HEADER
    assert len(SPARROWRECSYS_COLUMNS) == 27
    assert len(training) == (examples.split != "test").sum()
    assert len(test) == (examples.split == "test").sum()
    assert sorted(written.values()) == sorted([len(training), len(test)])

    row = training.set_index(["userId", "movieId"]).loc[(1, 1136)]
    source = examples.set_index(["user_id", "movie_id"]).loc[(1, 1136)]
    assert row.rating == source.rating and row.timestamp == source.rated_at
    assert row.userRatedMovie1 == source.user_liked_movie_1
    assert row.userGenre1 == source.user_genre_1
    assert row.movieAvgRating == pytest.approx(source.movie_avg_rating)
    # A user's first event has no history: SparrowRecSys's models read 0 and "" there, never an empty number.
    first = training.sort_values("timestamp").iloc[0]
    assert first.userRatingCount == 0 and first.userRatedMovie1 == 0 and first.userGenre1 == ""


def test_export_without_marts_says_what_to_run(tmp_path):
    with pytest.raises(ExportError, match="run `eaglerec build-features` first"):
        export_sparrowrecsys(Paths(tmp_path / "empty"))
