"""EagleRec's online recommendation service (BentoML 1.4, new-style service): the champion ranker and retriever from
the MLflow registry, user state from Feast's online store, movies in memory.

JSON API: POST /recommend, /similar, /events, /admin/reload; GET /movies/{id}, /users/{id}, /genres/{genre}, /genres,
/search; SparrowRecSys's GET API (/getmovie, /getuser, /getsimilarmovie, /getrecommendation, /getrecforyou); BentoML's
/healthz, /readyz and /metrics (Prometheus). Every route is typed (schemas.py); the request path's errors become JSON
4xx/503 in one exception handler. Run: `make serve`, or `bentoml serve bentos.recommender.service:Recommender`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import hmac
import os
import pathlib
import time
from http import HTTPStatus
from typing import Annotated, Literal

import bentoml
from fastapi import FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from bentos.recommender import queries
from bentos.recommender.errors import ConflictError, InvalidRequestError, NotFoundError, UnavailableError
from bentos.recommender.schemas import (
    ErrorBody,
    EventAccepted,
    GenreMovies,
    Genres,
    MovieDetails,
    RatingEvent,
    Recommendations,
    RecommendRequest,
    ReloadResult,
    SearchResults,
    SimilarMovies,
    SimilarRequest,
    SparrowMovie,
    SparrowUser,
    UserProfile,
)
from bentos.recommender.sparrowrecsys import sparrow_movie, sparrow_movies, sparrow_user
from bentos.recommender.workers import WorkerLoad, serving_workers
from eaglerec.contracts.catalogue import load_catalogue

MAX_BODY_BYTES = int(os.environ.get("EAGLEREC_MAX_BODY_BYTES", "16384"))
# Worker processes: each loads the models; they share the event log, the online store and reloads (events.py,
# workers.py).
WORKERS = serving_workers()
ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 403, 404, 409, 413, 422, 503)}
REQUEST_ID_HEADER = "X-Request-ID"
# Which models answered, on every recommendation (SparrowRecSys's bare-list body has no room for it).
VARIANT_HEADER, RANKER_HEADER, RETRIEVER_HEADER = "X-EagleRec-Variant", "X-EagleRec-Ranker", "X-EagleRec-Retriever"
WORKER_HEADER = "X-EagleRec-Worker"  # which of the service's worker processes answered (1-based)
# A worker with more requests in flight than another by more than this closes connections after answering (two
# workers at concurrency 16 each hold ~8 in flight; counts move by one or two as answers go and requests come);
# "off": connections stay where they were accepted.
SPREAD_SETTING = os.environ.get("EAGLEREC_SPREAD_MARGIN", "2")
SPREAD_MARGIN = None if SPREAD_SETTING == "off" else int(SPREAD_SETTING)
MovieId = Annotated[int, Query(ge=1, le=2**31 - 1)]
Size = Annotated[int, Query(ge=1, le=100)]

recommend_requests = bentoml.metrics.Counter(
    name="eaglerec_recommend_requests", documentation="Recommendation requests by A/B variant",
    labelnames=["variant", "cold_start"])
events_received = bentoml.metrics.Counter(name="eaglerec_rating_events", documentation="Ratings accepted")
# Requests by route *template* (BentoML's own traffic metrics, switched off below, label by raw path: one series per
# movie id, user id and mistyped URL, without bound).
http_requests = bentoml.metrics.Counter(
    name="eaglerec_http_requests", documentation="HTTP requests by route template, method and status",
    labelnames=["route", "method", "status"])
http_seconds = bentoml.metrics.Histogram(
    name="eaglerec_http_request_duration_seconds", documentation="HTTP request time by route template",
    labelnames=["route", "method"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def render_metrics() -> bytes:
    """Every worker's metrics added up: BentoML starts its workers with PROMETHEUS_MULTIPROC_DIR, where each one's
    counters live in their own file; the default registry holds only the answering worker's."""
    import prometheus_client
    from prometheus_client import multiprocess

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return prometheus_client.generate_latest()
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return prometheus_client.generate_latest(registry)

