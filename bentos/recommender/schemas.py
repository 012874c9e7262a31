"""Request and response schemas of the recommender's JSON API; the sample requests double as API examples and test
inputs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Ids are positive 32-bit integers (MovieLens ids; Feast entities are INT32).
Id = Field(ge=1, le=2**31 - 1)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(Strict):
    user_id: int = Id
    k: int = Field(10, ge=1, le=100)
    variant: str | None = Field(None, description="force an A/B variant (champion or challenger)")
    ranker: str | None = Field(None, max_length=32,
                               description="rank with the latest version of this ranker kind (e.g. din) instead")
    explain: bool = True


class SimilarRequest(Strict):
    movie_id: int = Id
    k: int = Field(10, ge=1, le=100)


class RatingEvent(Strict):
    user_id: int = Id
    movie_id: int = Id
    rating: float = Field(ge=0.5, le=5.0, description="half stars, 0.5 to 5.0")
    rated_at: int | None = Field(None, ge=0, le=2**40, description="epoch seconds; default now")


class RecommendedMovie(BaseModel):
    movie_id: int
    title: str
    release_year: int | None
    genres: list[str]
    score: float
    retriever: str
    reason: str | None = None


class Recommendations(BaseModel):
    user_id: int
    variant: str
    cold_start: bool
    ranker: str | None
    candidates: int = Field(description="movies ranked (after retrieval and dropping rated ones)")
    degraded: bool = Field(description="the online store did not answer: user state recomputed from memory")
    items: list[RecommendedMovie]


class ErrorBody(BaseModel):
    error: str
    detail: list | dict | None = None


SAMPLE_RECOMMEND = RecommendRequest(user_id=1, k=10)
SAMPLE_SIMILAR = SimilarRequest(movie_id=1, k=10)
SAMPLE_EVENT = RatingEvent(user_id=1, movie_id=1, rating=4.5)
