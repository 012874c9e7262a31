"""What the service holds in memory about movies and ratings: the movie_catalog and rating_events marts, the latest
movie features from Feast's online store, and the ratings posted since start-up."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from eaglerec.settings import Paths
from training.feature_spec import MOVIE_FEATURES

POSITIVE_RATING = 3.5
TOP_RATINGS = 10
TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


@dataclass(frozen=True)
class Rating:
    user_id: int
    movie_id: int
    rating: float
    rated_at: int


@dataclass
class Catalogue:
    """Movies in one fixed order (`movie_ids`; every per-movie array follows it) and the ratings by user and movie."""

    movies: pd.DataFrame  # index movie_id: title, release_year, genres, imdb_id, tmdb_id, rating_count, ...
    movie_ids: np.ndarray
    position: dict[int, int]
    features: pd.DataFrame  # the ranker's movie-side inputs, one row per movie in catalogue order
    ratings_by_user: dict[int, list[Rating]]
    ratings_by_movie: dict[int, list[Rating]]
    popularity: np.ndarray  # positive ratings per movie
    genre_movies: dict[str, np.ndarray]  # genre -> positions, most popular first
    live: LiveRatings = field(default_factory=lambda: LiveRatings())

    def has_movie(self, movie_id: int) -> bool:
        return movie_id in self.position

    def primary_genre(self, position: int) -> str:
        genres = self.movies["genres"].iat[position]
        return genres[0] if len(genres) else "(no genres listed)"

    def user_ratings(self, user_id: int) -> list[Rating]:
        """Every rating of a user, the marts' and the live ones, oldest first."""
        return [*self.ratings_by_user.get(user_id, []), *self.live.of(user_id)]

    def rated_positions(self, user_id: int, extra_movie_ids=()) -> np.ndarray:
        movie_ids = {rating.movie_id for rating in self.user_ratings(user_id)} | set(extra_movie_ids)
        return np.array([self.position[m] for m in movie_ids if m in self.position], dtype=np.int64)


class LiveRatings:
    """Ratings posted to the service since it started (they are in the online store, not yet in the marts)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_user: dict[int, list[Rating]] = {}

    def add(self, rating: Rating) -> None:
        with self._lock:
            self._by_user.setdefault(rating.user_id, []).append(rating)

    def of(self, user_id: int) -> list[Rating]:
        with self._lock:
            return list(self._by_user.get(user_id, ()))


def split_title(title: str) -> str:
    """'Toy Story (1995)' -> 'Toy Story', as SparrowRecSys shows it."""
    return TITLE_YEAR.sub("", title)


def read_movie_features(store, movie_ids: np.ndarray) -> pd.DataFrame:
    """The latest movie_profiles of every movie in one online read (movies never rated get their start row)."""
    names = [f"movie_profiles:{feature.name}" for feature in MOVIE_FEATURES if feature.name != "movie_id"]
    rows = [{"movie_id": int(movie_id)} for movie_id in movie_ids]
    return store.get_online_features(features=names, entity_rows=rows).to_df()


def load_catalogue(paths: Paths, store, live: LiveRatings | None = None) -> Catalogue:
    movies = pd.read_parquet(paths.marts / "movie_catalog.parquet").set_index("movie_id").sort_index()
    events = pd.read_parquet(paths.marts / "rating_events.parquet", columns=["user_id", "movie_id", "rating",
                                                                            "rated_at"])
    events = events.sort_values(["rated_at", "movie_id"], kind="stable")
    movie_ids = movies.index.to_numpy()
    position = {int(movie_id): index for index, movie_id in enumerate(movie_ids)}
    stats = events.groupby("movie_id")["rating"].agg(["size", "mean"])
    movies["rating_count"] = stats["size"].reindex(movie_ids).fillna(0).astype(int).to_numpy()
    movies["average_rating"] = stats["mean"].reindex(movie_ids).to_numpy()
    positives = events[events["rating"] >= POSITIVE_RATING]["movie_id"].value_counts()
    popularity = positives.reindex(movie_ids).fillna(0).to_numpy(dtype=float)

    ratings = [Rating(int(u), int(m), float(r), int(t)) for u, m, r, t in events.itertuples(index=False)]
    by_user: dict[int, list[Rating]] = {}
    by_movie: dict[int, list[Rating]] = {}
    for rating in ratings:
        by_user.setdefault(rating.user_id, []).append(rating)
        by_movie.setdefault(rating.movie_id, []).append(rating)

    order = np.argsort(-popularity, kind="stable")
    genre_movies: dict[str, list[int]] = {}
    for index in order:
        for genre in movies["genres"].iat[index]:
            genre_movies.setdefault(genre, []).append(int(index))
    features = read_movie_features(store, movie_ids)
    return Catalogue(movies, movie_ids, position, features, by_user, by_movie, popularity,
                     {genre: np.array(indexes) for genre, indexes in genre_movies.items()}, live or LiveRatings())


def top_ratings(catalogue: Catalogue, movie_id: int, count: int = TOP_RATINGS) -> list[Rating]:
    """The highest ratings of a movie, latest first among equals."""
    return sorted(catalogue.ratings_by_movie.get(movie_id, []), key=lambda r: (-r.rating, -r.rated_at))[:count]
