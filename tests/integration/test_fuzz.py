"""Fuzzing the recommender's HTTP API from its own OpenAPI schema (schemathesis, hypothesis-generated requests,
valid and invalid) against `bentoml serve`: never a 5xx, and every error is JSON with a reason."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.services import copy_serving_home, start_service, stop_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def fuzzed_service(serving_registry, tmp_path_factory):
    """A recommender on a private copy of the serving home: fuzzed events change only its online store."""
    registry = copy_serving_home(serving_registry, tmp_path_factory.mktemp("fuzz"))
    process, base = start_service(registry, "bentos.recommender.service:Recommender")
    yield base
    stop_service(process)


def test_no_request_gets_a_server_error_and_every_error_is_json(fuzzed_service):
    # Driven through hypothesis directly: schemathesis 4.32's pytest plugin breaks on pytest 9 (Function._nodeid).
    schema = schemathesis.openapi.from_url(f"{fuzzed_service}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.path for operation in operations} == {
        "/recommend", "/similar", "/movies/{movie_id}", "/users/{user_id}", "/genres/{genre}", "/genres", "/search",
        "/events", "/admin/reload", "/getmovie", "/getuser", "/getsimilarmovie", "/getrecommendation", "/getrecforyou",
        "/metrics", "/healthz", "/readyz"}
    problems = []
    for operation in operations:

        @given(case=operation.as_strategy())
        # derandomize: the same examples every run, so a failure reproduces and CI is not a lottery
        @settings(max_examples=40, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(timeout=60)
            where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
            # schemathesis gives each header as a list of values
            content_type = (response.headers.get("content-type") or [""])[0]
            if response.status_code >= 500:
                problems.append(where)
            elif response.status_code >= 400 and not (content_type.startswith("application/json")
                                                      and response.json().get("error")):
                problems.append(f"not a JSON error: {where}")

        check()
    assert problems == []
