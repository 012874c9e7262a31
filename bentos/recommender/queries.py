"""Catalogue queries (the site's and SparrowRecSys's): a movie, a user, a genre's movies, a title search, the genres,
and similar movies (the champion retriever's, or by shared genres when it knows nothing of the movie)."""

from __future__ import annotations

import math

import numpy as np

from bentos.recommender.errors import InvalidRequestError, NotFoundError
from bentos.recommender.models import LoadedRetriever
from bentos.recommender.movie_catalog import MovieCatalog, Rating, top_ratings
from eaglerec.contracts.names import POSITIVE_RATING

GENRE_SORTS = ("rating", "year", "popularity")
# At least this many ratings for a movie to rank by its average (a 5.0 from one rating says little).
MIN_RATINGS_TO_RANK = 10


def none_if_nan(value, cast):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else cast(value)


def rating_dict(rating: Rating) -> dict:
    return {"movie_id": rating.movie_id, "user_id": rating.user_id, "rating": rating.rating,
            "rated_at": rating.rated_at}


def summarise_movie(catalog: MovieCatalog, position: int) -> dict:
    summary = catalog.summaries[position]
    return {**summary, "genres": list(summary["genres"])}


def position_of(catalog: MovieCatalog, movie_id: int) -> int:
    if not catalog.has_movie(movie_id):
        raise NotFoundError(f"movie_id {movie_id}: not in movie_catalog")
    return catalog.position[movie_id]


def check_k(k: int, max_k: int) -> int:
    if not 1 <= k <= max_k:
        raise InvalidRequestError(f"k={k}: expected 1 to {max_k}")
    return k


def find_similar(catalog: MovieCatalog, retriever: LoadedRetriever, movie_id: int, k: int,
                 use_retriever: bool = True) -> dict:
    """The retriever's movies next to this one; movies sharing the most genres (then popularity) when it knows
    nothing of the movie or when asked to."""
    position = position_of(catalog, movie_id)
    found = retriever.retriever.similar(movie_id, k) if use_retriever else None
    if found is not None and len(found):
        positions, scores, method = catalog.positions_of(found.movie_ids), found.scores, "retriever"
        scores = scores[np.isin(found.movie_ids, catalog.movie_ids)]
    else:
        genres = set(catalog.movies["genres"].iat[position])
        overlap = np.array([len(genres & set(g)) / max(len(genres | set(g)), 1) for g in catalog.movies["genres"]])
        all_scores = overlap + 1e-3 * np.log1p(catalog.popularity)
        all_scores[position] = -np.inf
        positions = np.argsort(-all_scores, kind="stable")[:k]
        scores, method = all_scores[positions], "genre"
    return {"movie_id": movie_id, "method": method,
            "items": [{**summarise_movie(catalog, int(p)), "score": float(s)} for p, s in zip(positions, scores)]}


def describe_movie(catalog: MovieCatalog, movie_id: int) -> dict:
    position = position_of(catalog, movie_id)
    movies = catalog.movies
    return {**summarise_movie(catalog, position),
            "imdb_id": imdb if isinstance(imdb := movies["imdb_id"].iat[position], str) else None,
            "tmdb_id": none_if_nan(movies["tmdb_id"].iat[position], int),
            "rating_count": int(movies["rating_count"].iat[position]),
            "average_rating": none_if_nan(movies["average_rating"].iat[position], float),
            "top_ratings": [rating_dict(r) for r in top_ratings(catalog, movie_id)]}


def describe_user(catalog: MovieCatalog, user_id: int, state: dict, variant: str, history: int = 50) -> dict:
    ratings = catalog.user_ratings(user_id)
    if not ratings and state.get("user_rating_count") is None:
        raise NotFoundError(f"user_id {user_id}: no ratings and no online state")
    scores = [r.rating for r in ratings]
    genre_counts: dict[str, int] = {}
    for rating in ratings:
        if rating.rating >= POSITIVE_RATING and rating.movie_id in catalog.position:
            for genre in catalog.movies["genres"].iat[catalog.position[rating.movie_id]]:
                genre_counts[genre] = genre_counts.get(genre, 0) + 1
    return {"user_id": user_id, "rating_count": len(ratings),
            "average_rating": float(np.mean(scores)) if scores else None,
            "highest_rating": max(scores, default=None), "lowest_rating": min(scores, default=None),
            "favourite_genres": [g for g, _ in sorted(genre_counts.items(), key=lambda x: (-x[1], x[0]))[:5]],
            "variant": variant,
            "history": [{**rating_dict(r), "title": catalog.movies["title"].iat[catalog.position[r.movie_id]]}
                        for r in reversed(ratings[-history:]) if r.movie_id in catalog.position]}


def list_genre(catalog: MovieCatalog, genre: str, sort: str, k: int) -> dict:
    if sort not in GENRE_SORTS:
        raise InvalidRequestError(f"sort={sort!r}: expected one of {', '.join(GENRE_SORTS)}")
    if genre not in catalog.genre_movies:
        raise NotFoundError(f"genre {genre!r}: expected one of {', '.join(sorted(catalog.genre_movies))}")
    positions = catalog.genre_movies[genre]  # most popular first
    movies = catalog.movies
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
        {**summarise_movie(catalog, p), "rating_count": int(movies["rating_count"].iat[p]),
         "average_rating": none_if_nan(movies["average_rating"].iat[p], float)} for p in positions[:k]]}


def search_titles(catalog: MovieCatalog, query: str, k: int) -> dict:
    """Movies whose title contains every word of the query (case-insensitive); titles starting with the query
    first, then the most liked."""
    words = query.casefold().split()
    if not words:
        raise InvalidRequestError("q: expected at least one word")
    titles = catalog.movies["title"].str.casefold()
    matches = np.ones(len(titles), dtype=bool)
    for word in words:
        matches &= titles.str.contains(word, regex=False).to_numpy()
    positions = np.flatnonzero(matches)
    starts = titles.to_numpy()[positions].astype(str)
    prefix = np.char.startswith(starts, " ".join(words))
    order = np.lexsort((-catalog.popularity[positions], ~prefix))
    return {"query": query, "total": int(len(positions)),
            "items": [summarise_movie(catalog, positions[i]) for i in order[:k]]}


def list_genres(catalog: MovieCatalog) -> dict:
    """Every genre with its number of movies, most movies first."""
    return {"genres": [{"genre": genre, "movies": int(len(positions))} for genre, positions in
                       sorted(catalog.genre_movies.items(), key=lambda item: (-len(item[1]), item[0]))]}
