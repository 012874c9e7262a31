"""Replay a held-out period as live traffic against the running recommender (loopback only): for each later rating
in time order the user asks POST /recommend, then the rating is posted to POST /events, naming the answer's
request_id when the movie was among those shown. The online metric per variant is the hit rate of the next rating at
k: how often the movie the user rated next was in the k movies shown just before. Bounded in count and time."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ReplayError(Exception):
    """The replay cannot run; the message says why."""


@dataclass
class VariantTally:
    ratings: int = 0
    shown: int = 0  # the rated movie was among the k shown just before
    positives: int = 0
    positives_shown: int = 0

    def hit_rate(self) -> float | None:
        return self.shown / self.ratings if self.ratings else None


@dataclass
class ReplayResult:
    played: int = 0
    refused: dict[int, int] = field(default_factory=dict)  # HTTP status -> count of events not accepted
    by_variant: dict[str, VariantTally] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_early: str | None = None


def post(base: str, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def check_loopback(base: str) -> None:
    host = urllib.parse.urlparse(base).hostname
    if host not in LOOPBACK_HOSTS:
        raise ReplayError(f"{base}: replay only plays against a service on loopback (127.0.0.1), not {host!r}")


def replay(base: str, ratings_csv: Path, k: int = 10, limit: int = 1000, max_seconds: float = 600.0,
           per_user: int | None = None, positive_rating: float = 3.5) -> ReplayResult:
    """Play up to `limit` ratings of ratings_csv (userId, movieId, rating, timestamp) in time order, for at most
    max_seconds; with per_user, each user's first ratings only (a bounded replay then spreads over more users: a
    held-out period is often a few very active users)."""
    check_loopback(base)
    ratings = pd.read_csv(ratings_csv).sort_values(["timestamp", "userId", "movieId"], kind="stable")
    if per_user is not None:
        ratings = ratings.groupby("userId", sort=False).head(per_user)
    ratings = ratings.head(limit)
    result = ReplayResult()
    started = time.monotonic()
    for row in ratings.itertuples(index=False):
        if time.monotonic() - started > max_seconds:
            result.stopped_early = f"time limit of {max_seconds:g} s"
            break
        user, movie, rating, rated_at = int(row.userId), int(row.movieId), float(row.rating), int(row.timestamp)
        status, answer = post(base, "/recommend", {"user_id": user, "k": k, "explain": False})
        if status != 200:
            raise ReplayError(f"/recommend for user {user} answered {status}: {answer}")
        shown = movie in {item["movie_id"] for item in answer["items"]}
        event = {"user_id": user, "movie_id": movie, "rating": rating, "rated_at": rated_at,
                 "event_id": f"replay-{user}-{movie}-{rated_at}"}
        if shown:
            event["request_id"] = answer["request_id"]
        status, accepted = post(base, "/events", event)
        if status != 200:
            result.refused[status] = result.refused.get(status, 0) + 1
            continue
        tally = result.by_variant.setdefault(answer["variant"], VariantTally())
        tally.ratings += 1
        tally.shown += shown
        tally.positives += rating >= positive_rating
        tally.positives_shown += shown and rating >= positive_rating
        result.played += 1
    result.seconds = time.monotonic() - started
    return result
