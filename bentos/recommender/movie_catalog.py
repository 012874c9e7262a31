"""What the service holds in memory about movies and ratings: the movie_catalog and rating_events marts, the latest
movie features from Feast's online store, and the ratings posted since start-up (`MovieCatalog`)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from eaglerec.contracts.names import MOVIE_STATE_SERVICE, POSITIVE_RATING
from eaglerec.settings import Paths

TOP_RATINGS = 10
TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


@dataclass(frozen=True)
class Rating:
    user_id: int
    movie_id: int
    rating: float
    rated_at: int


@dataclass(frozen=True)
class RatingTable:
    """Every rating of the marts as columns, indexed by user (time order) and by movie (best first).

    Columns rather than one object per rating: 25M ratings take about 0.6 GB here, where Python objects took
    over 5 GB. Rating objects are made only for the rows a request returns."""

    user_ids: np.ndarray  # rows in (user_id, rated_at, movie_id) order
    movie_ids: np.ndarray
    ratings: np.ndarray
    rated_ats: np.ndarray
    users: np.ndarray  # distinct user ids, ascending; a user's rows are user_starts[i]:user_starts[i + 1]
    user_starts: np.ndarray
    by_movie: np.ndarray  # row numbers in (movie_id, rating desc, rated_at desc, user_id) order
    movies: np.ndarray  # distinct movie ids, ascending; a movie's rows are by_movie[movie_starts[i]:...[i + 1]]
    movie_starts: np.ndarray

    @classmethod
    def from_frame(cls, events: pd.DataFrame) -> RatingTable:
        user_ids = events["user_id"].to_numpy(np.int64)
        movie_ids = events["movie_id"].to_numpy(np.int64)
        ratings = events["rating"].to_numpy(np.float64)
        rated_ats = events["rated_at"].to_numpy(np.int64)
        order = np.lexsort((movie_ids, rated_ats, user_ids))
        user_ids, movie_ids, ratings, rated_ats = user_ids[order], movie_ids[order], ratings[order], rated_ats[order]
        users, user_starts = group_starts(user_ids)
        by_movie = np.lexsort((user_ids, -rated_ats, -ratings, movie_ids))
        movies, movie_starts = group_starts(movie_ids[by_movie])
        return cls(user_ids.astype(np.int32), movie_ids.astype(np.int32), ratings.astype(np.float32), rated_ats,
                   users, user_starts, by_movie, movies, movie_starts)

    def has_user(self, user_id: int) -> bool:
        index = np.searchsorted(self.users, user_id)
        return index < len(self.users) and self.users[index] == user_id

    def user_rows(self, user_id: int) -> slice:
        index = np.searchsorted(self.users, user_id)
        if index == len(self.users) or self.users[index] != user_id:
            return slice(0, 0)
        return slice(self.user_starts[index], self.user_starts[index + 1])

    def of_user(self, user_id: int) -> list[Rating]:
        """A user's ratings, oldest first (ties in time by movie id)."""
        rows = self.user_rows(user_id)
        return self.rows(np.arange(rows.start, rows.stop))

    def movies_of_user(self, user_id: int) -> np.ndarray:
        """The movies a user rated (no Rating objects: every request asks)."""
        return self.movie_ids[self.user_rows(user_id)]

    def top_of_movie(self, movie_id: int, count: int) -> list[Rating]:
        """A movie's highest ratings, latest first among equals."""
        index = np.searchsorted(self.movies, movie_id)
        if index == len(self.movies) or self.movies[index] != movie_id:
            return []
        start = self.movie_starts[index]
        return self.rows(self.by_movie[start:min(start + count, self.movie_starts[index + 1])])

    def rows(self, rows: np.ndarray) -> list[Rating]:
        return [Rating(int(u), int(m), float(r), int(t)) for u, m, r, t in
                zip(self.user_ids[rows], self.movie_ids[rows], self.ratings[rows], self.rated_ats[rows])]


