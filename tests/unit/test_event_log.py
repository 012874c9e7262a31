"""The durable event log: keys recorded once, voids, crash-cut lines, many writers, the taker's watermark."""

from __future__ import annotations

import csv
import json
import multiprocessing
import threading
import time
from pathlib import Path

from eaglerec.event_log import (
    LIVE_RATINGS_FILE,
    WATERMARK_FILE,
    ImpressionLog,
    LoggedRating,
    RatingLog,
    Watermark,
    read_impressions,
    segment_name,
    take_live_ratings,
)

NOW = 1_764_000_000.0


def event(key: str, user: int, movie: int, rating: float, rated_at: int, at: float = NOW) -> LoggedRating:
    return LoggedRating(key, user, movie, rating, rated_at, at)


def test_a_key_is_recorded_once_and_a_void_withdraws_it(tmp_path):
    log = RatingLog(tmp_path)
    log.append(event("a", 1, 10, 4.0, 100))
    log.append(event("b", 2, 20, 3.0, 200))
    log.append(event("b", 2, 20, 5.0, 200))  # the same key again: the first line stands
    log.append(voided := event("c", 3, 30, 1.0, 300))
    log.void(voided, reason="online push failed")
    log.append(event("d", 4, 40, 2.5, 400))

    scan = log.scan()
    assert list(scan.events) == ["a", "b", "d"] == scan.after
    assert scan.events["b"].rating == 3.0
    # A voided key may be sent again: it is recorded then.
    log.append(event("c", 3, 30, 1.5, 301))
    assert log.scan().events["c"].rating == 1.5


def test_a_reader_tails_what_other_writers_appended_since_it_looked(tmp_path):
    """Each service worker reads the others' events from where it stopped: new lines of every segment (a new day's
    too), voids as their keys, nothing twice, and not a line still being written."""
    reader, other = RatingLog(tmp_path), RatingLog(tmp_path)  # two processes' instances
    reader.append(event("a", 1, 10, 4.0, 100))
    since = reader.scan().watermark
    assert reader.tail(since) == ([], since)

    other.append(event("b", 2, 20, 3.0, 200), event("c", 3, 30, 2.0, 300, at=NOW + 86_400))
    other.void(event("b", 2, 20, 3.0, 200), reason="push failed")
    records, since = reader.tail(since)
    assert [r if isinstance(r, str) else r.event_id for r in records] == ["b", "b", "c"]
    assert isinstance(records[1], str)  # the void of b
    with (tmp_path / segment_name("ratings-", NOW)).open("ab") as segment:
        segment.write(b'{"event_id": "d", "user_id"')  # an append in progress
    assert reader.tail(since) == ([], since)


def test_a_group_commit_writes_each_event_to_its_day_and_voids_them_together(tmp_path):
    log = RatingLog(tmp_path)
    day, next_day = NOW, NOW + 86_400
    log.append(event("a", 1, 10, 4.0, 100, at=day), event("b", 2, 20, 3.0, 200, at=next_day),
               event("c", 3, 30, 2.0, 300, at=day))
    def keys_of(at: float) -> list[str]:
        return [json.loads(line)["event_id"] for line in (tmp_path / segment_name("ratings-", at)).read_text().split()]

    assert keys_of(day) == ["a", "c"] and keys_of(next_day) == ["b"]
    log.void(event("a", 1, 10, 4.0, 100, at=day), event("b", 2, 20, 3.0, 200, at=next_day), reason="push failed")
    assert list(log.scan().events) == ["c"]


def test_a_line_cut_short_by_a_crash_is_skipped_and_the_next_append_starts_a_fresh_line(tmp_path):
    log = RatingLog(tmp_path)
    log.append(event("a", 1, 10, 4.0, 100))
    segment = tmp_path / segment_name("ratings-", NOW)
    with segment.open("ab") as handle:
        handle.write(b'{"event_id":"half","user_id":2,"mov')  # killed mid-write: never acknowledged
    assert list(RatingLog(tmp_path).scan().events) == ["a"]

    restarted = RatingLog(tmp_path)
    restarted.append(event("b", 2, 20, 3.0, 200))
    scan = restarted.scan()
    assert list(scan.events) == ["a", "b"] and scan.unreadable_lines == 1
    assert segment.read_bytes().endswith(b"\n")


