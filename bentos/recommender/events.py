"""The event recorder: a validated rating is appended to the durable log (fsync'd) before anything else, then pushed
to the online store (the user's recent activity and profile, recomputed as dbt would) and kept in memory; the very
next recommendation sees it, and a restart replays it from the log.

One rating, one outcome: the log holds it and the online store has it (200), or it counts nowhere (503: the log
could not be written, or the online push failed and the logged line was voided). A rating sent again with the same
key (event_id, else user, movie and rated_at) is recorded once (200, `duplicate`), and 409 if its values differ."""

from __future__ import annotations

import logging
import threading
import time
import zlib

from bentos.recommender.errors import ConflictError, InvalidRequestError, NotFoundError, UnavailableError
from bentos.recommender.movie_catalog import LiveRatings, MovieCatalog, Rating
from eaglerec.event_log import EVENT_ID, EventLogError, LoggedRating, RatingLog, Watermark, rating_key
from eaglerec.feature_store import push_user_ratings

LOGGER = logging.getLogger(__name__)
EARLIEST_RATING_AT = 789_652_800  # 1995-01-10, the first MovieLens rating
# Requests for the same key take the same lock; other keys rarely wait on each other.
KEY_LOCKS = 64


def as_rating(event: LoggedRating) -> Rating:
    return Rating(event.user_id, event.movie_id, float(event.rating), event.rated_at)


class EventRecorder:
    def __init__(self, store, movie_facts, log: RatingLog, user_state):
        self.store = store
        self.movie_facts = movie_facts
        self.log = log
        self.user_state = user_state  # UserStateReader: its online-store flag follows the pushes too
        self.live = LiveRatings()
        self.recorded: dict[str, LoggedRating] = {}  # every key the log holds: a retry is known at once
        self.pending_users: set[int] = set()  # users whose replayed events did not reach the online store yet
        self._key_locks = [threading.Lock() for _ in range(KEY_LOCKS)]
        self._state_lock = threading.Lock()

    def replay(self, marts_watermark: Watermark) -> LiveRatings:
        """Read the log: remember every key, and return the events the marts do not hold (past their watermark) as
        live ratings, pushed to the online store (a materialisation may have overwritten them) or marked pending."""
        # Under the state lock: an event recorded meanwhile lands in the new live ratings (or was read by the scan;
        # adding its key again changes nothing).
        with self._state_lock:
            scan = self.log.scan(after=marts_watermark)
            live = LiveRatings()
            for key in scan.after:
                live.add(key, as_rating(scan.events[key]))
            users = {scan.events[key].user_id for key in scan.after}
            self.recorded = scan.events
            self.live = live
            self.pending_users |= users
        self.push_pending()
        LOGGER.info("event log: %d events, %d past the marts' watermark replayed for %d users",
                    len(scan.events), len(scan.after), len(users))
        return live

    def push_pending(self) -> None:
        """Push the replayed events of pending users to the online store; those it refuses stay pending."""
        if not self.pending_users:
            return
        for user_id in sorted(self.pending_users):
            events = [(r.movie_id, r.rating, r.rated_at) for r in self.live.of(user_id)]
            try:
                push_user_ratings(self.store, self.movie_facts, user_id, events)
            except Exception:
                LOGGER.warning("online store unavailable: %d users' logged events wait for it",
                               len(self.pending_users))
                self.user_state.online_store_ok = False
                return
            self.pending_users.discard(user_id)

    def validate(self, catalog: MovieCatalog, user_id: int, movie_id: int, rating: float, rated_at: int,
                 event_id: str | None, now: int) -> None:
        if user_id < 1:
            raise InvalidRequestError(f"user_id {user_id}: expected a positive integer")
        if not catalog.has_movie(movie_id):
            raise NotFoundError(f"movie_id {movie_id}: not in movie_catalog")
        if not (0.5 <= rating <= 5.0 and (rating * 2).is_integer()):
            raise InvalidRequestError(f"rating {rating}: expected 0.5 to 5.0 in half stars")
        if not EARLIEST_RATING_AT <= rated_at <= now + 60:
            raise InvalidRequestError(f"rated_at {rated_at}: expected epoch seconds between 1995 and now")
        if event_id is not None and not EVENT_ID.match(event_id):
            raise InvalidRequestError(f"event_id {event_id!r}: expected 1-64 letters, digits or . _ : -")

    def record(self, catalog: MovieCatalog, user_id: int, movie_id: int, rating: float, rated_at: int | None = None,
               event_id: str | None = None, request_id: str | None = None) -> dict:
        now = int(time.time())
        client_time = rated_at is not None
        rated_at = rated_at if client_time else now
        self.validate(catalog, user_id, movie_id, rating, rated_at, event_id, now)
        key = rating_key(user_id, movie_id, rated_at, event_id)
        event = LoggedRating(key, user_id, movie_id, float(rating), rated_at, time.time(), request_id)
        with self._key_locks[zlib.crc32(key.encode()) % KEY_LOCKS]:
            known = self.recorded.get(key)
            if known is not None:
                if not known.same_event(event, compare_rated_at=client_time):
                    raise ConflictError(f"event_id {key!r} is already recorded with other values (user "
                                        f"{known.user_id}, movie {known.movie_id}, rating {known.rating}, rated_at "
                                        f"{known.rated_at}): send a new event_id")
                return self.answer(known, duplicate=True)
            profile = self.append_and_push(event)
            with self._state_lock:
                self.recorded[key] = event
                self.live.add(key, as_rating(event))
        return self.answer(event, duplicate=False, user_rating_count=profile.get("user_rating_count"))

    def append_and_push(self, event: LoggedRating) -> dict:
        """The log first (nothing is pushed unless it is durable), then the online store; a failed push voids the
        logged line, so the event counts nowhere."""
        with self.log.in_flight():
            try:
                self.log.append(event)
            except EventLogError as exc:
                LOGGER.exception("rating event %s not logged", event.event_id)
                raise UnavailableError(f"event log unavailable ({exc.strerror or exc}): the rating was not recorded, "
                                       "send it again later") from exc
            try:
                profile = push_user_ratings(self.store, self.movie_facts, event.user_id,
                                            [(event.movie_id, event.rating, event.rated_at)])
            except Exception as exc:
                LOGGER.exception("rating event %s not pushed online: voided", event.event_id)
                self.user_state.online_store_ok = False
                try:
                    self.log.void(event, f"online push failed: {type(exc).__name__}")
                except EventLogError:
                    # Still logged: the next replay applies it, and a retry of the key is recorded once.
                    LOGGER.exception("rating event %s could not be voided", event.event_id)
                raise UnavailableError(f"online store unavailable ({type(exc).__name__}): the rating was not "
                                       "recorded, send it again later") from exc
        self.user_state.online_store_ok = True
        return profile

    def answer(self, event: LoggedRating, duplicate: bool, user_rating_count: int | None = None) -> dict:
        return {"accepted": True, "duplicate": duplicate, "event_id": event.event_id, "user_id": event.user_id,
                "movie_id": event.movie_id, "rating": event.rating, "rated_at": event.rated_at,
                "request_id": event.request_id, "user_rating_count": user_rating_count}
