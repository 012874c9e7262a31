"""Feature services: each model's input contract, versioned (<model>_v<N>)."""

from feast import FeatureService
from feature_views import movie_profiles_view, user_profiles_view, user_recent_activity_view

# Every ranker reads the SparrowRecSys features (eaglerec.contracts.features lists them).
ranker_v1 = FeatureService(
    name="ranker_v1",
    features=[user_profiles_view, movie_profiles_view],
    description="Inputs of the rankers: user and movie features as of the event.",
)

# What the recommender reads for one user in one online call.
user_state_v1 = FeatureService(
    name="user_state_v1",
    features=[user_profiles_view, user_recent_activity_view],
    description="The serving path's one online read for a user: profile and last ratings.",
)

# What the recommender reads of every movie at start-up.
movie_state_v1 = FeatureService(
    name="movie_state_v1",
    features=[movie_profiles_view],
    description="The serving path's read of every movie's latest features, once at start-up.",
)