def group_starts(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys of a sorted array and where each one's run starts (plus the end)."""
    keys, starts = np.unique(sorted_keys, return_index=True)
    return keys, np.append(starts, len(sorted_keys))


@dataclass
class MovieCatalog:
    """Movies in one fixed order (`movie_ids`, ascending; every per-movie array follows it) and every rating."""

    movies: pd.DataFrame  # index movie_id: title, release_year, genres, imdb_id, tmdb_id, rating_count, ...
    movie_ids: np.ndarray
    position: dict[int, int]
    features: pd.DataFrame  # the ranker's movie-side inputs, one row per movie in catalogue order
    ratings: RatingTable
    popularity: np.ndarray  # positive ratings per movie
    genre_movies: dict[str, np.ndarray]  # genre -> positions, most popular first
    live: LiveRatings = field(default_factory=lambda: LiveRatings())

    def has_movie(self, movie_id: int) -> bool:
        return movie_id in self.position

    def has_user(self, user_id: int) -> bool:
        return self.ratings.has_user(user_id)

    @cached_property
    def summaries(self) -> list[dict]:
        """Each movie's id, title, release year and genres, in catalogue order: built once, as every answer lists
        some (pandas' per-cell access cost ~1 ms per request)."""
        years = [None if pd.isna(year) else int(year) for year in self.movies["release_year"]]
        return [{"movie_id": int(movie_id), "title": title, "release_year": year, "genres": list(genres)}
                for movie_id, title, year, genres in zip(self.movie_ids, self.movies["title"], years,
                                                         self.movies["genres"], strict=True)]

    def primary_genre(self, position: int) -> str:
        genres = self.summaries[position]["genres"]
        return genres[0] if genres else "(no genres listed)"

    def user_ratings(self, user_id: int) -> list[Rating]:
        """Every rating of a user, the marts' and the live ones (a later rating of a movie replaces an earlier one),
        oldest first."""
        ratings, live = self.ratings.of_user(user_id), self.live.of(user_id)
        return supersede(ratings, live) if live else ratings

    def rated_movie_ids(self, user_id: int, extra_movie_ids=()) -> set[int]:
        """Every movie the user rated (marts and live), with extra ones the online store knows of."""
        live = {rating.movie_id for rating in self.live.of(user_id)}
        return set(self.ratings.movies_of_user(user_id).tolist()) | live | {int(m) for m in extra_movie_ids}

    def positions_of(self, movie_ids) -> np.ndarray:
        """Catalogue positions of the movies, in the order given; movies not in the catalogue left out."""
        movie_ids = np.asarray(movie_ids, dtype=np.int64)
        positions = np.minimum(np.searchsorted(self.movie_ids, movie_ids), len(self.movie_ids) - 1)
        return positions[self.movie_ids[positions] == movie_ids]


class LiveRatings:
    """The logged ratings the marts do not hold yet (posted since the marts' watermark), by event key: adding a key
    it holds changes nothing, so a replay and a request recording the same event count it once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._keys: dict[str, Rating] = {}
        self._by_user: dict[int, list[Rating]] = {}

    def add(self, key: str, rating: Rating) -> None:
        with self._lock:
            if key not in self._keys:
                self._keys[key] = rating
                self._by_user.setdefault(rating.user_id, []).append(rating)

    def discard(self, key: str) -> None:
        """Withdraw the rating of a key (its logged line was voided), if held."""
        with self._lock:
            if (rating := self._keys.pop(key, None)) is not None:
                self._by_user[rating.user_id].remove(rating)

    def of(self, user_id: int) -> list[Rating]:
        """A user's live ratings in the order they were logged."""
        with self._lock:
            return list(self._by_user.get(user_id, ()))

    def __len__(self) -> int:
        return len(self._keys)


def supersede(ratings: list[Rating], live: list[Rating]) -> list[Rating]:
    """A user's ratings with live ones merged as the features build merges them: one rating per movie, the later one
    (the live one on a tie, the last logged among live ones); oldest first."""
    latest: dict[int, Rating] = {}
    for rating in live:
        known = latest.get(rating.movie_id)
        if known is None or rating.rated_at >= known.rated_at:
            latest[rating.movie_id] = rating
    newer_in_marts = {r.movie_id for r in ratings if r.movie_id in latest and r.rated_at > latest[r.movie_id].rated_at}
    kept = [r for r in ratings if r.movie_id not in latest or r.movie_id in newer_in_marts]
    kept += [r for movie_id, r in latest.items() if movie_id not in newer_in_marts]
    return sorted(kept, key=lambda r: (r.rated_at, r.movie_id))


def split_title(title: str) -> str:
    """'Toy Story (1995)' -> 'Toy Story', as SparrowRecSys shows it."""
    return TITLE_YEAR.sub("", title)


def read_movie_features(store, movie_ids: np.ndarray) -> pd.DataFrame:
    """The latest movie_profiles of every movie in one online read (movies never rated get their start row)."""
    rows = [{"movie_id": int(movie_id)} for movie_id in movie_ids]
    return store.get_online_features(features=store.get_feature_service(MOVIE_STATE_SERVICE), entity_rows=rows).to_df()


def load_movie_catalog(paths: Paths, store, live: LiveRatings | None = None) -> MovieCatalog:
    movies = pd.read_parquet(paths.marts / "movie_catalog.parquet").set_index("movie_id").sort_index()
    events = pd.read_parquet(paths.marts / "rating_events.parquet", columns=["user_id", "movie_id", "rating",
                                                                            "rated_at"])
    movie_ids = movies.index.to_numpy()
    position = {int(movie_id): index for index, movie_id in enumerate(movie_ids)}
    stats = events.groupby("movie_id")["rating"].agg(["size", "mean"])
    movies["rating_count"] = stats["size"].reindex(movie_ids).fillna(0).astype(int).to_numpy()
    movies["average_rating"] = stats["mean"].reindex(movie_ids).to_numpy()
    positives = events[events["rating"] >= POSITIVE_RATING]["movie_id"].value_counts()
    popularity = positives.reindex(movie_ids).fillna(0).to_numpy(dtype=float)
    ratings = RatingTable.from_frame(events)
    del events

    order = np.argsort(-popularity, kind="stable")
    genre_movies: dict[str, list[int]] = {}
    for index in order:
        for genre in movies["genres"].iat[index]:
            genre_movies.setdefault(genre, []).append(int(index))
    features = read_movie_features(store, movie_ids)
    catalog = MovieCatalog(movies, movie_ids, position, features, ratings, popularity,
                           {genre: np.array(indexes) for genre, indexes in genre_movies.items()},
                           live or LiveRatings())
    catalog.summaries  # noqa: B018 - built here, not on the first request after a reload
    return catalog


def top_ratings(catalog: MovieCatalog, movie_id: int, count: int = TOP_RATINGS) -> list[Rating]:
    """The highest ratings of a movie, latest first among equals."""
    return catalog.ratings.top_of_movie(movie_id, count)