def append_many(folder: str, writer: int, count: int) -> None:
    log = RatingLog(Path(folder))

    def run(thread: int) -> None:
        for n in range(count):
            log.append(event(f"w{writer}-t{thread}-{n}", writer * 100 + thread, n + 1, 3.5, 1_000 + n))

    threads = [threading.Thread(target=run, args=(thread,)) for thread in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_processes_and_threads_appending_at_once_leave_every_line_whole(tmp_path):
    processes = [multiprocessing.get_context("spawn").Process(target=append_many, args=(str(tmp_path), writer, 150))
                 for writer in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    scan = RatingLog(tmp_path).scan()
    assert scan.unreadable_lines == 0 and len(scan.events) == 3 * 2 * 150
    lines = [json.loads(line) for path in tmp_path.glob("ratings-*.jsonl") for line in path.read_text().splitlines()]
    assert len(lines) == 900


def test_the_taker_waits_for_an_event_in_flight_and_its_watermark_splits_the_log_exactly(tmp_path):
    log = RatingLog(tmp_path / "events")
    raw = tmp_path / "raw"
    raw.mkdir()
    log.append(event("a", 1, 10, 4.0, 100))
    appended, voided_in_flight = threading.Event(), threading.Event()

    def failing_push() -> None:
        with log.in_flight():
            log.append(failed := event("b", 2, 20, 3.0, 200))
            appended.set()
            time.sleep(0.5)  # the online push that then fails
            log.void(failed, reason="online push failed")
            voided_in_flight.set()

    writer = threading.Thread(target=failing_push)
    writer.start()
    assert appended.wait(30)
    taken = take_live_ratings(log.folder, raw)
    # The taker waited for the writer: it saw the void with its event, so b counts nowhere.
    assert voided_in_flight.is_set() and taken.events == 1
    writer.join()
    log.append(event("c", 3, 30, 5.0, 300))

    marked = Watermark.from_dict(json.loads((raw / WATERMARK_FILE).read_text()))
    assert log.scan(after=marked).after == ["c"]
    assert list(log.scan(until=marked).events) == ["a"]


def test_live_ratings_hold_the_latest_rating_of_each_pair_in_ratings_csv_columns(tmp_path):
    log = RatingLog(tmp_path / "events")
    raw = tmp_path / "raw"
    raw.mkdir()
    log.append(event("1:10:100", 1, 10, 2.0, 100))
    log.append(event("1:10:500", 1, 10, 4.5, 500))  # re-rated later: replaces the first
    log.append(event("1:11:300", 1, 11, 3.0, 300))
    log.append(event("x", 1, 11, 3.5, 300))  # same second, logged later: replaces
    log.append(event("2:10:50", 2, 10, 0.5, 50))
    taken = take_live_ratings(log.folder, raw)
    with (raw / LIVE_RATINGS_FILE).open() as handle:
        rows = list(csv.reader(handle))
    assert rows == [["userId", "movieId", "rating", "timestamp"], ["1", "11", "3.5", "300"], ["1", "10", "4.5", "500"],
                    ["2", "10", "0.5", "50"]]
    assert (taken.events, taken.ratings) == (5, 3)
    # Taking again with nothing new writes the same files.
    before = (raw / LIVE_RATINGS_FILE).read_bytes()
    assert take_live_ratings(log.folder, raw).watermark == taken.watermark
    assert (raw / LIVE_RATINGS_FILE).read_bytes() == before


def test_impressions_are_on_disk_after_a_flush(tmp_path):
    impressions = ImpressionLog(tmp_path, flush_seconds=5)
    for n in range(3):
        impressions.record({"request_id": f"r{n}", "served_at": NOW + n, "user_id": n, "items": []})
    impressions.flush()
    assert [row["request_id"] for row in read_impressions(tmp_path)] == ["r0", "r1", "r2"]