SITE = pathlib.Path(__file__).with_name("site")
# Swagger UI's files as BentoML installs them (it serves them for its own UI): /docs loads nothing from a CDN.
SWAGGER_UI = pathlib.Path(bentoml.__file__).parent / "_internal" / "server" / "static_content"
app = FastAPI(title="EagleRec recommender", version="1", responses=ERRORS, docs_url=None, redoc_url=None,
              description="Movie recommendations: retrieve, rank, filter, explain. Errors are JSON: {error, detail}. "
                          "Native API (/recommend, /similar, /movies, /users, /genres, /search, /events) and "
                          "SparrowRecSys's (/get...), same models; the answer's model is in the X-EagleRec-* headers.")
# The movie site: plain HTML/CSS/JS over this API, same origin, nothing loaded from elsewhere.
app.mount("/site", StaticFiles(directory=SITE), name="site")
app.mount("/docs/static", StaticFiles(directory=SWAGGER_UI), name="swagger-ui")
# Routes BentoML answers before the app (so FastAPI does not see them), described in the one schema all the same.
PROBES = {
    "/healthz": ("Liveness: 200 while the process serves HTTP (BentoML's probe).", {"200": {"description": "alive"}}),
    "/readyz": ("Readiness: 200 with {ready, degraded, online_store, models} once the models are loaded (degraded: the "
                "online store is down and answers come from the marts' state); 503 while starting.",
                {"200": {"description": "ready", "content": {"application/json": {"schema": {"type": "object"}}}},
                 "503": {"description": "starting"}}),
}


def describe_api() -> dict:
    """The one OpenAPI schema (/openapi.json, /docs, and /docs.json for BentoML's clients): FastAPI's routes and
    BentoML's probes."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path, (text, responses) in PROBES.items():
            schema["paths"][path] = {"get": {"summary": path.strip("/").title(), "description": text,
                                             "operationId": path.strip("/"), "tags": ["probes"],
                                             "responses": responses}}
        app.openapi_schema = schema
    return app.openapi_schema


app.openapi = describe_api


@app.get("/docs", include_in_schema=False)
def show_api_docs():
    from fastapi.openapi.docs import get_swagger_ui_html

    # validatorUrl None: Swagger UI would otherwise send the schema to swagger.io's online validator.
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API",
                               swagger_js_url="/docs/static/swagger-ui-bundle.js",
                               swagger_css_url="/docs/static/swagger-ui.css",
                               swagger_favicon_url="/docs/static/favicon-light-32x32.png",
                               swagger_ui_parameters={"validatorUrl": None})


def describe_answer(response: Response, answer: dict) -> None:
    """Name the answer and what produced it in the headers: its request_id, the A/B variant, the model that ordered
    the list (the ranker; the retriever itself for retriever-only answers; `none` for cold start) and the retriever,
    each as `<model> v<version>`, and the worker process that answered."""
    response.headers[REQUEST_ID_HEADER] = answer["request_id"]
    response.headers[VARIANT_HEADER] = answer["variant"]
    response.headers[RANKER_HEADER] = answer["ranker"] or "none"
    response.headers[RETRIEVER_HEADER] = answer["retriever_model"]
    response.headers[WORKER_HEADER] = str(bentoml.server_context.worker_index or 1)


# The ranked requests (/recommend, /getrecforyou) run on EAGLEREC_RECOMMEND_THREADS threads of their own per worker
# (default 1), first come first served. On the shared pool of route threads, each request in flight held a thread and
# they took turns at the GIL: every one of them advanced at once, slowly. At concurrency 16 on two workers that put
# p99 at 152 ms against 100 ms for one thread in turn (medians of 9 and 10 runs), for the same requests/s (2026-12-01).
RECOMMEND_THREADS = concurrent.futures.ThreadPoolExecutor(int(os.environ.get("EAGLEREC_RECOMMEND_THREADS", "1")),
                                                          thread_name_prefix="eaglerec-recommend")


async def in_recommend_threads(function, *args, **kwargs):
    """function(*args, **kwargs) on the ranked requests' threads, in the caller's context (as route threads are)."""
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(RECOMMEND_THREADS, call)


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


async def reject_request_error(_: Request, exc: InvalidRequestError | NotFoundError | ConflictError |
                               UnavailableError) -> JSONResponse:
    """The request path's errors: 400 bad input, 404 unknown id, 409 a conflicting retry, 503 a dependency down; the
    message says which."""
    return error_response(exc.status, str(exc))


for request_error in (InvalidRequestError, NotFoundError, ConflictError, UnavailableError):
    app.add_exception_handler(request_error, reject_request_error)


class HttpMiddleware:
    """An ASGI layer that acts on HTTP requests only: lifespan and other scopes pass through untouched."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope, receive, send):
        raise NotImplementedError


