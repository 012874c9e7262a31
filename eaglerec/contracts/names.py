"""Names and thresholds every stage agrees on (ARCHITECTURE.md, "Contracts"). Registered models and experiments are
per kind of model, in the catalogue (models.toml)."""

# A rating at or above this is a positive: the rankers' label, and a liked movie everywhere (dbt var
# positive_rating_threshold; a contract test compares them).
POSITIVE_RATING = 3.5
# "The user's last liked movies": how many a user profile keeps (user_liked_movie_1..N, most recent first).
LIKED_MOVIE_COUNT = 5
# A user profile looks back over this many ratings at most (dbt var user_history_size; user_recent_activity).
USER_HISTORY_SIZE = 100

# Registry aliases: the served model, and the one the A/B test tries against it.
CHAMPION, CHALLENGER = "champion", "challenger"
# A served model is refit on all ratings (the kind's `refit` in the catalogue). The version evaluated on test keeps
# the alias and the gate's comparisons; its tag REFIT_VERSION_TAG names the version refit from its configuration,
# which is what the service loads; that version's REFIT_OF_TAG names the evaluated one back.
REFIT_VERSION_TAG, REFIT_OF_TAG = "refit_version", "refit_of"
# Run tags: the catalogue model a run trained, and the test set its figures are on.
MODEL_TAG = "model"
TEST_SET_TAG = "test_set"
# Logged beside every ranker: the vocabularies and statistics its inputs are encoded with.
ENCODER_ARTIFACT = "feature_encoder.json"
COMPARISON_EXPERIMENT = "eaglerec-comparisons"

# Feast feature services: the rankers' inputs, the serving path's one read of a user, and its read of every movie.
RANKER_SERVICE = "ranker_v1"
USER_STATE_SERVICE = "user_state_v1"
MOVIE_STATE_SERVICE = "movie_state_v1"

# Every run's test answers, unit by unit (rankers: each test example's score; retrievers: each test user's metrics),
# logged as this artifact: the champion gate pairs two runs on them without re-scoring a model.
TEST_ANSWERS_ARTIFACT = "evaluation/test_answers.parquet"

# Written by the raw gate into a dataset's raw folder when every file passed: the files' checksums.
RAW_GATE_RECORD = "_gate.json"
# What the raw gate does with rows that break a row rule: stop the run (the default), or drop them into a quarantine
# file and go on, unless they are more than MAX_INVALID_SHARE of a file (a broken release, not a few bad rows).
INVALID_ROWS_POLICIES = ("stop", "drop")
MAX_INVALID_SHARE = 0.01


def select_liked(movie_ids, ratings) -> list[int]:
    """The liked movies (rating >= POSITIVE_RATING) of ratings given most recent first, in that order."""
    return [int(movie) for movie, rating in zip(movie_ids, ratings, strict=True) if rating >= POSITIVE_RATING]
