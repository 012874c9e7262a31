"""Feature views: one per mart, with the same name."""

from datetime import timedelta

from data_sources import movie_profiles_source, user_profiles_push_source, user_recent_activity_push_source
from entities import movie, user
from feast import FeatureView, Field
from feast.types import Array, Float64, Int32, Int64, String

# Rows are as-of states valid until the next one, so they never expire (0 = no TTL in Feast).
NO_EXPIRY = timedelta(0)

user_profiles_view = FeatureView(
    name="user_profiles",
    description="SparrowRecSys user features over the previous 100 ratings, as of a time (dbt mart user_profiles).",
    entities=[user],
    ttl=NO_EXPIRY,
    source=user_profiles_push_source,
    schema=[
        Field(name="user_last_rated_at", dtype=Int64),
        Field(name="user_rating_count", dtype=Int64),
        Field(name="user_avg_rating", dtype=Float64),
        Field(name="user_rating_stddev", dtype=Float64),
        Field(name="user_avg_release_year", dtype=Float64),
        Field(name="user_release_year_stddev", dtype=Float64),
        Field(name="user_liked_movie_ids", dtype=Array(Int32)),
        Field(name="user_genres", dtype=Array(String)),
        *[Field(name=f"user_liked_movie_{rank}", dtype=Int32) for rank in range(1, 6)],
        *[Field(name=f"user_genre_{rank}", dtype=String) for rank in range(1, 6)],
    ],
)

movie_profiles_view = FeatureView(
    name="movie_profiles",
    description="Movie attributes and rating statistics as of a time (dbt mart movie_profiles).",
    entities=[movie],
    ttl=NO_EXPIRY,
    source=movie_profiles_source,
    schema=[
        Field(name="movie_last_rated_at", dtype=Int64),
        Field(name="release_year", dtype=Int32),
        Field(name="movie_genre_1", dtype=String),
        Field(name="movie_genre_2", dtype=String),
        Field(name="movie_genre_3", dtype=String),
        Field(name="movie_rating_count", dtype=Int64),
        Field(name="movie_avg_rating", dtype=Float64),
        Field(name="movie_rating_stddev", dtype=Float64),
    ],
)

user_recent_activity_view = FeatureView(
    name="user_recent_activity",
    description="The user's last 100 ratings, most recent first; rating events push updates (near-line path).",
    entities=[user],
    ttl=NO_EXPIRY,
    source=user_recent_activity_push_source,
    schema=[
        Field(name="recent_movie_ids", dtype=Array(Int32)),
        Field(name="recent_ratings", dtype=Array(Float64)),
        Field(name="recent_rated_ats", dtype=Array(Int64)),
    ],
)
