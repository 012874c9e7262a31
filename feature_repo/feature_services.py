"""Feature services: each model's input contract, versioned (<model>_v<N>)."""

from feast import FeatureService
from feature_views import (
    movie_embeddings_view,
    movie_profiles_view,
    user_embeddings_view,
    user_profiles_view,
    user_recent_activity_view,
)

# Every ranker (EmbeddingMLP, Wide&Deep, NeuralCF, DeepFM, DIN) reads the SparrowRecSys features.
ranker_v1 = FeatureService(
    name="ranker_v1",
    features=[user_profiles_view, movie_profiles_view],
    description="Inputs of the rankers: user and movie features as of the event.",
)

# What the recommender reads for one user in one online call.
user_state_v1 = FeatureService(
    name="user_state_v1",
    features=[user_profiles_view, user_recent_activity_view, user_embeddings_view],
    description="The serving path's one online read for a user.",
)

retrieval_v1 = FeatureService(
    name="retrieval_v1",
    features=[movie_embeddings_view, movie_profiles_view],
    description="Candidate movies' vectors and features for retrieval and ranking.",
)
