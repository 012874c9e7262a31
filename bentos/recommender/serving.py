"""The request path without BentoML (so it is testable in-process): one online read of the user's state, candidates
from several retrievers, already-rated movies dropped, one batched ranker call, light diversity, reasons."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from bentos.recommender.catalogue import (
    POSITIVE_RATING,
    Catalogue,
    LiveRatings,
    Rating,
    load_catalogue,
    split_title,
    top_ratings,
)
from bentos.recommender.models import CHALLENGER, CHAMPION, ModelSet, load_model_set
from eaglerec.feature_store import OnlineReader, load_movie_facts, open_feature_store, push_rating_event
from eaglerec.near_line import fold_rating, profile_from_activity
from eaglerec.settings import Paths
from training.feature_spec import USER_FEATURES

LOGGER = logging.getLogger(__name__)
USER_STATE_SERVICE = "user_state_v1"
# Candidates per retriever; all of them together are capped at CANDIDATE_LIMIT before ranking.
USER_NEIGHBOURS, ITEM_NEIGHBOURS, GENRE_POPULAR, FRESH = 500, 80, 150, 100
LIKED_SEEDS = 5
FRESH_YEARS = 3
CANDIDATE_LIMIT = 800
GENRE_SORTS = ("rating", "year", "popularity")
# At least this many ratings for a movie to rank by its average (a 5.0 from one rating says little).
MIN_RATINGS_TO_RANK = 10
EARLIEST_RATING_AT = 789_652_800  # 1995-01-10, the first MovieLens rating


class InvalidRequestError(ValueError):
    """Bad input: answered 400 with this message."""


class NotFoundError(LookupError):
    """An unknown id: answered 404 with this message."""


class UnavailableError(RuntimeError):
    """A dependency is down and the request cannot be served without it: answered 503 with this message."""


@dataclass(frozen=True)
class ServingConfig:
    """Where things are and how the service behaves; from the environment (listed in .env.example)."""

    paths: Paths
    tracking_uri: str
    max_k: int
    max_per_genre: int
    challenger_share: float
    experiment: str
    admin_token: str | None

    @classmethod
    def from_env(cls) -> ServingConfig:
        share = float(os.environ.get("EAGLEREC_AB_CHALLENGER_SHARE", "0.1"))
        if not 0 <= share <= 1:
            raise ValueError(f"EAGLEREC_AB_CHALLENGER_SHARE={share}: expected a share between 0 and 1")
        return cls(Paths.from_env(), os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
                   int(os.environ.get("EAGLEREC_MAX_K", "100")), int(os.environ.get("EAGLEREC_MAX_PER_GENRE", "3")),
                   share, os.environ.get("EAGLEREC_AB_EXPERIMENT", "ranker-ab"),
                   os.environ.get("EAGLEREC_ADMIN_TOKEN") or None)


def assign_variant(user_id: int, experiment: str, challenger_share: float) -> str:
    """A stable bucket in [0, 1) from SHA-256 of experiment and user: the same user always gets the same variant."""
    digest = hashlib.sha256(f"{experiment}:{user_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64
    return CHALLENGER if bucket < challenger_share else CHAMPION


@dataclass(frozen=True)
class Snapshot:
    """Everything a request reads, swapped as one reference on reload."""

    catalogue: Catalogue
    models: ModelSet
    loaded_at: float


# MLflow's client retries a refused connection with exponential back-off for minutes by default: a reload while
# MLflow is down would outlive the request timeout. Fail within seconds instead (unless configured otherwise).
MLFLOW_CLIENT_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


class RecommendationEngine:
    def __init__(self, config: ServingConfig | None = None):
        for name, value in MLFLOW_CLIENT_LIMITS.items():
            os.environ.setdefault(name, value)
        self.config = config or ServingConfig.from_env()
        self.store = open_feature_store(self.config.paths)
        self.user_state = OnlineReader(self.store, USER_STATE_SERVICE)
        self.live = LiveRatings()
        self.movie_facts = load_movie_facts(self.config.paths)
        self._reload_lock = threading.Lock()
        # False while the online store does not answer: requests are then served from memory and flagged degraded.
        self.online_store_ok = True
        self.snapshot = self.load_snapshot()

    def load_snapshot(self) -> Snapshot:
        catalogue = load_catalogue(self.config.paths, self.store, self.live)
        return Snapshot(catalogue, load_model_set(catalogue, self.config.tracking_uri), time.time())

    def reload(self) -> dict:
        """Load the current champions and tables, then swap them in at once; requests in flight keep the old ones.
        If anything fails to load (MLflow down, a model missing), the service keeps what it serves."""
        with self._reload_lock:
            before = self.snapshot.models.describe()
            try:
                snapshot = self.load_snapshot()
            except Exception as exc:
                LOGGER.exception("reload failed; the current models stay")
                raise UnavailableError(f"reload failed ({type(exc).__name__}: {exc}); still serving {before}") from exc
            self.snapshot = snapshot
            return {"before": before, "after": self.snapshot.models.describe()}

    # --- reads -------------------------------------------------------------------------------------------------

    def read_user_state(self, user_id: int) -> dict:
        """The user's profile, recent activity and vector: one online read (service user_state_v1). If the online
        store fails, the same features recomputed from the ratings in memory (marts and events since start-up), as
        the near-line path computes them, and the service is marked degraded until a read succeeds again."""
        try:
            state = self.user_state.read(user_id)
        except Exception:
            if self.online_store_ok:  # log the outage once, not per request
                LOGGER.exception("online store unavailable: serving user state recomputed from memory (degraded)")
            self.online_store_ok = False
            return self.recompute_user_state(user_id)
        self.online_store_ok = True
        return state

    def recompute_user_state(self, user_id: int) -> dict:
        activity = {"recent_rated_ats": [], "recent_movie_ids": [], "recent_ratings": []}
        for rating in self.snapshot.catalogue.user_ratings(user_id):
            activity = fold_rating(activity, rating.movie_id, rating.rating, rating.rated_at)
        if not activity["recent_movie_ids"]:
            return {}
        return {**activity, **profile_from_activity(activity, self.movie_facts)}

    def check_online_store(self) -> bool:
        """Probe the online store with one read; update and return the flag."""
        try:
            self.user_state.read(1)
            self.online_store_ok = True
        except Exception:
            self.online_store_ok = False
        return self.online_store_ok

    def status(self) -> dict:
        """What /readyz reports: ready (models loaded) and whether requests are degraded."""
        online = self.check_online_store()
        return {"ready": True, "degraded": not online, "online_store": "ok" if online else "unavailable",
                "models": self.snapshot.models.describe()}

    def movie_summary(self, snapshot: Snapshot, position: int) -> dict:
        movies = snapshot.catalogue.movies
        return {"movie_id": int(snapshot.catalogue.movie_ids[position]), "title": movies["title"].iat[position],
                "release_year": none_if_nan(movies["release_year"].iat[position], int),
                "genres": list(movies["genres"].iat[position])}

    def position_of(self, snapshot: Snapshot, movie_id: int) -> int:
        if not snapshot.catalogue.has_movie(movie_id):
            raise NotFoundError(f"movie_id {movie_id}: not in movie_catalog")
        return snapshot.catalogue.position[movie_id]

    def check_k(self, k: int) -> int:
        if not 1 <= k <= self.config.max_k:
            raise InvalidRequestError(f"k={k}: expected 1 to {self.config.max_k}")
        return k

    # --- recommend ---------------------------------------------------------------------------------------------

    def recommend(self, user_id: int, k: int = 10, variant: str | None = None, explain: bool = True,
                  model: str | None = None) -> dict:
        """Top k movies for a user; `model` picks a ranker by kind (SparrowRecSys) or "emb" for the retriever only."""
        self.check_k(k)
        snapshot = self.snapshot
        rankers = snapshot.models.rankers
        if variant is not None and variant not in rankers:
            raise InvalidRequestError(f"variant {variant!r}: expected one of {sorted(rankers)}")
        if model is not None and model != "emb" and model not in snapshot.models.extra_rankers:
            raise InvalidRequestError(f"ranker {model!r}: expected one of {sorted(snapshot.models.extra_rankers)}")
        variant = variant or assign_variant(user_id, self.config.experiment, self.config.challenger_share)
        variant = variant if variant in rankers else CHAMPION
        state = self.read_user_state(user_id)
        recent = list(state.get("recent_movie_ids") or [])
        catalogue = snapshot.catalogue
        known = state.get("user_rating_count") is not None or bool(recent) or catalogue.has_user(user_id)
        if not known:
            items = self.cold_start(snapshot, k)
            return {"user_id": user_id, "variant": variant, "cold_start": True, "ranker": None, "candidates": 0,
                    "degraded": not self.online_store_ok, "items": items}

        rated = catalogue.rated_positions(user_id, recent)
        if model == "emb":
            positions, scores, sources = self.retrieve_by_embedding(snapshot, user_id, state, rated)
            ranker_label = snapshot.models.retriever.label
        else:
            candidates = self.retrieve(snapshot, user_id, state, rated)
            positions, sources = candidates.positions, candidates.sources
            ranker = snapshot.models.extra_rankers[model] if model else rankers[variant]
            user_inputs = ranker.encoder.encode_row({**state, "user_id": user_id}, USER_FEATURES)
            ranker_label, scores = ranker.label, ranker.score(user_inputs, positions)
        chosen = diversify(catalogue, positions, scores, k, self.config.max_per_genre)
        items = []
        for index in chosen:
            item = {**self.movie_summary(snapshot, positions[index]), "score": float(scores[index]),
                    "retriever": sources[index][0]}
            if explain:
                item["reason"] = sources[index][1]
            items.append(item)
        return {"user_id": user_id, "variant": variant, "cold_start": False, "ranker": ranker_label,
                "candidates": len(positions), "degraded": not self.online_store_ok, "items": items}

    def retrieve_by_embedding(self, snapshot: Snapshot, user_id: int, state: dict, rated: np.ndarray):
        """SparrowRecSys's `model=emb`: every unrated movie by similarity to the user's vector (or, for a user new to
        the retriever, to the mean of their recently liked movies), plus the retriever's popularity prior."""
        catalogue, retriever = snapshot.catalogue, snapshot.models.retriever
        vector = retriever.user_vectors.get(user_id)
        if vector is None:
            liked = [catalogue.position[m] for m in self.liked_movie_ids(state) if m in catalogue.position]
            vector = (retriever.movie_vectors[liked].mean(axis=0) if liked
                      else np.zeros(retriever.movie_vectors.shape[1], dtype=np.float32))
        scores = (retriever.movie_vectors @ vector + retriever.prior).astype(float)
        scores[rated] = -np.inf
        positions = top_positions(scores, CANDIDATE_LIMIT)
        return positions, scores[positions], [("embedding_user", "matches your taste")] * len(positions)

    @staticmethod
    def liked_movie_ids(state: dict) -> list[int]:
        """The user's most recent positively rated movies, latest first."""
        return [movie for movie, rating in zip(state.get("recent_movie_ids") or [], state.get("recent_ratings") or [],
                                               strict=False) if rating >= POSITIVE_RATING][:LIKED_SEEDS]

    def retrieve(self, snapshot: Snapshot, user_id: int, state: dict, rated: np.ndarray) -> Candidates:
        """Merge candidates from the user's vector, the vectors of recently liked movies, their genres' popular
        movies and the newest releases, rated movies left out; the first retriever to propose a movie explains it."""
        catalogue, retriever = snapshot.catalogue, snapshot.models.retriever
        merged = Candidates(rated)
        user_vector = retriever.user_vectors.get(user_id)
        if user_vector is not None:
            scores = retriever.movie_vectors @ user_vector + retriever.prior
            merged.add(top_positions(scores, USER_NEIGHBOURS), scores, "embedding_user", lambda _: "matches your taste")
        for movie_id in self.liked_movie_ids(state):
            if movie_id in catalogue.position and retriever.has_vector[catalogue.position[movie_id]]:
                seed = catalogue.position[movie_id]
                scores = retriever.movie_vectors @ retriever.movie_vectors[seed] + retriever.prior
                scores[seed] = -np.inf
                title = catalogue.movies["title"].iat[seed]
                merged.add(top_positions(scores, ITEM_NEIGHBOURS), scores, "embedding_item",
                           lambda _, title=title: f"because you liked {title}")
        popularity = catalogue.popularity
        for genre in [g for g in (state.get("user_genres") or []) if g in catalogue.genre_movies][:3]:
            positions = catalogue.genre_movies[genre][:GENRE_POPULAR]
            merged.add(positions, popularity, "genre_popular", lambda _, genre=genre: f"popular in {genre}")
        years = catalogue.movies["release_year"].to_numpy()
        newest = np.nanmax(years)
        fresh = np.flatnonzero(years >= newest - FRESH_YEARS + 1)
        fresh = fresh[np.argsort(-popularity[fresh], kind="stable")][:FRESH]
        merged.add(fresh, popularity, "fresh", lambda position: f"new in {int(years[position])}")
        return merged.limit(CANDIDATE_LIMIT)

    def cold_start(self, snapshot: Snapshot, k: int) -> list[dict]:
        """Popular movies, at most max_per_genre of one primary genre."""
        catalogue = snapshot.catalogue
        order = np.argsort(-catalogue.popularity, kind="stable")[: max(50 * k, 500)]
        chosen = diversify(catalogue, order, catalogue.popularity[order], k, self.config.max_per_genre)
        return [{**self.movie_summary(snapshot, order[i]), "score": float(catalogue.popularity[order[i]]),
                 "retriever": "popularity", "reason": f"popular in {catalogue.primary_genre(order[i])}"}
                for i in chosen]

    # --- similar, movies, users, genres --------------------------------------------------------------------

    def similar(self, movie_id: int, k: int = 10, use_embeddings: bool = True) -> dict:
        """Embedding neighbours of a movie; movies sharing the most genres (then popularity) when it has no vector
        or when asked to."""
        self.check_k(k)
        snapshot = self.snapshot
        position = self.position_of(snapshot, movie_id)
        catalogue, retriever = snapshot.catalogue, snapshot.models.retriever
        if use_embeddings and retriever.has_vector[position]:
            scores, method = retriever.movie_vectors @ retriever.movie_vectors[position], "embedding"
            scores = np.where(retriever.has_vector, scores, -np.inf)
        else:
            genres = set(catalogue.movies["genres"].iat[position])
            overlap = np.array([len(genres & set(g)) / max(len(genres | set(g)), 1)
                                for g in catalogue.movies["genres"]])
            scores, method = overlap + 1e-3 * np.log1p(catalogue.popularity), "genre"
        scores = scores.astype(float)
        scores[position] = -np.inf
        top = top_positions(scores, k)
        return {"movie_id": movie_id, "method": method,
                "items": [{**self.movie_summary(snapshot, p), "score": float(scores[p])} for p in top]}

    def movie(self, movie_id: int) -> dict:
        snapshot = self.snapshot
        position = self.position_of(snapshot, movie_id)
        movies = snapshot.catalogue.movies
        return {**self.movie_summary(snapshot, position),
                "imdb_id": movies["imdb_id"].iat[position],
                "tmdb_id": none_if_nan(movies["tmdb_id"].iat[position], int),
                "rating_count": int(movies["rating_count"].iat[position]),
                "average_rating": none_if_nan(movies["average_rating"].iat[position], float),
                "top_ratings": [rating_dict(r) for r in top_ratings(snapshot.catalogue, movie_id)]}

    def user(self, user_id: int, history: int = 50) -> dict:
        snapshot = self.snapshot
        ratings = snapshot.catalogue.user_ratings(user_id)
        state = self.read_user_state(user_id)
        if not ratings and state.get("user_rating_count") is None:
            raise NotFoundError(f"user_id {user_id}: no ratings and no online state")
        scores = [r.rating for r in ratings]
        genre_counts: dict[str, int] = {}
        for rating in ratings:
            if rating.rating >= POSITIVE_RATING and rating.movie_id in snapshot.catalogue.position:
                for genre in snapshot.catalogue.movies["genres"].iat[snapshot.catalogue.position[rating.movie_id]]:
                    genre_counts[genre] = genre_counts.get(genre, 0) + 1
        return {"user_id": user_id, "rating_count": len(ratings),
                "average_rating": float(np.mean(scores)) if scores else None,
                "highest_rating": max(scores, default=None), "lowest_rating": min(scores, default=None),
                "favourite_genres": [g for g, _ in sorted(genre_counts.items(), key=lambda x: (-x[1], x[0]))[:5]],
                "variant": assign_variant(user_id, self.config.experiment, self.config.challenger_share),
                "history": [{**rating_dict(r), "title": snapshot.catalogue.movies["title"].iat[
                    snapshot.catalogue.position[r.movie_id]]} for r in reversed(ratings[-history:])
                    if r.movie_id in snapshot.catalogue.position]}

    def genre(self, genre: str, sort: str = "popularity", k: int = 10) -> dict:
        self.check_k(k)
        if sort not in GENRE_SORTS:
            raise InvalidRequestError(f"sort={sort!r}: expected one of {', '.join(GENRE_SORTS)}")
        snapshot = self.snapshot
        catalogue = snapshot.catalogue
        if genre not in catalogue.genre_movies:
            raise NotFoundError(f"genre {genre!r}: expected one of {', '.join(sorted(catalogue.genre_movies))}")
        positions = catalogue.genre_movies[genre]  # most popular first
        movies = catalogue.movies
        if sort == "rating":
            counts = movies["rating_count"].to_numpy()[positions]
            enough = positions[counts >= MIN_RATINGS_TO_RANK]
            positions = enough if len(enough) >= k else positions
            averages = np.nan_to_num(movies["average_rating"].to_numpy()[positions], nan=0.0)
            positions = positions[np.argsort(-averages, kind="stable")]
        elif sort == "year":
            years = np.nan_to_num(movies["release_year"].to_numpy()[positions], nan=0.0)
            positions = positions[np.argsort(-years, kind="stable")]
        return {"genre": genre, "sort": sort, "items": [
            {**self.movie_summary(snapshot, p), "rating_count": int(movies["rating_count"].iat[p]),
             "average_rating": none_if_nan(movies["average_rating"].iat[p], float)} for p in positions[:k]]}

    def search(self, query: str, k: int = 20) -> dict:
        """Movies whose title contains every word of the query (case-insensitive); titles starting with the query
        first, then the most liked."""
        self.check_k(k)
        words = query.casefold().split()
        if not words:
            raise InvalidRequestError("q: expected at least one word")
        snapshot = self.snapshot
        titles = snapshot.catalogue.movies["title"].str.casefold()
        matches = np.ones(len(titles), dtype=bool)
        for word in words:
            matches &= titles.str.contains(word, regex=False).to_numpy()
        positions = np.flatnonzero(matches)
        starts = titles.to_numpy()[positions].astype(str)
        prefix = np.char.startswith(starts, " ".join(words))
        order = np.lexsort((-snapshot.catalogue.popularity[positions], ~prefix))
        return {"query": query, "total": int(len(positions)),
                "items": [self.movie_summary(snapshot, positions[i]) for i in order[:k]]}

    def list_genres(self) -> dict:
        """Every genre with its number of movies, most movies first."""
        genres = self.snapshot.catalogue.genre_movies
        return {"genres": [{"genre": genre, "movies": int(len(positions))} for genre, positions in
                           sorted(genres.items(), key=lambda item: (-len(item[1]), item[0]))]}

    # --- events ------------------------------------------------------------------------------------------------

    def record_event(self, user_id: int, movie_id: int, rating: float, rated_at: int | None = None) -> dict:
        """Validate a rating and push it to the online store: the very next recommend call sees it."""
        now = int(time.time())
        rated_at = now if rated_at is None else rated_at
        if user_id < 1:
            raise InvalidRequestError(f"user_id {user_id}: expected a positive integer")
        if not self.snapshot.catalogue.has_movie(movie_id):
            raise NotFoundError(f"movie_id {movie_id}: not in movie_catalog")
        if not (0.5 <= rating <= 5.0 and (rating * 2).is_integer()):
            raise InvalidRequestError(f"rating {rating}: expected 0.5 to 5.0 in half stars")
        if not EARLIEST_RATING_AT <= rated_at <= now + 60:
            raise InvalidRequestError(f"rated_at {rated_at}: expected epoch seconds between 1995 and now")
        try:
            profile = push_rating_event(self.store, self.movie_facts, user_id, movie_id, rating, rated_at)
        except Exception as exc:
            LOGGER.exception("rating event for user %s not recorded", user_id)
            self.online_store_ok = False
            raise UnavailableError(f"online store unavailable ({type(exc).__name__}): the rating was not recorded, "
                                   "send it again later") from exc
        self.online_store_ok = True
        self.live.add(Rating(user_id, movie_id, float(rating), rated_at))
        return {"accepted": True, "user_id": user_id, "movie_id": movie_id, "rating": rating, "rated_at": rated_at,
                "user_rating_count": profile.get("user_rating_count")}


