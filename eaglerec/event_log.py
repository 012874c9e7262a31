"""The durable log of what users do: rating events (fsync'd before the service answers) and impressions (what the
service showed), as JSON lines under $EAGLEREC_HOME/events/, one segment file per UTC day.

Why files: the default platform has no server to lose them to (SQLite online store), an fsync'd append survives
`kill -9` and a power cut, DuckDB (dbt) and pandas read JSON lines as they are, and several service workers can
append to one segment safely (each line is one O_APPEND write under an exclusive flock).

A rating event is idempotent by its key (the client's event_id, else user:movie:rated_at): readers keep the first
line of a key. A `void` line withdraws the event of its key: the service writes one when the online push fails
after the append, so an event answered 503 counts nowhere. The pipeline takes the log in a **watermark** (the
byte length of every segment at the moment it took them, all in-flight events finished): the marts hold exactly the
events before it, the service replays those after it, so an event is never lost and never taken twice.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

LOGGER = logging.getLogger(__name__)

RATINGS_PREFIX = "ratings-"
IMPRESSIONS_PREFIX = "impressions-"
# The watermark a features run took, beside the raw files it took them into, then beside the marts built from them.
WATERMARK_FILE = "_events_watermark.json"
# The live ratings a features run took, in ratings.csv's columns (the raw gate checks them with ratings.csv's rules).
LIVE_RATINGS_FILE = "live_ratings.csv"
EVENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Writers hold the in-flight lock shared from append to online push; a taker holds it exclusively. The turnstile
# stops new writers while a taker waits, so a busy service cannot starve it.
IN_FLIGHT_LOCK, TURNSTILE_LOCK = ".in_flight.lock", ".turnstile.lock"
# Held by a service worker from reading what the others logged to its append and online push: workers (processes)
# agree on which request logged a key first, and fold one user's ratings one after the other.
COMMIT_LOCK = ".commit.lock"


class EventLogError(OSError):
    """The log could not be written durably: the event is not recorded."""


@dataclass(frozen=True)
class LoggedRating:
    """One rating event as the log holds it."""

    event_id: str
    user_id: int
    movie_id: int
    rating: float
    rated_at: int
    logged_at: float
    request_id: str | None = None

    def same_event(self, other: LoggedRating, compare_rated_at: bool = True) -> bool:
        """The same rating sent again (a retry), whatever the times it was logged at; a retry that left rated_at to
        the server is compared without it."""
        return ((self.user_id, self.movie_id, self.rating) == (other.user_id, other.movie_id, other.rating)
                and (not compare_rated_at or self.rated_at == other.rated_at))


def rating_key(user_id: int, movie_id: int, rated_at: int, event_id: str | None = None) -> str:
    """The idempotency key of a rating: the client's event id, or who rated what when."""
    return event_id if event_id is not None else f"{user_id}:{movie_id}:{rated_at}"


def segment_name(prefix: str, at: float) -> str:
    return f"{prefix}{datetime.fromtimestamp(at, UTC):%Y-%m-%d}.jsonl"


@contextmanager
def flocked(path: Path, mode: int) -> Iterator[None]:
    """Hold an flock on path (created if missing) for the block; each call its own descriptor, so threads of one
    process exclude each other as processes do."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def append_durably(fd: int, data: bytes) -> None:
    """Append whole lines to a segment opened O_RDWR | O_APPEND, under an exclusive flock, and fsync them. A line a
    crash cut short must not swallow these: they start on a fresh line."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")
        os.write(fd, data)
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Watermark:
    """How far a reader took the log: bytes per segment file (segments not named were not taken at all)."""

    offsets: dict[str, int]

    def to_dict(self) -> dict:
        return {"offsets": self.offsets}

    @classmethod
    def from_dict(cls, data: dict | None) -> Watermark:
        return cls(dict((data or {}).get("offsets", {})))

    @classmethod
    def read(cls, folder: Path) -> Watermark:
        """The watermark recorded in a folder (marts or raw dataset); none recorded means nothing was taken."""
        path = Path(folder) / WATERMARK_FILE
        return cls.from_dict(json.loads(path.read_text())) if path.exists() else cls({})


@dataclass(frozen=True)
class LogScan:
    """A read of the rating log: every recorded event by key (first line wins, voids withdrawn), in log order, and
    which of them lie after a watermark."""

    events: dict[str, LoggedRating]
    after: list[str]  # keys of the events past the watermark, in log order
    watermark: Watermark  # the end of what was read
    unreadable_lines: int


