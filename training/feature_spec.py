"""The rankers' inputs as data: every builder, the encoder and the contract test read this one list.

The columns are Feast feature service `ranker_v1` (user_profiles + movie_profiles) plus the two entity ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FEATURE_SERVICE = "ranker_v1"
LABEL = "label"
HISTORY_LENGTH = 5


@dataclass(frozen=True)
class Feature:
    name: str
    # movie and user ids index their own vocabularies; genres share one; numerics are standardised.
    kind: Literal["user", "movie", "genre", "numeric"]


USER_ID = Feature("user_id", "user")
MOVIE_ID = Feature("movie_id", "movie")
HISTORY = tuple(Feature(f"user_rated_movie_{rank}", "movie") for rank in range(1, HISTORY_LENGTH + 1))
MOVIE_GENRES = tuple(Feature(f"movie_genre_{rank}", "genre") for rank in range(1, 4))
USER_GENRES = tuple(Feature(f"user_genre_{rank}", "genre") for rank in range(1, 6))
MOVIE_NUMERIC = tuple(Feature(name, "numeric") for name in (
    "release_year", "movie_rating_count", "movie_avg_rating", "movie_rating_stddev"))
USER_NUMERIC = tuple(Feature(name, "numeric") for name in (
    "user_rating_count", "user_avg_rating", "user_rating_stddev", "user_avg_release_year", "user_release_year_stddev"))
NUMERIC = (*MOVIE_NUMERIC, *USER_NUMERIC)
FEATURES = (USER_ID, MOVIE_ID, *HISTORY, *MOVIE_GENRES, *USER_GENRES, *NUMERIC)
# Serving reads the two sides apart: the user's once per request (Feast online), every movie's once at start-up.
USER_FEATURES = (USER_ID, *HISTORY, *USER_GENRES, *USER_NUMERIC)
MOVIE_FEATURES = (MOVIE_ID, *MOVIE_GENRES, *MOVIE_NUMERIC)
# Counts span four orders of magnitude: the model sees log1p of them.
LOG_SCALED = ("movie_rating_count", "user_rating_count")
