"""Export rating_examples in SparrowRecSys's 27-column sample format, to compare with that project's scripts."""

from __future__ import annotations

from pathlib import Path

from eaglerec.files import write_then_rename
from eaglerec.settings import Paths

# SparrowRecSys column -> EagleRec column (rating_examples), in SparrowRecSys's order.
SPARROWRECSYS_COLUMNS = {
    "movieId": "movie_id",
    "userId": "user_id",
    "rating": "rating",
    "timestamp": "rated_at",
    "label": "label",
    "releaseYear": "release_year",
    "movieGenre1": "movie_genre_1",
    "movieGenre2": "movie_genre_2",
    "movieGenre3": "movie_genre_3",
    "movieRatingCount": "movie_rating_count",
    "movieAvgRating": "movie_avg_rating",
    "movieRatingStddev": "movie_rating_stddev",
    "userRatedMovie1": "user_liked_movie_1",
    "userRatedMovie2": "user_liked_movie_2",
    "userRatedMovie3": "user_liked_movie_3",
    "userRatedMovie4": "user_liked_movie_4",
    "userRatedMovie5": "user_liked_movie_5",
    "userRatingCount": "user_rating_count",
    "userAvgReleaseYear": "user_avg_release_year",
    "userReleaseYearStddev": "user_release_year_stddev",
    "userAvgRating": "user_avg_rating",
    "userRatingStddev": "user_rating_stddev",
    "userGenre1": "user_genre_1",
    "userGenre2": "user_genre_2",
    "userGenre3": "user_genre_3",
    "userGenre4": "user_genre_4",
    "userGenre5": "user_genre_5",
}
# SparrowRecSys's samples had no empty cells: its models read 0 for a missing id or number and "" for a genre.
GENRE_COLUMNS = {name for name in SPARROWRECSYS_COLUMNS.values() if "genre" in name}
# SparrowRecSys put train and validation in its training file (it had no validation split).
SPLIT_FILES = {"trainingSamples.csv": ("train", "validation"), "testSamples.csv": ("test",)}


class ExportError(Exception):
    """The marts needed for the export are missing."""


def select_sparrowrecsys_columns() -> str:
    """Return the SQL select list mapping rating_examples to SparrowRecSys's columns and conventions."""
    items = []
    for sparrow, eagle in SPARROWRECSYS_COLUMNS.items():
        default = "''" if eagle in GENRE_COLUMNS else "0"
        items.append(f'coalesce({eagle}, {default}) as "{sparrow}"')
    return ",\n    ".join(items)


def export_sparrowrecsys(paths: Paths, out: str | Path | None = None) -> dict[Path, int]:
    """Write trainingSamples.csv and testSamples.csv; return each path with its row count."""
    import duckdb

    examples = paths.marts / "rating_examples.parquet"
    if not examples.exists():
        raise ExportError(f"{examples} is missing: run `eaglerec build-features` first")
    out_dir = Path(out) if out else paths.exports / "sparrowrecsys"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    # Only code constants go into the SQL text; the input file and splits are parameters, the output path is
    # handed to write_csv (a user's --out never becomes SQL).
    query = ("select " + select_sparrowrecsys_columns() + " from read_parquet(?) "
             "where split in (select unnest(?)) order by rated_at, user_id, movie_id")
    with duckdb.connect() as con:
        for file_name, splits in SPLIT_FILES.items():
            path = out_dir / file_name
            # A cursor of its own: DuckDB keeps a parameterised relation's result open on its connection.
            with write_then_rename(path) as partial, con.cursor() as cursor:
                cursor.sql(query, params=[str(examples), list(splits)]).write_csv(str(partial), header=True, sep=",")
            written[path] = con.execute("select count(*) from read_csv(?)", [str(path)]).fetchone()[0]
    return written
