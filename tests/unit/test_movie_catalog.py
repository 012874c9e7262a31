"""The service's columnar rating table answers as plain Python grouping and sorting of the same ratings would."""

import numpy as np
import pandas as pd

from bentos.recommender.movie_catalog import Rating, RatingTable


def make_events(seed: int = 11, size: int = 3_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # Few users, movies and seconds, so that ties in time and in rating are common.
    frame = pd.DataFrame({"user_id": rng.integers(1, 60, size), "movie_id": rng.integers(1, 90, size),
                          "rating": rng.integers(1, 11, size) / 2, "rated_at": rng.integers(1_000, 1_050, size)})
    return frame.drop_duplicates(["user_id", "movie_id"]).sample(frac=1.0, random_state=seed)


def test_ratings_by_user_are_oldest_first_with_ties_by_movie():
    events = make_events()
    table = RatingTable.from_frame(events)
    rows = [Rating(int(u), int(m), float(r), int(t)) for u, m, r, t in events.itertuples(index=False)]
    for user_id in range(0, 62):
        expected = sorted((r for r in rows if r.user_id == user_id), key=lambda r: (r.rated_at, r.movie_id))
        assert table.of_user(user_id) == expected
        assert table.has_user(user_id) == bool(expected)


def test_top_ratings_of_a_movie_are_best_then_latest():
    events = make_events()
    table = RatingTable.from_frame(events)
    rows = [Rating(int(u), int(m), float(r), int(t)) for u, m, r, t in events.itertuples(index=False)]
    for movie_id in range(0, 92):
        expected = sorted((r for r in rows if r.movie_id == movie_id),
                          key=lambda r: (-r.rating, -r.rated_at, r.user_id))
        for count in (1, 10, 1_000):
            assert table.top_of_movie(movie_id, count) == expected[:count]
