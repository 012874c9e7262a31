"""A user's state at request time: one online read (Feast service user_state_v1: profile and last ratings), or, while
the online store does not answer, the same features recomputed from the ratings in memory as the near-line path
computes them (the service is then degraded)."""

from __future__ import annotations

import logging

from eaglerec.contracts.names import USER_STATE_SERVICE, select_liked
from eaglerec.contracts.retrieval import UserState
from eaglerec.feature_store import OnlineReader
from eaglerec.near_line import fold_rating, profile_from_activity

LOGGER = logging.getLogger(__name__)


class UserStateReader:
    def __init__(self, store, movie_facts):
        self.online = OnlineReader(store, USER_STATE_SERVICE)
        self.movie_facts = movie_facts
        # False while the online store does not answer.
        self.online_store_ok = True

    def read(self, user_id: int, catalog) -> dict:
        """The user's profile and recent activity features (empty for a user nobody knows)."""
        try:
            state = self.online.read(user_id)
        except Exception:
            if self.online_store_ok:  # log the outage once, not per request
                LOGGER.exception("online store unavailable: serving user state recomputed from memory (degraded)")
            self.online_store_ok = False
            return self.recompute(user_id, catalog)
        self.online_store_ok = True
        return state

    def recompute(self, user_id: int, catalog) -> dict:
        activity = {"recent_rated_ats": [], "recent_movie_ids": [], "recent_ratings": []}
        for rating in catalog.user_ratings(user_id):
            activity = fold_rating(activity, rating.movie_id, rating.rating, rating.rated_at)
        if not activity["recent_movie_ids"]:
            return {}
        return {**activity, **profile_from_activity(activity, self.movie_facts)}

    def probe(self) -> bool:
        """Probe the online store with one read; update and return the flag."""
        try:
            self.online.read(1)
            self.online_store_ok = True
        except Exception:
            self.online_store_ok = False
        return self.online_store_ok


def to_user_state(user_id: int, state: dict) -> UserState:
    """The retriever contract's view of a user: their id and liked movies among their last ratings, latest first."""
    return UserState(user_id, tuple(select_liked(state.get("recent_movie_ids") or [],
                                                 state.get("recent_ratings") or [])))
