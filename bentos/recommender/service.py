"""EagleRec's online recommendation service (BentoML 1.4, new-style service): the champion ranker and retriever from
the MLflow registry, user state from Feast's online store, movies in memory.

JSON API: POST /recommend, /similar, /events, /admin/reload; GET /movies/{id}, /users/{id}, /genres/{genre};
SparrowRecSys's GET API (/getmovie, /getuser, /getsimilarmovie, /getrecommendation, /getrecforyou); BentoML's /healthz,
/readyz and /metrics (Prometheus). Run: `make serve`, or `bentoml serve bentos.recommender.service:Recommender`."""

from __future__ import annotations

import hmac
import os
import pathlib
from http import HTTPStatus
from typing import Annotated, Literal

import bentoml
from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from bentos.recommender.schemas import ErrorBody, RatingEvent, Recommendations, RecommendRequest, SimilarRequest

MAX_BODY_BYTES = int(os.environ.get("EAGLEREC_MAX_BODY_BYTES", "16384"))
ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 403, 404, 413, 422, 503)}
MovieId = Annotated[int, Query(ge=1, le=2**31 - 1)]
Size = Annotated[int, Query(ge=1, le=100)]

recommend_requests = bentoml.metrics.Counter(
    name="eaglerec_recommend_requests", documentation="Recommendation requests by A/B variant",
    labelnames=["variant", "cold_start"])
events_received = bentoml.metrics.Counter(name="eaglerec_rating_events", documentation="Ratings accepted")

SITE = pathlib.Path(__file__).with_name("site")
app = FastAPI(title="EagleRec recommender", version="1", responses=ERRORS, docs_url=None, redoc_url=None,
              description="Movie recommendations: retrieve, rank, filter, explain. Errors are JSON: {error, detail}.")
# The movie site: plain HTML/CSS/JS over this API, same origin, nothing loaded from elsewhere.
app.mount("/site", StaticFiles(directory=SITE), name="site")


def error_response(status: int, message: str, detail=None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=message, detail=detail).model_dump(), status_code=status)


@app.exception_handler(RequestValidationError)
async def reject_invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [{"loc": list(error["loc"]), "msg": error["msg"]} for error in exc.errors()]
    where = "; ".join(f"{'.'.join(str(part) for part in p['loc'])}: {p['msg']}" for p in problems)
    return error_response(422, f"invalid request: {where}", problems)


@app.exception_handler(StarletteHTTPException)
async def reject_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(exc.status_code, str(exc.detail))


