"""SparrowRecSys's JSON shapes (field names as its Jackson output), so its own web client works against this API."""

from __future__ import annotations

from bentos.recommender.movie_catalog import MovieCatalog, split_title
from bentos.recommender.queries import describe_movie


def sparrow_rating(rating: dict) -> dict:
    return {"movieId": rating["movie_id"], "userId": rating["user_id"], "score": rating["rating"],
            "timestamp": rating["rated_at"]}


def sparrow_movie(catalog: MovieCatalog, movie_id: int) -> dict:
    movie = describe_movie(catalog, movie_id)
    return {"movieId": movie["movie_id"], "title": split_title(movie["title"]), "releaseYear": movie["release_year"],
            "imdbId": movie["imdb_id"], "tmdbId": movie["tmdb_id"], "genres": movie["genres"],
            "ratingNumber": movie["rating_count"], "averageRating": movie["average_rating"] or 0.0,
            "topRatings": [{"rating": sparrow_rating(r)} for r in movie["top_ratings"]]}


def sparrow_movies(catalog: MovieCatalog, answer: dict) -> list[dict]:
    """The movies of a native answer (its `items`) as SparrowRecSys movies."""
    return [sparrow_movie(catalog, item["movie_id"]) for item in answer["items"]]


def sparrow_user(user: dict) -> dict:
    return {"userId": user["user_id"], "averageRating": user["average_rating"],
            "highestRating": user["highest_rating"], "lowestRating": user["lowest_rating"],
            "ratingCount": user["rating_count"],
            "ratings": [{"rating": sparrow_rating(r)} for r in reversed(user["history"])]}
