"""The recommendation service on the bundled data with a real registry (MLflow server) and a real Feast online store:
in-process through RecommendationEngine, and over HTTP against `bentoml serve` and the built bento."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from bentos.recommender.candidates import retrieve_candidates
from bentos.recommender.queries import describe_user, find_similar, list_genre
from eaglerec.feature_store import OnlineReader, open_feature_store
from eaglerec.settings import REPO_ROOT
from tests.services import (
    ADMIN_TOKEN,
    CHALLENGER_SHARE,
    MAX_PER_GENRE,
    call,
    start_service,
    stop_service,
    without_request_id,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Users the in-process tests post ratings for: ids the bundled data does not have.
NEW_USER, HTTP_NEW_USER, CONCURRENT_USER, TWO_WORKERS_USER = 900_001, 900_002, 900_003, 900_004


@pytest.fixture(scope="module")
def engine(serving_registry):
    from bentos.recommender.engine import RecommendationEngine, ServingConfig

    return RecommendationEngine(ServingConfig(serving_registry["home"], serving_registry["uri"], max_k=100,
                                              max_per_genre=MAX_PER_GENRE, challenger_share=CHALLENGER_SHARE,
                                              experiment="test-ab", admin_token=ADMIN_TOKEN,
                                              ranker_model="eaglerec-ranker", retriever_model="eaglerec-retriever"))


@pytest.fixture(scope="module")
def events(built_paths) -> pd.DataFrame:
    return pd.read_parquet(built_paths.marts / "rating_events.parquet")


@pytest.fixture(scope="module")
def catalog(built_paths) -> pd.DataFrame:
    return pd.read_parquet(built_paths.marts / "movie_catalog.parquet").set_index("movie_id")


# --- in-process ---------------------------------------------------------------------------------------------------

def test_recommendations_never_include_a_rated_movie_and_cap_each_genre(engine, events, catalog):
    rated = events.groupby("user_id")["movie_id"].agg(set)
    for user_id in rated.index[:40]:
        answer = engine.recommend(int(user_id), k=10)
        movies = [item["movie_id"] for item in answer["items"]]
        assert len(movies) == 10 == len(set(movies)) and not answer["cold_start"]
        assert not set(movies) & rated[user_id], f"user {user_id} was recommended a movie they rated"
        primary = pd.Series([catalog.at[m, "genres"][0] for m in movies]).value_counts()
        assert primary.max() <= MAX_PER_GENRE
        assert all(item["reason"] and item["retriever"] for item in answer["items"])


def test_served_scores_equal_the_registered_model_fed_through_feast_sdk(engine, serving_registry, catalog):
    """Second path: the model loaded from the registry, the user's features from Feast's get_online_features, the
    movies' features from their own online read, the encoder logged with the run, and Keras predict()."""
    from eaglerec.contracts.encoding import FeatureEncoder
    from eaglerec.contracts.features import MOVIE_FEATURES, USER_FEATURES

    user_id = 414
    answer = engine.recommend(user_id, k=10, variant="champion")
    version = serving_registry["rankers"]["din"]
    model = mlflow.tensorflow.load_model(f"models:/eaglerec-ranker/{version.version}")
    encoder = FeatureEncoder.from_dict(mlflow.artifacts.load_dict(f"runs:/{version.run_id}/feature_encoder.json"))
    store = open_feature_store(serving_registry["home"], "sqlite")
    movie_ids = [item["movie_id"] for item in answer["items"]]
    user = store.get_online_features(features=[f"user_profiles:{f.name}" for f in USER_FEATURES if f.kind != "user"],
                                     entity_rows=[{"user_id": user_id}]).to_df()
    movies = store.get_online_features(features=[f"movie_profiles:{f.name}" for f in MOVIE_FEATURES
                                                 if f.kind != "movie"],
                                       entity_rows=[{"movie_id": m} for m in movie_ids]).to_df()
    frame = movies.assign(**{column: user.at[0, column] for column in user.columns if column != "user_id"},
                          user_id=user_id)
    expected = model.predict(encoder.encode(frame), verbose=0).ravel()
    np.testing.assert_allclose([item["score"] for item in answer["items"]], expected, rtol=1e-4, atol=1e-6)
    assert answer["ranker"] == f"din v{version.version}"


