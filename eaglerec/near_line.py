"""The near-line path: fold a rating event into a user's recent activity and recompute their profile, as dbt does.

dbt computes user_profiles from each user's last USER_HISTORY_SIZE ratings; user_recent_activity holds exactly those.
So a rating event can update both views online at once: the profile recomputed here equals the row dbt would
build after the same ratings (tests prove it on every user of the bundled data).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from eaglerec.contracts.names import LIKED_MOVIE_COUNT, USER_HISTORY_SIZE, select_liked

TOP_GENRES = 5


@dataclass(frozen=True)
class MovieFacts:
    """What a user profile needs of a movie."""

    release_year: int | None
    genres: tuple[str, ...]


def fold_rating(activity: dict, movie_id: int, rating: float, rated_at: int) -> dict:
    """Return the activity with one more rating, kept in (rated_at, movie_id) descending order, capped at 100."""
    ratings = [(at, movie, stars) for at, movie, stars in zip(activity.get("recent_rated_ats") or [],
                                                                activity.get("recent_movie_ids") or [],
                                                                activity.get("recent_ratings") or [])
               if movie != movie_id]  # a re-rating replaces the earlier rating, as in MovieLens
    ratings.append((rated_at, movie_id, rating))
    ratings.sort(reverse=True)
    ratings = ratings[:USER_HISTORY_SIZE]
    return {
        "recent_rated_ats": [at for at, _, _ in ratings],
        "recent_movie_ids": [movie for _, movie, _ in ratings],
        "recent_ratings": [stars for _, _, stars in ratings],
    }


def sample_stddev(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def profile_from_activity(activity: dict, movies: Mapping[int, MovieFacts]) -> dict:
    """Return the user_profiles features of a user whose last ratings are `activity` (most recent first)."""
    movie_ids, ratings = activity["recent_movie_ids"], activity["recent_ratings"]
    years = [movies[movie].release_year for movie in movie_ids if movies[movie].release_year is not None]
    liked = select_liked(movie_ids, ratings)
    genre_counts = Counter(genre for movie in liked for genre in movies[movie].genres)
    genres = [genre for genre, _ in sorted(genre_counts.items(), key=lambda item: (-item[1], item[0]))][:TOP_GENRES]
    liked_movie_ids = liked[:LIKED_MOVIE_COUNT]
    profile = {
        "user_last_rated_at": activity["recent_rated_ats"][0] if movie_ids else None,
        "user_rating_count": len(ratings),
        "user_avg_rating": statistics.fmean(ratings) if ratings else None,
        "user_rating_stddev": sample_stddev(ratings),
        "user_avg_release_year": statistics.fmean(years) if years else None,
        "user_release_year_stddev": sample_stddev([float(year) for year in years]),
        "user_liked_movie_ids": liked_movie_ids,
        "user_genres": genres,
    }
    for rank in range(1, LIKED_MOVIE_COUNT + 1):
        profile[f"user_liked_movie_{rank}"] = liked_movie_ids[rank - 1] if rank <= len(liked_movie_ids) else None
    for rank in range(1, TOP_GENRES + 1):
        profile[f"user_genre_{rank}"] = genres[rank - 1] if rank <= len(genres) else None
    return profile