class BodyLimit(HttpMiddleware):
    """Refuse oversize bodies before reading them (Content-Length), and bodies sent without one past the limit. Plain
    ASGI: Starlette's BaseHTTPMiddleware cost ~1 ms of CPU per request here."""

    async def handle(self, scope, receive, send):
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            await error_response(413, f"request body over {MAX_BODY_BYTES} bytes")(scope, receive, send)
            return
        if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
            body, more = b"", True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > MAX_BODY_BYTES:
                    await error_response(413, f"request body over {MAX_BODY_BYTES} bytes")(scope, receive, send)
                    return
            pending = [{"type": "http.request", "body": body, "more_body": False}]

            async def receive_read_body():
                return pending.pop() if pending else await receive()

            await self.app(scope, receive_read_body, send)
            return
        await self.app(scope, receive, send)


class RequestMetrics(HttpMiddleware):
    """Count and time every HTTP request under its route template (`/movies/{movie_id}`), `unmatched` when no route
    took it; methods outside HTTP's usual ones count as `other`. Every label has a bounded set of values."""

    async def handle(self, scope, receive, send):
        started, status = time.perf_counter(), {"code": 500}

        async def note_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, note_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "other"
            http_requests.labels(route=route, method=method, status=str(status["code"])).inc()
            http_seconds.labels(route=route, method=method).observe(time.perf_counter() - started)


class SpreadConnections(HttpMiddleware):
    """With several workers, count this worker's requests in flight and, while it has more than another worker by
    over SPREAD_MARGIN, close the connection after the answer (`Connection: close`): the client's next connection
    goes to whichever worker accepts it first. Clients keep their connections, so without this a worker holding
    more of them stays busier for as long as they last (see WorkerLoad)."""

    load = None  # set by Recommender.__init__ in the worker process, when there are several

    async def handle(self, scope, receive, send):
        load = SpreadConnections.load
        if load is None:
            await self.app(scope, receive, send)
            return

        async def close_when_busier(message):
            if message["type"] == "http.response.start" and load.busier_than_another(SPREAD_MARGIN):
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        load.begin()
        try:
            await self.app(scope, receive, close_when_busier)
        finally:
            load.end()


class ServiceEdges(HttpMiddleware):
    """Outermost ASGI layer (around BentoML's own routes too): GET /readyz as JSON, /docs.json as the app's OpenAPI
    schema, and every error response as JSON.

    /readyz: ready once the models are loaded, and whether requests are degraded (online store down); BentoML's own
    readyz (503 while starting) answers until the engine exists. Errors: a 4xx/5xx that a lower layer wrote as text
    (BentoML's or Starlette's router, e.g. a 404 for a path no route accepts) is rewritten as {"error": text}."""

    engine = None  # set by Recommender.__init__, in the worker process

    async def handle(self, scope, receive, send):
        if scope["path"] == "/docs.json":  # BentoML's schema route: the one schema instead of BentoML's own
            await JSONResponse(describe_api())(scope, receive, send)
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


# tracing: no span for any URL. No exporter is configured (offline by design), and BentoML's OpenTelemetry layer
# made a span per request all the same: 0.8 ms of CPU each (a trivial route 2.29 ms against 3.64 with it).
@bentoml.service(name="eaglerec_recommender", workers=WORKERS, traffic={"timeout": 60}, metrics={"enabled": False},
                 tracing={"excluded_urls": ["/"]},
                 http={"host": "127.0.0.1", "port": 3000})
