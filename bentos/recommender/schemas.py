"""Request and response schemas of the recommender's JSON API (every route is typed; OpenAPI shows them); the sample
requests double as API examples and test inputs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Ids are positive 32-bit integers (MovieLens ids; Feast entities are INT32).
Id = Field(ge=1, le=2**31 - 1)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(Strict):
    user_id: int = Id
    k: int = Field(10, ge=1, le=100)
    variant: str | None = Field(None, description="force an A/B variant (champion or challenger)")
    ranker: str | None = Field(None, max_length=32,
                               description="rank with the latest version of this ranker (a catalogue name, e.g. din) "
                                           "instead")
    explain: bool = True


class SimilarRequest(Strict):
    movie_id: int = Id
    k: int = Field(10, ge=1, le=100)


class RatingEvent(Strict):
    user_id: int = Id
    movie_id: int = Id
    rating: float = Field(ge=0.5, le=5.0, description="half stars, 0.5 to 5.0")
    rated_at: int | None = Field(None, ge=0, le=2**40, description="epoch seconds; default now")
    event_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._:-]{1,64}$",
                                 description="the client's idempotency key: a retry with the same id is recorded once "
                                             "(default: user_id:movie_id:rated_at)")
    request_id: str | None = Field(None, pattern=r"^[A-Za-z0-9-]{1,64}$",
                                   description="the recommendation answer (its request_id) that showed this movie")


class Movie(BaseModel):
    movie_id: int
    title: str
    release_year: int | None
    genres: list[str]


class RecommendedMovie(Movie):
    score: float
    retriever: str = Field(description="the candidate source that proposed it (retriever, similar_to_liked, "
                                       "genre_popular, fresh; popularity for cold start)")
    reason: str | None = None


class Recommendations(BaseModel):
    user_id: int
    variant: str
    cold_start: bool
    ranker: str | None
    candidates: int = Field(description="movies ranked (after retrieval and dropping rated ones)")
    degraded: bool = Field(description="the online store did not answer: user state recomputed from memory")
    items: list[RecommendedMovie]
    request_id: str = Field(description="names this answer in the impression log (also the X-Request-ID header); a "
                                        "rating of a movie it showed may send it back")
    retriever_model: str = Field(description="the retriever that proposed candidates, e.g. two_tower v5")


class SimilarMovie(Movie):
    score: float


class SimilarMovies(BaseModel):
    movie_id: int
    method: str = Field(description="retriever (the champion retriever's neighbours) or genre (shared genres)")
    items: list[SimilarMovie]


class RatingRecord(BaseModel):
    movie_id: int
    user_id: int
    rating: float
    rated_at: int


class MovieDetails(Movie):
    imdb_id: str | None
    tmdb_id: int | None
    rating_count: int
    average_rating: float | None
    top_ratings: list[RatingRecord]


class HistoryRating(RatingRecord):
    title: str


class UserProfile(BaseModel):
    user_id: int
    rating_count: int
    average_rating: float | None
    highest_rating: float | None
    lowest_rating: float | None
    favourite_genres: list[str]
    variant: str
    history: list[HistoryRating]


class GenreMovie(Movie):
    rating_count: int
    average_rating: float | None


class GenreMovies(BaseModel):
    genre: str
    sort: str
    items: list[GenreMovie]


class SearchResults(BaseModel):
    query: str
    total: int
    items: list[Movie]


class GenreCount(BaseModel):
    genre: str
    movies: int


class Genres(BaseModel):
    genres: list[GenreCount]


class EventAccepted(BaseModel):
    accepted: bool
    duplicate: bool = Field(description="this event_id was recorded before: nothing changed")
    event_id: str
    user_id: int
    movie_id: int
    rating: float
    rated_at: int
    request_id: str | None
    user_rating_count: int | None = Field(description="ratings in the user's profile window (None for a duplicate)")


class ReloadResult(BaseModel):
    before: dict[str, str]
    after: dict[str, str]
    workers: int = Field(description="the service's worker processes: every one serves `after`")


class Readiness(BaseModel):
    ready: bool
    degraded: bool
    online_store: str
    models: dict[str, str]


class ErrorBody(BaseModel):
    error: str
    detail: list | dict | None = None


# SparrowRecSys's shapes: its camelCase field names.

class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class SparrowRating(Camel):
    movie_id: int
    user_id: int
    score: float
    timestamp: int


class SparrowRatingEntry(Camel):
    rating: SparrowRating


class SparrowMovie(Camel):
    movie_id: int
    title: str
    release_year: int | None
    imdb_id: str | None
    tmdb_id: int | None
    genres: list[str]
    rating_number: int
    average_rating: float
    top_ratings: list[SparrowRatingEntry]


class SparrowUser(Camel):
    user_id: int
    average_rating: float | None
    highest_rating: float | None
    lowest_rating: float | None
    rating_count: int
    ratings: list[SparrowRatingEntry]


SAMPLE_RECOMMEND = RecommendRequest(user_id=1, k=10)
SAMPLE_SIMILAR = SimilarRequest(movie_id=1, k=10)
SAMPLE_EVENT = RatingEvent(user_id=1, movie_id=1, rating=4.5)