def test_one_packed_ranker_call_scores_each_candidate_as_its_own_call_would(engine, catalog):
    """The served call (candidate positions into the movie inputs the compiled function holds, the user's side
    packed and repeated in the graph) against the model called once per candidate with every input spelled out."""
    from eaglerec.contracts.features import FEATURES, MOVIE_FEATURES, USER_FEATURES

    movie_inputs = None
    for ranker in {id(r): r for r in (*engine.snapshot.models.rankers.values(),
                                       *engine.snapshot.models.named_rankers.values())}.values():
        movie_inputs = ranker.encoder.encode(engine.snapshot.catalog.features, MOVIE_FEATURES)
        user = ranker.encoder.encode_row({**engine.read_user_state(414), "user_id": 414}, USER_FEATURES)
        positions = np.random.default_rng(3).choice(len(catalog), 60, replace=False)
        batched = ranker.score(user, positions)
        one_by_one = [float(np.asarray(ranker.score_batch(
            {f.name: (movie_inputs | user)[f.name][[p] if f.name in movie_inputs else [0]] for f in FEATURES}))[0, 0])
            for p in positions]
        np.testing.assert_allclose(batched, one_by_one, rtol=1e-5, atol=1e-6, err_msg=ranker.label)
    assert movie_inputs is not None


def test_the_candidates_of_kept_neighbours_equal_a_fresh_search(engine, events):
    """similar_to_liked keeps each movie's neighbours once found (per snapshot): a request served from them proposes
    the candidates a request that searches afresh would."""
    from bentos.recommender.candidates import LIKED_MOVIE_COUNT, Neighbours, SimilarToLikedSource

    snapshot, liked = engine.snapshot, []
    count = next(source.count for source in engine.sources if isinstance(source, SimilarToLikedSource))
    for user_id in events["user_id"].drop_duplicates().sample(20, random_state=4):
        kept = engine.candidate_request(snapshot, int(user_id), engine.read_user_state(int(user_id)))
        fresh = dataclasses.replace(kept, neighbours=Neighbours(snapshot.catalog, kept.retriever))
        first, again, searched = (retrieve_candidates(request, engine.sources, 800) for request in (kept, kept, fresh))
        for proposed in (again, searched):
            np.testing.assert_array_equal(proposed.positions, first.positions)
            np.testing.assert_array_equal(proposed.proposers, first.proposers)
        liked += [movie_id for movie_id in kept.user.liked_movie_ids[:LIKED_MOVIE_COUNT]
                  if snapshot.catalog.has_movie(movie_id)]
    kept_before = dict(snapshot.neighbours.found)
    assert len(liked) >= 20 and all((movie_id, count) in kept_before for movie_id in liked)
    assert all(snapshot.neighbours.positions(movie_id, count) is kept_before[movie_id, count] for movie_id in liked)


def test_the_online_reader_equals_feast_get_online_features(serving_registry):
    store = open_feature_store(serving_registry["home"], "sqlite")
    reader = OnlineReader(store, "user_state_v1")
    for user_id in (1, 77, 610, 10**6):
        expected = store.get_online_features(features=store.get_feature_service("user_state_v1"),
                                             entity_rows=[{"user_id": user_id}]).to_dict()
        fast = reader.read(user_id)
        for name, values in expected.items():
            if name != "user_id":
                assert fast.get(name) == values[0], (user_id, name)