def parse_record(line: bytes) -> LoggedRating | str | None:
    """A log line as a rating event, the key it voids (a `void` line), or None (unreadable: a write cut short)."""
    try:
        record = json.loads(line)
        return record["void"] if "void" in record else LoggedRating(**record)
    except (ValueError, TypeError, KeyError):
        return None


def read_lines(path: Path, start: int, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of the complete lines of a file from start to end (default: its current end)."""
    with path.open("rb") as handle:
        handle.seek(start)
        offset = start
        for line in handle:
            if end is not None and offset >= end:
                return
            if not line.endswith(b"\n"):
                return  # a write cut short by a crash: never acknowledged
            yield offset, line
            offset += len(line)


class RatingLog:
    """Appends rating events durably and reads them back; one instance per process (thread-safe)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._segment: tuple[str, int] | None = None  # (name, open descriptor)
        self._listing: tuple[int, list[Path]] | None = None  # (the folder's mtime, its segments then)

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob(f"{RATINGS_PREFIX}*.jsonl"))

    def _listed_segments(self) -> list[Path]:
        """`segments()`, listed again only when the folder changed (a file was added or removed): `tail` runs on
        every request, and listing the folder cost more than the rest of it."""
        changed = os.stat(self.folder).st_mtime_ns
        if self._listing is None or self._listing[0] != changed:
            self._listing = (changed, self.segments())
        return self._listing[1]

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Held by a writer from its append to its online push (or void): a taker waits for it."""
        with flocked(self.folder / TURNSTILE_LOCK, fcntl.LOCK_EX):
            pass
        with flocked(self.folder / IN_FLIGHT_LOCK, fcntl.LOCK_SH):
            yield

    @contextmanager
    def quiesced(self) -> Iterator[None]:
        """No writer in flight for the block (new ones wait): a consistent prefix of every segment."""
        with flocked(self.folder / TURNSTILE_LOCK, fcntl.LOCK_EX), \
                flocked(self.folder / IN_FLIGHT_LOCK, fcntl.LOCK_EX):
            yield

    def _descriptor(self, name: str) -> int:
        if self._segment is None or self._segment[0] != name:
            if self._segment is not None:
                os.close(self._segment[1])
            fd = os.open(self.folder / name, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            self._segment = (name, fd)
        return self._segment[1]

    def _append(self, records: list[tuple[dict, float]]) -> None:
        """Write records (record, the time naming its segment) with one write and one fsync per segment: a batch of
        concurrent events costs one fsync (group commit)."""
        lines: dict[str, list[str]] = {}
        for record, at in records:
            lines.setdefault(segment_name(RATINGS_PREFIX, at), []).append(json.dumps(record, separators=(",", ":")))
        try:
            with self._lock:
                for name, segment_lines in lines.items():
                    append_durably(self._descriptor(name), ("\n".join(segment_lines) + "\n").encode())
        except OSError as exc:
            raise EventLogError(f"{self.folder}: the event log cannot be written ({exc})") from exc

    def append(self, *events: LoggedRating) -> None:
        """Write events and fsync them; raise EventLogError if they are not durably written."""
        self._append([(asdict(event), event.logged_at) for event in events])

    def void(self, *events: LoggedRating, reason: str) -> None:
        """Withdraw events (their online push failed after the append), each in its own segment: a retry logged
        after midnight still follows the void."""
        now = time.time()
        self._append([({"void": event.event_id, "logged_at": now, "reason": reason[:200]}, event.logged_at)
                      for event in events])

    def scan(self, after: Watermark | None = None, until: Watermark | None = None) -> LogScan:
        """Read the log (up to `until`, default its end): every event, and those past `after`."""
        after = after or Watermark({})
        events: dict[str, LoggedRating] = {}
        positions: dict[str, bool] = {}  # key -> past the watermark
        ends, unreadable = {}, 0
        for path in self.segments():
            limit = None if until is None else until.offsets.get(path.name, 0)
            start = after.offsets.get(path.name, 0)
            end = 0
            for offset, line in read_lines(path, 0, limit):
                end = offset + len(line)
                event = parse_record(line)
                if event is None:
                    unreadable += 1
                    continue
                if isinstance(event, str):
                    events.pop(event, None)
                    positions.pop(event, None)
                    continue
                if event.event_id not in events:
                    events[event.event_id] = event
                    positions[event.event_id] = offset >= start
            ends[path.name] = end
        if unreadable:
            LOGGER.warning("%s: %d unreadable line(s) skipped (writes cut short by a crash)", self.folder, unreadable)
        return LogScan(events, [key for key, past in positions.items() if past], Watermark(ends), unreadable)

    def tail(self, since: Watermark) -> tuple[list[LoggedRating | str], Watermark]:
        """What was logged after `since`, in log order (events, and the keys of void lines), and the new end: what
        the other writers (service workers) appended since this reader last looked. One stat per segment when
        nothing was."""
        records, ends = [], dict(since.offsets)
        for path in self._listed_segments():
            start = since.offsets.get(path.name, 0)
            if path.stat().st_size <= start:
                continue
            for offset, line in read_lines(path, start):
                ends[path.name] = offset + len(line)
                if (record := parse_record(line)) is not None:
                    records.append(record)
        return records, Watermark(ends)


class ImpressionLog:
    """Appends what the service showed, off the request path: a background thread writes the queued lines and
    fsyncs them every second (an impression lost in a crash costs a little A/B data, never a user's rating)."""

    def __init__(self, folder: Path, flush_seconds: float = 1.0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.flush_seconds = flush_seconds
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_forever, name="impression-log", daemon=True)
        self._thread.start()

    def record(self, impression: dict) -> None:
        self._queue.put(impression)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything recorded so far is on disk."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _write_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.flush_seconds
            while time.monotonic() < deadline:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
                if isinstance(batch[-1], threading.Event):
                    break
            try:
                self._write([item for item in batch if isinstance(item, dict)])
            except OSError:
                LOGGER.exception("%s: impressions not written", self.folder)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()

    def _write(self, impressions: list[dict]) -> None:
        by_segment: dict[str, list[bytes]] = {}
        for impression in impressions:
            name = segment_name(IMPRESSIONS_PREFIX, impression["served_at"])
            by_segment.setdefault(name, []).append((json.dumps(impression, separators=(",", ":")) + "\n").encode())
        for name, lines in by_segment.items():
            fd = os.open(self.folder / name, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                append_durably(fd, b"".join(lines))
            finally:
                os.close(fd)


def read_impressions(folder: Path) -> list[dict]:
    """Every impression logged in a folder, oldest segment first."""
    impressions = []
    for path in sorted(Path(folder).glob(f"{IMPRESSIONS_PREFIX}*.jsonl")):
        for _, line in read_lines(path, 0):
            try:
                impressions.append(json.loads(line))
            except ValueError:
                continue
    return impressions


@dataclass(frozen=True)
class TakenEvents:
    events: int  # recorded events up to the watermark
    ratings: int  # rows of live_ratings.csv: the latest rating of each (user, movie) among them
    watermark: Watermark


def take_live_ratings(log_folder: Path, raw_dir: Path) -> TakenEvents:
    """Write the rating events logged so far into a dataset's raw folder for the next features run: live_ratings.csv
    (ratings.csv's columns; a later rating of the same user and movie replaces the earlier one, as in MovieLens) and
    the watermark they end at. Idempotent: taking again with nothing new rewrites the same files."""
    from eaglerec.files import write_then_rename

    log = RatingLog(log_folder)
    with log.quiesced():
        scan = log.scan()
    latest: dict[tuple[int, int], LoggedRating] = {}
    for event in scan.events.values():  # log order: among equal times the later line wins
        known = latest.get((event.user_id, event.movie_id))
        if known is None or event.rated_at >= known.rated_at:
            latest[(event.user_id, event.movie_id)] = event
    raw_dir = Path(raw_dir)
    with write_then_rename(raw_dir / LIVE_RATINGS_FILE) as partial, partial.open("w") as out:
        out.write("userId,movieId,rating,timestamp\n")
        for event in sorted(latest.values(), key=lambda e: (e.user_id, e.rated_at, e.movie_id)):
            out.write(f"{event.user_id},{event.movie_id},{event.rating:.1f},{event.rated_at}\n")
    taken = TakenEvents(len(scan.events), len(latest), scan.watermark)
    with write_then_rename(raw_dir / WATERMARK_FILE) as partial:
        partial.write_text(json.dumps({**scan.watermark.to_dict(), "events": taken.events, "ratings": taken.ratings,
                                       "taken_at": int(time.time())}, indent=2, sort_keys=True))
    return taken
