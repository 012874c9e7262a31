"""The event recorder: a validated rating is appended to the durable log (fsync'd) before anything else, then pushed
to the online store (the user's recent activity and profile, recomputed as dbt would) and kept in memory; the very
next recommendation sees it, and a restart replays it from the log.

One rating, one outcome: the log holds it and the online store has it (200), or it counts nowhere (503: the log
could not be written, or the online push failed and the logged line was voided). A rating sent again with the same
key (event_id, else user, movie and rated_at) is recorded once (200, `duplicate`), and 409 if its values differ.

One writer thread per process commits: it takes every event waiting (a group commit: one fsync and one online write
per view for the batch, so concurrent requests share the costs) and is the process's only one to read-fold-write
users' online state. Service workers are processes: a writer commits under the log's commit lock (an flock), first
reading what the other workers logged since it last looked, so a key another worker logged is a duplicate here too
and two ratings of one user are folded one after the other whichever workers took them. Requests read the log's
tail too (`catch_up`): a rating any worker accepted is in every worker's live ratings."""

from __future__ import annotations

import logging
import queue
import threading
import time
import zlib
from concurrent.futures import Future
from fcntl import LOCK_EX

from bentos.recommender.errors import ConflictError, InvalidRequestError, NotFoundError, UnavailableError
from bentos.recommender.movie_catalog import LiveRatings, MovieCatalog, Rating
from eaglerec.event_log import (
    COMMIT_LOCK,
    EVENT_ID,
    EventLogError,
    LoggedRating,
    RatingLog,
    Watermark,
    flocked,
    rating_key,
)
from eaglerec.feature_store import UserStateWriter

LOGGER = logging.getLogger(__name__)
EARLIEST_RATING_AT = 789_652_800  # 1995-01-10, the first MovieLens rating
# Requests for the same key take the same lock; other keys rarely wait on each other.
KEY_LOCKS = 64
# At most this many events in one commit, users in one push of replayed events.
MAX_BATCH = 256
PUSH_PENDING = "push pending users"  # the writer's job besides events


def as_rating(event: LoggedRating) -> Rating:
    return Rating(event.user_id, event.movie_id, float(event.rating), event.rated_at)