def test_an_unknown_user_gets_a_popular_genre_diverse_cold_start_list(engine, events, catalog):
    answer = engine.recommend(10**8, k=12)
    assert answer["cold_start"] and answer["ranker"] is None and len(answer["items"]) == 12
    positives = events[events.rating >= 3.5].movie_id.value_counts()
    movies = [item["movie_id"] for item in answer["items"]]
    assert movies[0] == positives.index[0]  # the most liked movie leads
    assert all(positives[m] >= positives.iloc[200] for m in movies)  # all among the most liked
    assert pd.Series([catalog.at[m, "genres"][0] for m in movies]).value_counts().max() <= MAX_PER_GENRE


def test_a_rating_event_changes_the_next_recommendation(engine, catalog):
    before = engine.recommend(NEW_USER, k=10)
    assert before["cold_start"]
    liked = 4993  # The Lord of the Rings: The Fellowship of the Ring
    engine.events.record(engine.snapshot.catalog, NEW_USER, liked, 5.0)
    after = engine.recommend(NEW_USER, k=10)
    movies = [item["movie_id"] for item in after["items"]]
    assert not after["cold_start"] and liked not in movies
    assert movies != [item["movie_id"] for item in before["items"]]
    # The liked movie now seeds retrieval: the retriever's movies next to it are candidates, explained by it.
    state = engine.read_user_state(NEW_USER)
    proposed = retrieve_candidates(engine.candidate_request(engine.snapshot, NEW_USER, state), engine.sources, 800)
    reasons = {proposed.explain(index) for index in range(len(proposed.positions))}
    assert ("similar_to_liked", f"because you liked {catalog.at[liked, 'title']}") in reasons
    assert describe_user(engine.snapshot.catalog, NEW_USER, state, "champion")["history"][0]["movie_id"] == liked


def test_concurrent_ratings_of_one_user_are_each_folded_once(engine, catalog):
    """Sixteen ratings of one user from eight threads: the single writer folds them one after another, so none
    overwrites another's fold and the answers count 1 to 16, each once."""
    movies = catalog.index[:16].tolist()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda movie: engine.events.record(engine.snapshot.catalog, CONCURRENT_USER, movie,
                                                                   4.0), movies))
    assert sorted(answer["user_rating_count"] for answer in answers) == list(range(1, 17))
    state = engine.read_user_state(CONCURRENT_USER)
    assert sorted(state["recent_movie_ids"]) == sorted(movies) and state["user_rating_count"] == 16
    logged = engine.events.log.scan().events
    assert sorted(e.movie_id for e in logged.values() if e.user_id == CONCURRENT_USER) == sorted(movies)


