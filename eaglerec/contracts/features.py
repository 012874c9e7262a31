"""The rankers' inputs as data: every builder, the encoder, the service and the contract test read this one list.

The columns are Feast feature service `ranker_v1` (user_profiles + movie_profiles) plus the two entity ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from eaglerec.contracts.names import LIKED_MOVIE_COUNT

LABEL = "label"


@dataclass(frozen=True)
class Feature:
    name: str
    # movie and user ids index their own vocabularies; genres share one; numerics are standardised.
    kind: Literal["user", "movie", "genre", "numeric"]


USER_ID = Feature("user_id", "user")
MOVIE_ID = Feature("movie_id", "movie")
# The user's last liked movies, most recent first (SparrowRecSys's userRatedMovie1-5).
LIKED_MOVIES = tuple(Feature(f"user_liked_movie_{rank}", "movie") for rank in range(1, LIKED_MOVIE_COUNT + 1))
MOVIE_GENRES = tuple(Feature(f"movie_genre_{rank}", "genre") for rank in range(1, 4))
USER_GENRES = tuple(Feature(f"user_genre_{rank}", "genre") for rank in range(1, 6))
MOVIE_NUMERIC = tuple(Feature(name, "numeric") for name in (
    "release_year", "movie_rating_count", "movie_avg_rating", "movie_rating_stddev"))
USER_NUMERIC = tuple(Feature(name, "numeric") for name in (
    "user_rating_count", "user_avg_rating", "user_rating_stddev", "user_avg_release_year", "user_release_year_stddev"))
NUMERIC = (*MOVIE_NUMERIC, *USER_NUMERIC)
FEATURES = (USER_ID, MOVIE_ID, *LIKED_MOVIES, *MOVIE_GENRES, *USER_GENRES, *NUMERIC)
# Serving reads the two sides apart: the user's once per request (Feast online), every movie's once at start-up.
USER_FEATURES = (USER_ID, *LIKED_MOVIES, *USER_GENRES, *USER_NUMERIC)
MOVIE_FEATURES = (MOVIE_ID, *MOVIE_GENRES, *MOVIE_NUMERIC)
# Counts span four orders of magnitude: the model sees log1p of them.
LOG_SCALED = ("movie_rating_count", "user_rating_count")
