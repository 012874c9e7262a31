"""The entities features are keyed by."""

from feast import Entity, ValueType

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT32, description="A MovieLens user.")
movie = Entity(name="movie", join_keys=["movie_id"], value_type=ValueType.INT32, description="A MovieLens movie.")