@bentoml.asgi_app(app, path="/")
class Recommender:
    def __init__(self) -> None:
        from bentos.recommender.engine import RecommendationEngine

        worker = bentoml.server_context.worker_index or 1
        self.engine = RecommendationEngine(worker=worker)
        ServiceEdges.engine = self.engine
        if self.engine.config.workers > 1 and SPREAD_MARGIN is not None:
            SpreadConnections.load = WorkerLoad.for_server(self.engine.config.paths.home, worker,
                                                           self.engine.config.workers)

    def __is_ready__(self) -> bool:
        return self.engine.snapshot is not None

    @property
    def catalog(self):
        return self.engine.snapshot.catalog

    @app.get("/", include_in_schema=False)
    def home(self):
        return FileResponse(SITE / "index.html", media_type="text/html")

    @app.post("/recommend", response_model=Recommendations)
    async def recommend(self, request: RecommendRequest, response: Response):
        """Top k movies for a user: candidates, one ranker call, a genre cap; cold start for unknown users. Logged as
        an impression under its request_id (body and X-Request-ID header)."""
        answer = await in_recommend_threads(self.engine.recommend, request.user_id, request.k, request.variant,
                                            request.explain, request.ranker)
        describe_answer(response, answer)
        recommend_requests.labels(variant=answer["variant"], cold_start=str(answer["cold_start"]).lower()).inc()
        return answer

    @app.post("/similar", response_model=SimilarMovies)
    def similar(self, request: SimilarRequest):
        """Movies next to one movie: the champion retriever's, or by shared genres."""
        queries.check_k(request.k, self.engine.config.max_k)
        snapshot = self.engine.snapshot
        return queries.find_similar(snapshot.catalog, snapshot.models.retriever, request.movie_id, request.k)

    @app.get("/movies/{movie_id}", response_model=MovieDetails)
    def movie(self, movie_id: Annotated[int, Path(ge=1, le=2**31 - 1)]):
        """A movie with its rating count, average and highest ratings."""
        return queries.describe_movie(self.catalog, movie_id)

    @app.get("/users/{user_id}", response_model=UserProfile)
    def user(self, user_id: Annotated[int, Path(ge=1, le=2**31 - 1)]):
        """A user's ratings, favourite genres and A/B variant."""
        return self.describe_user(user_id)

    def describe_user(self, user_id: int, history: int = 50) -> dict:
        catalog = self.catalog
        return queries.describe_user(catalog, user_id, self.engine.read_user_state(user_id),
                                     self.engine.variant_of(user_id), history)

    @app.get("/genres/{genre}", response_model=GenreMovies)
    def genre(self, genre: Annotated[str, Path(max_length=64)],
              sort: Literal["rating", "year", "popularity"] = "popularity", k: Size = 10):
        """A genre's movies by popularity, average rating or release year."""
        queries.check_k(k, self.engine.config.max_k)
        return queries.list_genre(self.catalog, genre, sort, k)

    @app.get("/search", response_model=SearchResults)
    def search(self, q: Annotated[str, Query(min_length=1, max_length=100)], k: Size = 20):
        """Movies whose title contains every word of q."""
        queries.check_k(k, self.engine.config.max_k)
        return queries.search_titles(self.catalog, q, k)

    @app.get("/genres", response_model=Genres)
    def genres(self):
        """Every genre with its number of movies."""
        return queries.list_genres(self.catalog)

    @app.post("/events", response_model=EventAccepted)
    def events(self, event: RatingEvent):
        """Record a rating durably (fsync'd to the event log before this answers), then in the online store: the
        user's next recommendation sees it, a restart keeps it, the next features run trains on it. Idempotent by
        event_id (default user_id:movie_id:rated_at): a retry answers duplicate=true and changes nothing."""
        accepted = self.engine.events.record(self.catalog, event.user_id, event.movie_id, event.rating,
                                             event.rated_at, event.event_id, event.request_id)
        if not accepted["duplicate"]:
            events_received.inc()
        return accepted

    @app.get("/metrics", response_class=Response)
    def metrics(self):
        """Prometheus metrics: requests by route template, recommendations by variant, events accepted."""
        return Response(render_metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/admin/reload", response_model=ReloadResult)
    def reload(self, authorization: Annotated[str | None, Header()] = None):
        """Swap in the current champions; needs `Authorization: Bearer $EAGLEREC_ADMIN_TOKEN`."""
        token = self.engine.config.admin_token
        if token is None:
            return error_response(403, "admin API disabled: set EAGLEREC_ADMIN_TOKEN to enable it")
        if not hmac.compare_digest((authorization or "").encode(), f"Bearer {token}".encode()):
            return error_response(401, "admin API: missing or wrong bearer token")
        return self.engine.reload()

    # SparrowRecSys's API: same paths, parameters and field names; bad parameters get a JSON 4xx.

    @app.get("/getmovie", response_model=SparrowMovie)
    def get_movie(self, id: MovieId):  # noqa: A002 - SparrowRecSys's parameter name
        """SparrowRecSys: one movie with its rating count, average, genres and top ratings."""
        return sparrow_movie(self.catalog, id)

    @app.get("/getuser", response_model=SparrowUser)
    def get_user(self, id: MovieId):  # noqa: A002
        """SparrowRecSys: one user with their ratings and average."""
        return sparrow_user(self.describe_user(id, history=10**6))

    @app.get("/getsimilarmovie", response_model=list[SparrowMovie])
    def get_similar_movie(self, movieId: MovieId, size: Size = 10, model: str = "emb"):  # noqa: N803
        """SparrowRecSys: movies similar to one; model=emb by the champion retriever's vectors, else by genres."""
        queries.check_k(size, self.engine.config.max_k)
        snapshot = self.engine.snapshot
        similar = queries.find_similar(snapshot.catalog, snapshot.models.retriever, movieId, size,
                                       use_retriever=model == "emb")
        return sparrow_movies(snapshot.catalog, similar)

    @app.get("/getrecommendation", response_model=list[SparrowMovie])
    def get_recommendation(self, genre: Annotated[str, Query(max_length=64)], size: Size = 10,
                           sortby: Literal["rating", "releaseYear"] = "rating"):
        """SparrowRecSys: a genre's movies by average rating or release year."""
        queries.check_k(size, self.engine.config.max_k)
        catalog = self.catalog
        return sparrow_movies(catalog, queries.list_genre(catalog, genre, "rating" if sortby == "rating" else "year",
                                                          size))

    @app.get("/getrecforyou", response_model=list[SparrowMovie])
    async def get_rec_for_you(self, response: Response, id: MovieId, size: Size = 10,  # noqa: A002
                              model: str | None = None):
        """SparrowRecSys: a user's recommendations. model=emb: straight from the retriever; a ranker's name or
        alias (SparrowRecSys's neuralcf): that ranker; none: the user's A/B variant. The body stays SparrowRecSys's
        bare list: the request_id of the logged impression is in the X-Request-ID header."""
        ranker = None
        if model is not None and model != "emb":
            entry = load_catalogue().find_by_alias(model, "ranker")
            if entry is None or not entry.serve_latest:
                served = [name for entry in load_catalogue().models.values() if entry.serve_latest
                          for name in (entry.name, *entry.aliases)]
                raise InvalidRequestError(f"model={model!r}: expected emb, {', '.join(served)} or none (the "
                                          "champion)")
            ranker = entry.name
        answer = await in_recommend_threads(self.engine.recommend, id, size, None, False, ranker,
                                            retriever_only=model == "emb", api="getrecforyou")
        describe_answer(response, answer)
        return sparrow_movies(self.catalog, answer)


Recommender.add_asgi_middleware(ServiceEdges)
Recommender.add_asgi_middleware(RequestMetrics)
Recommender.add_asgi_middleware(BodyLimit)
Recommender.add_asgi_middleware(SpreadConnections)