@app.middleware("http")
async def limit_body_size(request: Request, call_next):
    """Refuse oversize bodies before reading them (Content-Length), and bodies sent without one past the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        return error_response(413, f"request body over {MAX_BODY_BYTES} bytes")
    if declared is None and request.method in ("POST", "PUT", "PATCH"):
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return error_response(413, f"request body over {MAX_BODY_BYTES} bytes")
        request._body = body
    return await call_next(request)


class ServiceEdges:
    """Outermost ASGI layer (around BentoML's own routes too): GET /readyz as JSON, and every error response as JSON.

    /readyz: ready once the models are loaded, and whether requests are degraded (online store down); BentoML's own
    readyz (503 while starting) answers until the engine exists. Errors: a 4xx/5xx that a lower layer wrote as text
    (BentoML's or Starlette's router, e.g. a 404 for a path no route accepts) is rewritten as {"error": text}."""

    engine = None  # set by Recommender.__init__, in the worker process

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/readyz" and ServiceEdges.engine is not None:
            import anyio

            status = await anyio.to_thread.run_sync(ServiceEdges.engine.status)
            await JSONResponse(status)(scope, receive, send)
            return
        pending = {}

        async def send_errors_as_json(message):
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] >= 400 and not content_type.startswith(b"application/json"):
                    pending.update(status=message["status"], body=b"")
                    return
            elif message["type"] == "http.response.body" and pending:
                pending["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                text = pending["body"].decode(errors="replace").strip() or HTTPStatus(pending["status"]).phrase
                await error_response(pending["status"], text)(scope, receive, send)
                return
            await send(message)

        await self.app(scope, receive, send_errors_as_json)


def answer(call, *args, **kwargs):
    """Run an engine call; its InvalidRequestError and NotFoundError become 400 and 404 with the message."""
    from bentos.recommender.serving import InvalidRequestError, NotFoundError, UnavailableError

    try:
        return call(*args, **kwargs)
    except InvalidRequestError as exc:
        return error_response(400, str(exc))
    except NotFoundError as exc:
        return error_response(404, str(exc))
    except UnavailableError as exc:
        return error_response(503, str(exc))


@bentoml.service(name="eaglerec_recommender", workers=1, traffic={"timeout": 60},
                 http={"host": "127.0.0.1", "port": 3000})
@bentoml.asgi_app(app, path="/")
class Recommender:
    def __init__(self) -> None:
        from bentos.recommender.serving import RecommendationEngine

        self.engine = RecommendationEngine()
        ServiceEdges.engine = self.engine

    def __is_ready__(self) -> bool:
        return self.engine.snapshot is not None

    @app.get("/", include_in_schema=False)
    def home(self):
        return FileResponse(SITE / "index.html", media_type="text/html")

    @app.post("/recommend", response_model=Recommendations)
    def recommend(self, request: RecommendRequest):
        result = answer(self.engine.recommend, request.user_id, request.k, request.variant, request.explain,
                        request.ranker)
        if isinstance(result, dict):
            recommend_requests.labels(variant=result["variant"], cold_start=str(result["cold_start"]).lower()).inc()
        return result

    @app.post("/similar")
    def similar(self, request: SimilarRequest):
        return answer(self.engine.similar, request.movie_id, request.k)

    @app.get("/movies/{movie_id}")
    def movie(self, movie_id: Annotated[int, Path(ge=1, le=2**31 - 1)]):
        return answer(self.engine.movie, movie_id)

    @app.get("/users/{user_id}")
    def user(self, user_id: Annotated[int, Path(ge=1, le=2**31 - 1)]):
        return answer(self.engine.user, user_id)

    @app.get("/genres/{genre}")
    def genre(self, genre: Annotated[str, Path(max_length=64)],
              sort: Literal["rating", "year", "popularity"] = "popularity", k: Size = 10):
        return answer(self.engine.genre, genre, sort, k)

    @app.get("/search")
    def search(self, q: Annotated[str, Query(min_length=1, max_length=100)], k: Size = 20):
        return answer(self.engine.search, q, k)

    @app.get("/genres")
    def genres(self):
        return self.engine.list_genres()

    @app.post("/events")
    def events(self, event: RatingEvent):
        result = answer(self.engine.record_event, event.user_id, event.movie_id, event.rating, event.rated_at)
        if isinstance(result, dict):
            events_received.inc()
        return result

    @app.post("/admin/reload")
    def reload(self, authorization: Annotated[str | None, Header()] = None):
        """Swap in the current champions; needs `Authorization: Bearer $EAGLEREC_ADMIN_TOKEN`."""
        token = self.engine.config.admin_token
        if token is None:
            return error_response(403, "admin API disabled: set EAGLEREC_ADMIN_TOKEN to enable it")
        if not hmac.compare_digest((authorization or "").encode(), f"Bearer {token}".encode()):
            return error_response(401, "admin API: missing or wrong bearer token")
        return answer(self.engine.reload)

    # SparrowRecSys's API: same paths, parameters and field names; bad parameters get a JSON 4xx.

    @app.get("/getmovie")
    def get_movie(self, id: MovieId):  # noqa: A002 - SparrowRecSys's parameter name
        from bentos.recommender.serving import sparrow_movie

        return answer(sparrow_movie, self.engine, id)

    @app.get("/getuser")
    def get_user(self, id: MovieId):  # noqa: A002
        from bentos.recommender.serving import sparrow_rating

        user = answer(self.engine.user, id, history=10**6)
        if not isinstance(user, dict):
            return user
        return {"userId": user["user_id"], "averageRating": user["average_rating"],
                "highestRating": user["highest_rating"], "lowestRating": user["lowest_rating"],
                "ratingCount": user["rating_count"],
                "ratings": [{"rating": sparrow_rating(r)} for r in reversed(user["history"])]}

    @app.get("/getsimilarmovie")
    def get_similar_movie(self, movieId: MovieId, size: Size = 10, model: str = "emb"):  # noqa: N803
        similar = answer(self.engine.similar, movieId, size, use_embeddings=model == "emb")
        return self.sparrow_movies(similar)

    @app.get("/getrecommendation")
    def get_recommendation(self, genre: Annotated[str, Query(max_length=64)], size: Size = 10,
                           sortby: Literal["rating", "releaseYear"] = "rating"):
        found = answer(self.engine.genre, genre, "rating" if sortby == "rating" else "year", size)
        return self.sparrow_movies(found)

    @app.get("/getrecforyou")
    def get_rec_for_you(self, id: MovieId, size: Size = 10, model: str | None = None):  # noqa: A002
        kinds = {"emb": "emb", "neuralcf": "neural_cf", "nerualcf": "neural_cf"}  # sic: SparrowRecSys's spelling
        if model is not None and model not in kinds:
            return error_response(400, f"model={model!r}: expected emb, neuralcf or none (the champion)")
        return self.sparrow_movies(answer(self.engine.recommend, id, size, None, False, kinds.get(model)))

    def sparrow_movies(self, result):
        from bentos.recommender.serving import sparrow_movie

        if not isinstance(result, dict):
            return result
        return [sparrow_movie(self.engine, item["movie_id"]) for item in result["items"]]


Recommender.add_asgi_middleware(ServiceEdges)