class EventRecorder:
    def __init__(self, store, movie_facts, log: RatingLog, user_state):
        self.log = log
        self.user_state = user_state  # UserStateReader: its online-store flag follows the pushes too
        self.writer = UserStateWriter(store, movie_facts)
        self.live = LiveRatings()
        self.recorded: dict[str, LoggedRating] = {}  # every key the log holds: a retry is known at once
        self.read_to = Watermark({})  # how far this process has read the log into `recorded` and `live`
        self.pending_users: set[int] = set()  # users whose replayed events did not reach the online store yet
        self._key_locks = [threading.Lock() for _ in range(KEY_LOCKS)]
        self._state_lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[LoggedRating | str, Future]] = queue.SimpleQueue()
        threading.Thread(target=self._commit_forever, name="eaglerec-event-writer", daemon=True).start()

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
            self.read_to = scan.watermark
            self.pending_users |= users
        self.push_pending()
        LOGGER.info("event log: %d events, %d past the marts' watermark replayed for %d users",
                    len(scan.events), len(scan.after), len(users))
        return live

    def catch_up(self) -> None:
        """Read what was logged since this process last looked (other workers' events, and voids) into the known
        keys and the live ratings; one stat per log segment when nothing was."""
        with self._state_lock:
            try:
                records, self.read_to = self.log.tail(self.read_to)
            except OSError:
                LOGGER.exception("event log unreadable: the other workers' latest events are not read")
                return
            for record in records:
                if isinstance(record, str):  # a void line: its event counts nowhere
                    self.recorded.pop(record, None)
                    self.live.discard(record)
                elif record.event_id not in self.recorded:
                    self.recorded[record.event_id] = record
                    self.live.add(record.event_id, as_rating(record))

    def push_pending(self) -> None:
        """Push the replayed events of pending users to the online store (by the writer thread); those it refuses
        stay pending."""
        if self.pending_users:
            self._submit(PUSH_PENDING)

    def _submit(self, job: LoggedRating | str):
        future: Future = Future()
        self._jobs.put((job, future))
        return future.result()

    def _commit_forever(self) -> None:
        while True:
            jobs = [self._jobs.get()]
            while len(jobs) < MAX_BATCH:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            events = [(job, future) for job, future in jobs if isinstance(job, LoggedRating)]
            try:
                with flocked(self.log.folder / COMMIT_LOCK, LOCK_EX):
                    if events:
                        self._commit(events)
                    if any(job == PUSH_PENDING for job, _ in jobs):
                        self._push_pending()
            except OSError as exc:  # the lock file cannot be opened: nothing was committed
                LOGGER.exception("event log unavailable: %d events not recorded", len(events))
                for _, future in events:
                    if not future.done():
                        future.set_exception(UnavailableError(f"event log unavailable ({exc.strerror or exc}): the "
                                                              "rating was not recorded, send it again later"))
            for job, future in jobs:
                if job == PUSH_PENDING:
                    future.set_result(None)

    def _commit(self, events: list[tuple[LoggedRating, Future]]) -> None:
        """Log and push the events no worker logged yet (each future gets ("logged", its profile)); the others get
        ("known", the event the log holds)."""
        self.catch_up()
        fresh = []
        for event, future in events:
            if (known := self.recorded.get(event.event_id)) is not None:
                future.set_result(("known", known))
            else:
                fresh.append((event, future))
        if not fresh:
            return
        try:
            profiles = self.append_and_push([event for event, _ in fresh])
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure, the thread lives on
            for _, future in fresh:
                future.set_exception(exc if isinstance(exc, UnavailableError) else UnavailableError(
                    f"the rating was not recorded ({type(exc).__name__}: {exc})"))
            return
        with self._state_lock:
            for event, _ in fresh:
                self.recorded[event.event_id] = event
                self.live.add(event.event_id, as_rating(event))
        for event, future in fresh:
            future.set_result(("logged", profiles[event.event_id]))

    def _push_pending(self) -> None:
        users = sorted(self.pending_users)
        for start in range(0, len(users), MAX_BATCH):
            batch = users[start:start + MAX_BATCH]
            try:
                self.writer.push({user_id: [(r.movie_id, r.rating, r.rated_at) for r in self.live.of(user_id)]
                                  for user_id in batch})
            except Exception:  # noqa: BLE001 - the events are logged: they wait for the store, the service goes on
                LOGGER.warning("online store unavailable: %d users' logged events wait for it", len(self.pending_users))
                self.user_state.online_store_ok = False
                return
            self.pending_users.difference_update(batch)

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
            if known is None:
                outcome, value = self._submit(event)
                if outcome == "logged":
                    return self.answer(event, duplicate=False, user_rating_count=value.get("user_rating_count"))
                known = value  # another worker logged this key first
            if not known.same_event(event, compare_rated_at=client_time):
                raise ConflictError(f"event_id {key!r} is already recorded with other values (user "
                                    f"{known.user_id}, movie {known.movie_id}, rating {known.rating}, rated_at "
                                    f"{known.rated_at}): send a new event_id")
            return self.answer(known, duplicate=True)

    def append_and_push(self, events: list[LoggedRating]) -> dict[str, dict]:
        """The log first (nothing is pushed unless it is durable), then the online store; a failed push voids the
        logged lines, so the events count nowhere. Return each event's user profile as of that event."""
        with self.log.in_flight():
            try:
                self.log.append(*events)
            except EventLogError as exc:
                LOGGER.exception("%d rating events not logged", len(events))
                raise UnavailableError(f"event log unavailable ({exc.strerror or exc}): the rating was not recorded, "
                                       "send it again later") from exc
            by_user: dict[int, list[LoggedRating]] = {}
            for event in events:
                by_user.setdefault(event.user_id, []).append(event)
            try:
                profiles = self.writer.push({user_id: [(e.movie_id, e.rating, e.rated_at) for e in user_events]
                                             for user_id, user_events in by_user.items()})
            except Exception as exc:
                LOGGER.exception("%d rating events not pushed online: voided", len(events))
                self.user_state.online_store_ok = False
                try:
                    self.log.void(*events, reason=f"online push failed: {type(exc).__name__}")
                except EventLogError:
                    # Still logged: the next replay applies them, and a retry of a key is recorded once.
                    LOGGER.exception("%d rating events could not be voided", len(events))
                raise UnavailableError(f"online store unavailable ({type(exc).__name__}): the rating was not "
                                       "recorded, send it again later") from exc
        self.user_state.online_store_ok = True
        return {event.event_id: profile for user_id, user_events in by_user.items()
                for event, profile in zip(user_events, profiles[user_id], strict=True)}

    def answer(self, event: LoggedRating, duplicate: bool, user_rating_count: int | None = None) -> dict:
        return {"accepted": True, "duplicate": duplicate, "event_id": event.event_id, "user_id": event.user_id,
                "movie_id": event.movie_id, "rating": event.rating, "rated_at": event.rated_at,
                "request_id": event.request_id, "user_rating_count": user_rating_count}