class Candidates:
    """Candidate positions in the order proposed, each with (retriever, reason) from its first proposer."""

    def __init__(self, excluded=()):
        self._seen: dict[int, tuple[str, str]] = {}
        self._excluded = {int(position) for position in excluded}

    def add(self, positions, scores, retriever: str, reason) -> None:
        for position in positions:
            position = int(position)
            if position not in self._seen and position not in self._excluded and np.isfinite(scores[position]):
                self._seen[position] = (retriever, reason(position))

    def limit(self, count: int) -> Candidates:
        kept = Candidates()
        kept._seen = dict(list(self._seen.items())[:count])
        return kept

    @property
    def positions(self) -> np.ndarray:
        return np.fromiter(self._seen, dtype=np.int64, count=len(self._seen))

    @property
    def sources(self) -> list[tuple[str, str]]:
        return list(self._seen.values())



def top_positions(scores: np.ndarray, count: int) -> np.ndarray:
    count = min(count, len(scores))
    best = np.argpartition(-scores, count - 1)[:count]
    best = best[np.argsort(-scores[best], kind="stable")]
    return best[np.isfinite(scores[best])]


def diversify(catalogue: Catalogue, positions: np.ndarray, scores: np.ndarray, k: int, max_per_genre: int) -> list[int]:
    """Indexes into positions of the top k by score with at most max_per_genre of one primary genre; if that leaves
    fewer than k, the best of the rest fill up."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    chosen, per_genre, skipped = [], {}, []
    for index in order:
        genre = catalogue.primary_genre(int(positions[index]))
        if per_genre.get(genre, 0) < max_per_genre:
            chosen.append(int(index))
            per_genre[genre] = per_genre.get(genre, 0) + 1
        else:
            skipped.append(int(index))
        if len(chosen) == k:
            return chosen
    return chosen + skipped[: k - len(chosen)]


def rating_dict(rating: Rating) -> dict:
    return {"movie_id": rating.movie_id, "user_id": rating.user_id, "rating": rating.rating,
            "rated_at": rating.rated_at}


def none_if_nan(value, cast):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else cast(value)


def sparrow_movie(engine: RecommendationEngine, movie_id: int) -> dict:
    """SparrowRecSys's Movie JSON (field names as its Jackson output)."""
    movie = engine.movie(movie_id)
    return {"movieId": movie["movie_id"], "title": split_title(movie["title"]), "releaseYear": movie["release_year"],
            "imdbId": movie["imdb_id"], "tmdbId": movie["tmdb_id"], "genres": movie["genres"],
            "ratingNumber": movie["rating_count"], "averageRating": movie["average_rating"] or 0.0,
            "topRatings": [{"rating": sparrow_rating(r)} for r in movie["top_ratings"]]}


def sparrow_rating(rating: dict) -> dict:
    return {"movieId": rating["movie_id"], "userId": rating["user_id"], "score": rating["rating"],
            "timestamp": rating["rated_at"]}