def test_two_workers_agree_on_keys_and_fold_one_users_ratings_one_after_the_other(engine, catalog):
    """A second worker's recorder (its own writer thread, log instance and memory; one process stands for two:
    the commit lock is an flock per descriptor): ratings of one user taken by both at once are each folded once,
    a key one logged is a duplicate (or a conflict) at the other, and each holds the other's ratings."""
    from bentos.recommender.errors import ConflictError
    from bentos.recommender.events import EventRecorder
    from bentos.recommender.user_state import UserStateReader
    from eaglerec.event_log import RatingLog, Watermark
    from eaglerec.feature_store import load_movie_facts

    paths, store = engine.config.paths, engine.store
    facts = load_movie_facts(paths)
    other = EventRecorder(store, facts, RatingLog(paths.events), UserStateReader(store, facts))
    other.replay(Watermark.read(paths.marts))
    workers, movies = (engine.events, other), catalog.index[20:36].tolist()

    def record(index: int) -> dict:
        return workers[index % 2].record(engine.snapshot.catalog, TWO_WORKERS_USER, movies[index], 4.0,
                                         event_id=f"two-workers-{index}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(record, range(16)))
    assert sorted(answer["user_rating_count"] for answer in answers) == list(range(1, 17))
    assert engine.read_user_state(TWO_WORKERS_USER)["user_rating_count"] == 16

    for worker in workers:
        worker.catch_up()
        assert sorted(r.movie_id for r in worker.live.of(TWO_WORKERS_USER)) == sorted(movies)
    # A key one worker just logged, sent to the other (which has not read it yet): a duplicate there too, and a
    # conflict with other values; neither is logged again.
    retry = {"user_id": TWO_WORKERS_USER, "movie_id": movies[0], "event_id": "two-workers-retry"}
    first = engine.events.record(engine.snapshot.catalog, rating=3.5, **retry)
    assert "two-workers-retry" not in other.recorded
    again = other.record(engine.snapshot.catalog, rating=3.5, **retry)
    assert again["duplicate"] and not first["duplicate"] and again["rated_at"] == first["rated_at"]
    conflicting = {**retry, "event_id": "two-workers-conflict"}
    other.record(engine.snapshot.catalog, rating=3.0, **conflicting)
    with pytest.raises(ConflictError, match="two-workers-conflict"):
        engine.events.record(engine.snapshot.catalog, rating=1.0, **conflicting)
    logged = [e for e in engine.events.log.scan().events.values() if e.user_id == TWO_WORKERS_USER]
    assert len(logged) == 18 and sorted(e.movie_id for e in logged[:16]) == sorted(movies)


@pytest.mark.parametrize("event, message", [
    ({"user_id": 5, "movie_id": 10**7, "rating": 4.0}, "movie_id 10000000: not in movie_catalog"),
    ({"user_id": 5, "movie_id": 1, "rating": 4.2}, "rating 4.2: expected 0.5 to 5.0 in half stars"),
    ({"user_id": 5, "movie_id": 1, "rating": 4.0, "rated_at": 2 * 10**9}, "rated_at 2000000000"),
])
def test_bad_events_are_refused_and_change_nothing(engine, event, message):
    from bentos.recommender.errors import InvalidRequestError, NotFoundError

    before = engine.read_user_state(event["user_id"])
    with pytest.raises((InvalidRequestError, NotFoundError), match=message):
        engine.events.record(engine.snapshot.catalog, **event)
    assert engine.read_user_state(event["user_id"]) == before


def test_ab_buckets_are_stable_and_close_to_the_configured_share(engine):
    from bentos.recommender.engine import assign_variant

    variants = [assign_variant(user, "test-ab", CHALLENGER_SHARE) for user in range(1, 20_001)]
    share = variants.count("challenger") / len(variants)
    assert abs(share - CHALLENGER_SHARE) < 0.015  # 3.3 standard deviations of a binomial share
    assert variants == [assign_variant(user, "test-ab", CHALLENGER_SHARE) for user in range(1, 20_001)]
    assert [assign_variant(u, "other-experiment", 0.3) for u in range(1, 2001)] != variants[:2000]
    for user_id in (1, 2, 3, 4, 5, 6):
        answer = engine.recommend(user_id, k=3)
        assert answer["variant"] == variants[user_id - 1]
        assert answer["ranker"].startswith("din" if answer["variant"] == "champion" else "neural_cf")


def test_similar_movies_by_the_retriever_and_by_genre(engine, catalog):
    snapshot = engine.snapshot
    by_retriever = find_similar(snapshot.catalog, snapshot.models.retriever, 1, 8)
    assert by_retriever["method"] == "retriever" and len(by_retriever["items"]) == 8
    assert [item["movie_id"] for item in by_retriever["items"]] == \
        snapshot.models.retriever.retriever.similar(1, 8).movie_ids.tolist()
    assert 1 not in [item["movie_id"] for item in by_retriever["items"]]
    scores = [item["score"] for item in by_retriever["items"]]
    assert scores == sorted(scores, reverse=True)
    by_genre = find_similar(snapshot.catalog, snapshot.models.retriever, 1, 8, use_retriever=False)
    toy_story = set(catalog.at[1, "genres"])
    assert by_genre["method"] == "genre"
    assert all(set(item["genres"]) & toy_story for item in by_genre["items"])


def test_genre_lists_sort_as_asked(engine, events):
    by_rating = list_genre(engine.snapshot.catalog, "Comedy", "rating", 20)["items"]
    averages = [item["average_rating"] for item in by_rating]
    assert averages == sorted(averages, reverse=True) and all(item["rating_count"] >= 10 for item in by_rating)
    years = [item["release_year"] for item in list_genre(engine.snapshot.catalog, "Comedy", "year", 20)["items"]]
    assert years == sorted(years, reverse=True)


def test_sparrowrecsys_movie_json_has_its_fields_and_the_ten_highest_ratings(engine, events):
    from bentos.recommender.sparrowrecsys import sparrow_movie

    movie = sparrow_movie(engine.snapshot.catalog, 1)
    assert set(movie) == {"movieId", "title", "releaseYear", "imdbId", "tmdbId", "genres", "ratingNumber",
                          "averageRating", "topRatings"}
    assert movie["title"] == "Toy Story" and movie["releaseYear"] == 1995
    ratings = events[events.movie_id == 1]
    assert movie["ratingNumber"] == len(ratings) and movie["averageRating"] == pytest.approx(ratings.rating.mean())
    top = [entry["rating"] for entry in movie["topRatings"]]
    assert len(top) == 10 and set(top[0]) == {"movieId", "userId", "score", "timestamp"}
    assert [r["score"] for r in top] == sorted(ratings.rating, reverse=True)[:10]


# --- over HTTP: `bentoml serve` in a subprocess -------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(serving_registry):
    """Two workers, as `make serve` runs it: every HTTP test below goes through both."""
    process, base = start_service(serving_registry, "bentos.recommender.service:Recommender",
                                  {"EAGLEREC_SERVING_WORKERS": "2"})
    yield base
    stop_service(process)


def test_every_endpoint_answers_over_http(served):
    checks = [
        ("/recommend", {"user_id": 1, "k": 5}, lambda r: len(r["items"]) == 5 and r["variant"]),
        ("/recommend", {"user_id": 1, "k": 5, "ranker": "din"},
         lambda r: r["ranker"].startswith("din v") and 5 < r["candidates"] <= 800),
        ("/similar", {"movie_id": 1, "k": 4}, lambda r: len(r["items"]) == 4),
        ("/movies/1", None, lambda r: r["title"] == "Toy Story (1995)" and r["imdb_id"] == "0114709"),
        ("/users/1", None, lambda r: r["rating_count"] >= 232 and r["favourite_genres"]),
        ("/genres/Comedy?sort=year&k=3", None, lambda r: len(r["items"]) == 3),
        ("/getmovie?id=1", None, lambda r: r["movieId"] == 1 and r["tmdbId"] == 862),
        ("/getuser?id=1", None, lambda r: r["userId"] == 1 and r["ratingCount"] == len(r["ratings"])),
        ("/getsimilarmovie?movieId=1&size=3&model=emb", None, lambda r: len(r) == 3 and "movieId" in r[0]),
        ("/getrecommendation?genre=Comedy&size=4&sortby=rating", None, lambda r: len(r) == 4),
        ("/getrecforyou?id=1&size=3", None, lambda r: len(r) == 3),
        ("/getrecforyou?id=1&size=3&model=emb", None, lambda r: len(r) == 3),
        ("/getrecforyou?id=1&size=3&model=nerualcf", None, lambda r: len(r) == 3),
        ("/healthz", None, lambda r: True),
        ("/readyz", None, lambda r: True),
    ]
    for path, body, check in checks:
        status, answer = call(served, path, body)
        assert status == 200 and check(answer), (path, status, answer)
    status, metrics = call(served, "/metrics")
    assert status == 200 and 'eaglerec_recommend_requests_total{cold_start="false",variant=' in metrics


def test_every_recommendation_names_its_variant_and_models_in_headers(served):
    """Native and SparrowRecSys answers carry request_id, variant, ranker and retriever in headers; the native body
    says the same."""
    def headers_of(path: str, body: dict | None = None) -> tuple[dict, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(served + path, data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:  # header names arrive in lower case
            return {name.lower(): value for name, value in response.headers.items()}, json.loads(response.read())

    headers, native = headers_of("/recommend", {"user_id": 1, "k": 3})
    assert (headers["x-request-id"], headers["x-eaglerec-variant"], headers["x-eaglerec-ranker"],
            headers["x-eaglerec-retriever"]) == (native["request_id"], native["variant"], native["ranker"],
                                                 native["retriever_model"])
    sparrow_headers, sparrow = headers_of("/getrecforyou?id=1&size=3")
    assert isinstance(sparrow, list) and len(sparrow_headers["x-request-id"]) == 32
    assert sparrow_headers["x-eaglerec-variant"] == call(served, "/users/1")[1]["variant"] == native["variant"]
    assert sparrow_headers["x-eaglerec-ranker"] == native["ranker"]
    assert sparrow_headers["x-eaglerec-retriever"] == native["retriever_model"]
    retriever_only, _ = headers_of("/getrecforyou?id=1&size=3&model=emb")  # the retriever orders the list itself
    assert retriever_only["x-eaglerec-ranker"] == retriever_only["x-eaglerec-retriever"] == native["retriever_model"]
    cold, answer = headers_of("/recommend", {"user_id": 10**8, "k": 3})
    assert answer["cold_start"] and cold["x-eaglerec-ranker"] == "none"


def test_metrics_label_requests_by_route_template_so_500_new_paths_add_no_series(served):
    def series() -> set[str]:
        status, text = call(served, "/metrics")
        assert status == 200
        return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}

    for path in ("/movies/1", "/movies/10000000", "/no/such/path/0", "/metrics"):  # each route's first series
        call(served, path)
    before = series()
    for n in range(250):
        call(served, f"/movies/{n + 2}")  # some ids exist (200), some not (404): both series exist already
        call(served, f"/no/such/path/{n + 1}")
    after = series()
    assert after == before
    text = call(served, "/metrics")[1]
    counted = {tuple(sorted(re.findall(r'(\w+)="([^"]*)"', line))) for line in text.splitlines()
               if line.startswith("eaglerec_http_requests_total{")}
    for route, status in (("/movies/{movie_id}", "200"), ("/movies/{movie_id}", "404"), ("unmatched", "404")):
        assert (("method", "GET"), ("route", route), ("status", status)) in counted
    assert "/movies/2" not in text and "/no/such" not in text


@pytest.mark.parametrize("path, body, status, says", [
    ("/recommend", {"user_id": 0}, 422, "user_id"),
    ("/recommend", {"user_id": 1, "k": 101}, 422, "k"),
    ("/recommend", {"user_id": "one"}, 422, "user_id"),
    ("/recommend", {"user_id": 1, "variant": "nope"}, 400, "variant 'nope'"),
    ("/recommend", {"user_id": 1, "ranker": "gbdt"}, 400, "ranker 'gbdt'"),
    ("/recommend", {"user_id": 1, "surprise": 1}, 422, "surprise"),
    ("/recommend", b"{not json", 422, "invalid request"),
    ("/similar", {"movie_id": 10**7}, 404, "movie_id 10000000"),
    ("/movies/10000000", None, 404, "movie_id 10000000"),
    ("/movies/abc", None, 422, "movie_id"),
    ("/users/999999", None, 404, "user_id 999999"),
    ("/genres/Nope", None, 404, "genre 'Nope'"),
    ("/genres/Comedy?sort=colour", None, 422, "sort"),
    ("/events", {"user_id": 1, "movie_id": 1, "rating": 7}, 422, "rating"),
    ("/events", {"user_id": 1, "movie_id": 1, "rating": 4.2}, 400, "half stars"),
    ("/getmovie", None, 422, "id"),
    ("/getmovie?id=-3", None, 422, "id"),
    ("/getrecforyou?id=1&model=gbdt", None, 400, "model='gbdt'"),
    ("/getrecommendation?genre=Comedy&sortby=title", None, 422, "sortby"),
    ("/similar", {"movie_id": 1, "pad": "x" * 20_000}, 413, "request body over"),
    ("/admin/reload", b"", 401, "bearer token"),
    # A path no route accepts (found by the fuzzer): still a JSON error.
    ("/genres/%28%C3%94%C2%94y%F0%B8%97%A0z%24%60%0A%2A%C3%98", None, 404, "Not Found"),
])
def test_bad_requests_get_a_json_4xx_with_a_reason(served, path, body, status, says):
    got, answer = call(served, path, body)
    assert got == status and isinstance(answer, dict) and says in answer["error"], (got, answer)


def test_an_event_over_http_reaches_the_next_recommendation(served):
    _, before = call(served, "/recommend", {"user_id": HTTP_NEW_USER, "k": 5})
    status, accepted = call(served, "/events", {"user_id": HTTP_NEW_USER, "movie_id": 260, "rating": 5.0})
    _, after = call(served, "/recommend", {"user_id": HTTP_NEW_USER, "k": 5})
    assert before["cold_start"] and status == 200 and accepted["accepted"]
    assert not after["cold_start"] and 260 not in [item["movie_id"] for item in after["items"]]


def recommend_with_worker(base: str, user_id: int) -> tuple[str, dict]:
    """The answer, and which worker gave it."""
    request = urllib.request.Request(f"{base}/recommend", json.dumps({"user_id": user_id, "k": 3,
                                                                      "variant": "champion"}).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.headers["X-EagleRec-Worker"], json.loads(response.read())


def test_reload_swaps_the_champion_without_failing_requests_in_flight(served, serving_registry, tracking_uri):
    client = MlflowClient(tracking_uri)
    neural_cf = serving_registry["rankers"]["neural_cf"].version

    reloaded = threading.Event()

    def hammer() -> list[int]:
        """Recommend until a second after the reload returned."""
        statuses = []
        while not reloaded.wait(0) or time.monotonic() < reloaded.finished_at + 1:
            statuses.append(call(served, "/recommend", {"user_id": 5, "k": 10, "variant": "champion"})[0])
        return statuses

    client.set_registered_model_alias("eaglerec-ranker", "champion", neural_cf)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            load = [pool.submit(hammer) for _ in range(2)]
            time.sleep(1)
            status, swapped = call(served, "/admin/reload", b"", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
            reloaded.finished_at = time.monotonic()
            reloaded.set()
            statuses = [s for future in load for s in future.result()]
        assert status == 200 and swapped["after"]["ranker_champion"] == f"neural_cf v{neural_cf}"
        assert swapped["workers"] == 2
        assert len(statuses) > 20 and set(statuses) == {200}
        # Both workers serve it once the reload answered.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: recommend_with_worker(served, 5), range(40)))
        assert {worker for worker, _ in answers} == {"1", "2"}
        assert {answer["ranker"] for _, answer in answers} == {f"neural_cf v{neural_cf}"}
    finally:
        client.set_registered_model_alias("eaglerec-ranker", "champion", serving_registry["rankers"]["din"].version)
        call(served, "/admin/reload", b"", {"Authorization": f"Bearer {ADMIN_TOKEN}"})


def build_bento_environment(bentoml_home: Path, root: Path) -> tuple[Path, Path]:
    """Build the bento, then a fresh virtual environment from the bento's own requirements (not the dev environment,
    which has this repository installed); return (the bento's folder, the new environment's bentoml)."""
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home)}
    built = subprocess.run([str(Path(sys.executable).with_name("bentoml")), "build", "-f",
                            "bentos/recommender/bentofile.yaml", "-o", "tag", "."], cwd=REPO_ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    assert name == "eaglerec_recommender"
    bento = bentoml_home / "bentos" / name / version
    uv, venv = Path(sys.executable).with_name("uv"), root / "bento-venv"
    for command in ([str(uv), "venv", "--quiet", "--python", "3.11", str(venv)],
                    [str(uv), "pip", "sync", "--quiet", "--python", str(venv / "bin" / "python"),
                     str(bento / "env" / "python" / "requirements.txt")]):
        made = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert made.returncode == 0, made.stderr[-2000:]
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import training"], cwd=root, capture_output=True)
    assert probe.returncode != 0  # the repository's code is not installed there: the bento must carry what it needs
    return bento, venv / "bin" / "bentoml"


def test_the_bento_serves_from_its_own_environment_exactly_as_the_dev_service(serving_registry, served, tmp_path):
    bentoml_home = tmp_path / "bentoml"
    bento, bentoml = build_bento_environment(bentoml_home, tmp_path)
    process, base = start_service(serving_registry, str(bento), {"BENTOML_HOME": str(bentoml_home)},
                                  bentoml=bentoml, cwd=tmp_path)
    try:
        requests = [("/recommend", {"user_id": user, "k": 10, "variant": "champion"}) for user in (1, 3, 7)]
        requests += [("/recommend", {"user_id": 3, "k": 5, "ranker": "neural_cf"}), ("/similar", {"movie_id": 1}),
                     ("/movies/1", None), ("/users/7", None), ("/getrecforyou?id=7&size=5&model=emb", None),
                     ("/recommend", {"user_id": 10**8, "k": 5}), ("/recommend", {"user_id": 1, "variant": "x"})]
        for path, body in requests:
            expected, got = call(served, path, body), call(base, path, body)
            assert without_request_id(got) == without_request_id(expected), path
        assert call(base, "/recommend", {"user_id": 1, "variant": "champion"})[1]["ranker"].startswith("din v")
    finally:
        stop_service(process)


def test_two_thousand_recommendations_at_concurrency_16_each_answered_and_logged_once(served, events,
                                                                                     serving_registry):
    """Load, as a correctness check (speed is benchmarked in benchmarks/serving.py): every answer a 200 with k items,
    and one impression line per answer under its own request_id."""
    log_folder = serving_registry["home"].events
    # Earlier tests' last impressions may still be queued (the service writes them once a second): let them land.
    logged_before = set(read_settled_request_ids(log_folder))
    users = np.random.default_rng(16).choice(events["user_id"].unique(), size=2_000).tolist()

    def recommend(user_id: int) -> tuple[int, int, str | None]:
        status, answer = call(served, "/recommend", {"user_id": int(user_id), "k": 10})
        return (status, len(answer["items"]), answer["request_id"]) if status == 200 else (status, 0, None)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(recommend, users))
    seconds = time.perf_counter() - started
    failures = [result for result in results if result[:2] != (200, 10)]
    print(f"2,000 /recommend at concurrency 16: {len(users) / seconds:.0f} requests/s, {len(failures)} failures")
    assert failures == []
    answered = {request_id for _, _, request_id in results}
    assert len(answered) == len(users)
    logged = [request_id for request_id in read_settled_request_ids(log_folder) if request_id not in logged_before]
    assert sorted(logged) == sorted(answered)


def read_settled_request_ids(log_folder, quiet_seconds: float = 2.5, timeout: float = 30) -> list[str]:
    """The request_ids of the impressions logged, once the log has stopped growing for longer than the service's
    one-second write interval (so a line still queued is not missed, nor counted later as a stray)."""
    from eaglerec.event_log import read_impressions

    deadline = time.monotonic() + timeout
    logged = [row["request_id"] for row in read_impressions(log_folder)]
    while time.monotonic() < deadline:
        time.sleep(quiet_seconds)
        again = [row["request_id"] for row in read_impressions(log_folder)]
        if again == logged:
            return logged
        logged = again
    raise AssertionError(f"{log_folder}: impressions still being written after {timeout} s")
