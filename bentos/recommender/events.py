"""The event recorder: a validated rating goes to the online store (the user's recent activity and profile,
recomputed as dbt would) and to the ratings in memory; the very next recommendation sees it."""

from __future__ import annotations

import logging
import time

from bentos.recommender.errors import InvalidRequestError, NotFoundError, UnavailableError
from bentos.recommender.movie_catalog import LiveRatings, MovieCatalog, Rating
from eaglerec.feature_store import push_rating_event

LOGGER = logging.getLogger(__name__)
EARLIEST_RATING_AT = 789_652_800  # 1995-01-10, the first MovieLens rating


class EventRecorder:
    def __init__(self, store, movie_facts, live: LiveRatings, user_state):
        self.store = store
        self.movie_facts = movie_facts
        self.live = live
        self.user_state = user_state  # UserStateReader: its online-store flag follows the pushes too

    def record(self, catalog: MovieCatalog, user_id: int, movie_id: int, rating: float,
               rated_at: int | None = None) -> dict:
        now = int(time.time())
        rated_at = now if rated_at is None else rated_at
        if user_id < 1:
            raise InvalidRequestError(f"user_id {user_id}: expected a positive integer")
        if not catalog.has_movie(movie_id):
            raise NotFoundError(f"movie_id {movie_id}: not in movie_catalog")
        if not (0.5 <= rating <= 5.0 and (rating * 2).is_integer()):
            raise InvalidRequestError(f"rating {rating}: expected 0.5 to 5.0 in half stars")
        if not EARLIEST_RATING_AT <= rated_at <= now + 60:
            raise InvalidRequestError(f"rated_at {rated_at}: expected epoch seconds between 1995 and now")
        try:
            profile = push_rating_event(self.store, self.movie_facts, user_id, movie_id, rating, rated_at)
        except Exception as exc:
            LOGGER.exception("rating event for user %s not recorded", user_id)
            self.user_state.online_store_ok = False
            raise UnavailableError(f"online store unavailable ({type(exc).__name__}): the rating was not recorded, "
                                   "send it again later") from exc
        self.user_state.online_store_ok = True
        self.live.add(Rating(user_id, movie_id, float(rating), rated_at))
        return {"accepted": True, "user_id": user_id, "movie_id": movie_id, "rating": rating, "rated_at": rated_at,
                "user_rating_count": profile.get("user_rating_count")}
