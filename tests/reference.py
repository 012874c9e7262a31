"""Reference computations for tests: the features recomputed from the raw CSVs in plain pandas, one event at a time."""

import math
import re

import pandas as pd

HISTORY = 100
POSITIVE = 3.5
# rating_examples is flat: these list features of user_profiles are there as columns <prefix>1 .. <prefix>5.
FLATTENED_LISTS = {"user_liked_movie_ids": "user_liked_movie_", "user_genres": "user_genre_"}


def index_movies(movies: pd.DataFrame) -> pd.DataFrame:
    """movies.csv indexed by movieId, with the year parsed from the title and the genre list."""
    movies = movies.copy()
    movies["year"] = [int(m.group(1)) if (m := re.search(r"\((\d{4})\)\s*$", t)) else None for t in movies.title]
    movies["genre_list"] = movies.genres.str.split("|")
    return movies.set_index("movieId")


def expected_user_features(ratings: pd.DataFrame, movies: pd.DataFrame, user_id: int, at: int) -> dict:
    """The SparrowRecSys user features, recomputed from raw ratings strictly before `at`."""
    history = ratings[(ratings.userId == user_id) & (ratings.timestamp < at)].sort_values(["timestamp", "movieId"])
    window = history.tail(HISTORY)
    years = movies.loc[window.movieId, "year"].dropna().astype(float)
    positives = window[window.rating >= POSITIVE].iloc[::-1]
    genre_counts = {}
    for movie_id in positives.movieId:
        for genre in movies.at[movie_id, "genre_list"]:
            genre_counts[genre] = genre_counts.get(genre, 0) + 1
    top_genres = [g for g, _ in sorted(genre_counts.items(), key=lambda item: (-item[1], item[0]))][:5]
    return {
        "user_rating_count": len(window),
        "user_avg_rating": window.rating.mean() if len(window) else None,
        "user_rating_stddev": window.rating.std(ddof=1) if len(window) > 1 else None,
        "user_avg_release_year": years.mean() if len(years) else None,
        "user_release_year_stddev": years.std(ddof=1) if len(years) > 1 else None,
        "user_liked_movie_ids": positives.movieId.head(5).tolist(),
        "user_genres": top_genres,
    }


def expected_movie_features(ratings: pd.DataFrame, movies: pd.DataFrame, movie_id: int, at: int) -> dict:
    before = ratings[(ratings.movieId == movie_id) & (ratings.timestamp < at)]
    genres = movies.at[movie_id, "genre_list"] + [None, None]
    year = movies.at[movie_id, "year"]
    return {
        "movie_rating_count": len(before),
        "movie_avg_rating": before.rating.mean() if len(before) else None,
        "movie_rating_stddev": before.rating.std(ddof=1) if len(before) > 1 else None,
        "release_year": None if year is None or pd.isna(year) else int(year),
        "movie_genre_1": genres[0], "movie_genre_2": genres[1], "movie_genre_3": genres[2],
    }


def same(actual, expected) -> bool:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return actual is None or (isinstance(actual, float) and math.isnan(actual)) or actual is pd.NA
    if isinstance(expected, list):
        return list(actual) == expected
    if isinstance(expected, float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
    return actual == expected


def unflatten(row: pd.Series, name: str) -> list:
    """A list feature rebuilt from its flat rating_examples columns (nulls pad lists shorter than 5)."""
    return [value for value in row[[f"{FLATTENED_LISTS[name]}{rank}" for rank in range(1, 6)]] if not pd.isna(value)]
