"""The request path without BentoML (testable in-process), as stages: the user's state (one online read) →
candidates from the configured sources → filters (drop rated) → one batched ranker call → re-ranking (genre cap) →
the top k with scores and reasons. Unknown users get a cold-start list. A `Snapshot` holds everything a request
reads; a reload swaps it whole."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass

import numpy as np

from bentos.recommender.candidates import (
    DEFAULT_SOURCES,
    CandidateRequest,
    Neighbours,
    Proposed,
    RetrieverSource,
    parse_sources,
    retrieve_candidates,
)
from bentos.recommender.errors import InvalidRequestError, UnavailableError
from bentos.recommender.events import EventRecorder
from bentos.recommender.models import ModelSet, load_model_set, share_cores
from bentos.recommender.movie_catalog import MovieCatalog, load_movie_catalog
from bentos.recommender.queries import check_k, summarise_movie
from bentos.recommender.reranking import GenreCap, rerank_top
from bentos.recommender.user_state import UserStateReader, to_user_state
from bentos.recommender.workers import RELOAD_TIMEOUT_SECONDS, WATCH_SECONDS, WorkerSync, serving_workers
from eaglerec.contracts.catalogue import load_catalogue
from eaglerec.contracts.names import CHALLENGER, CHAMPION
from eaglerec.event_log import ImpressionLog, RatingLog, Watermark
from eaglerec.feature_store import load_movie_facts, open_feature_store
from eaglerec.settings import Paths

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingConfig:
    """Where things are and how the service behaves; from the environment (listed in .env.example)."""

    paths: Paths
    tracking_uri: str
    max_k: int
    max_per_genre: int
    challenger_share: float
    experiment: str
    admin_token: str | None
    ranker_model: str
    retriever_model: str
    candidate_sources: str = DEFAULT_SOURCES
    max_candidates: int = 800
    workers: int = 1  # the service's worker processes: more than one share reloads (workers.py)

    @classmethod
    def from_env(cls) -> ServingConfig:
        share = float(os.environ.get("EAGLEREC_AB_CHALLENGER_SHARE", "0.1"))
        if not 0 <= share <= 1:
            raise ValueError(f"EAGLEREC_AB_CHALLENGER_SHARE={share}: expected a share between 0 and 1")
        kinds = load_catalogue().kinds
        return cls(Paths.from_env(), os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
                   int(os.environ.get("EAGLEREC_MAX_K", "100")), int(os.environ.get("EAGLEREC_MAX_PER_GENRE", "3")),
                   share, os.environ.get("EAGLEREC_AB_EXPERIMENT", "ranker-ab"),
                   os.environ.get("EAGLEREC_ADMIN_TOKEN") or None,
                   os.environ.get("EAGLEREC_RANKER_MODEL") or kinds["ranker"].registered_model,
                   os.environ.get("EAGLEREC_RETRIEVER_MODEL") or kinds["retriever"].registered_model,
                   os.environ.get("EAGLEREC_CANDIDATE_SOURCES") or DEFAULT_SOURCES,
                   int(os.environ.get("EAGLEREC_MAX_CANDIDATES", "800")), serving_workers())


def assign_variant(user_id: int, experiment: str, challenger_share: float) -> str:
    """A stable bucket in [0, 1) from SHA-256 of experiment and user: the same user always gets the same variant."""
    digest = hashlib.sha256(f"{experiment}:{user_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64
    return CHALLENGER if bucket < challenger_share else CHAMPION


@dataclass(frozen=True)
class Snapshot:
    """Everything a request reads, swapped as one reference on reload."""

    catalog: MovieCatalog
    models: ModelSet
    loaded_at: float
    neighbours: Neighbours


# MLflow's client retries a refused connection with exponential back-off for minutes by default: a reload while
# MLflow is down would outlive the request timeout. Fail within seconds instead (unless configured otherwise).
MLFLOW_CLIENT_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


class RecommendationEngine:
    def __init__(self, config: ServingConfig | None = None, worker: int = 1):
        for name, value in MLFLOW_CLIENT_LIMITS.items():
            os.environ.setdefault(name, value)
        self.config = config or ServingConfig.from_env()
        self.sources = parse_sources(self.config.candidate_sources)
        self.rerankers = (GenreCap(self.config.max_per_genre),)
        self.store = open_feature_store(self.config.paths)
        movie_facts = load_movie_facts(self.config.paths)
        self.user_state = UserStateReader(self.store, movie_facts)
        self.events = EventRecorder(self.store, movie_facts, RatingLog(self.config.paths.events), self.user_state)
        self.impressions = ImpressionLog(self.config.paths.events)
        self._reload_lock = threading.Lock()
        self.sync = None
        if self.config.workers > 1:
            share_cores(self.config.workers)
            self.sync = WorkerSync.for_server(self.config.paths.home, worker, self.config.workers)
            self.generation = self.sync.generation()
        self.snapshot = self.with_live_ratings(self.load_snapshot())
        if self.sync is not None:
            threading.Thread(target=self._follow_reloads, name="eaglerec-reload-follower", daemon=True).start()

    def load_snapshot(self) -> Snapshot:
        catalog = load_movie_catalog(self.config.paths, self.store)
        models = load_model_set(catalog, self.config.tracking_uri, self.config.ranker_model,
                                self.config.retriever_model)
        return Snapshot(catalog, models, time.time(), Neighbours(catalog, models.retriever.retriever))

    def with_live_ratings(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot with the logged ratings its marts do not hold (replayed from the event log)."""
        snapshot.catalog.live = self.events.replay(Watermark.read(self.config.paths.marts))
        return snapshot

    def reload(self) -> dict:
        """Load the current champions and tables, then swap them in at once; requests in flight keep the old ones.
        If anything fails to load (MLflow down, a model missing), the service keeps what it serves. With several
        workers, the others reload too, and this answers once they all have."""
        before = self.snapshot.models.describe()
        self.reload_here(before)
        if self.sync is not None:
            self.generation = generation = self.sync.announce()
            failed = {worker: error for worker, error in self.sync.wait_for_others(
                generation, RELOAD_TIMEOUT_SECONDS).items() if error is not None}
            if failed:
                raise UnavailableError(f"reload: worker {self.sync.worker} serves {self.snapshot.models.describe()}, "
                                       f"but {'; '.join(f'worker {w}: {e}' for w, e in sorted(failed.items()))}")
        return {"before": before, "after": self.snapshot.models.describe(), "workers": self.config.workers}

    def reload_here(self, before: dict) -> None:
        with self._reload_lock:
            try:
                snapshot = self.with_live_ratings(self.load_snapshot())
            except Exception as exc:
                LOGGER.exception("reload failed; the current models stay")
                raise UnavailableError(f"reload failed ({type(exc).__name__}: {exc}); still serving {before}") from exc
            self.snapshot = snapshot

    def _follow_reloads(self) -> None:
        """Reload when another worker announces a new generation, and say how it went."""
        while True:
            time.sleep(WATCH_SECONDS)
            try:
                generation = self.sync.generation()
                if generation is None or generation == self.generation:
                    continue
                self.generation = generation
                error = None
                try:
                    self.reload_here(self.snapshot.models.describe())
                except UnavailableError as exc:
                    error = str(exc)
                self.sync.acknowledge(generation, error)
            except OSError:
                LOGGER.exception("worker %d: cannot follow reloads", self.sync.worker)

    @property
    def degraded(self) -> bool:
        return not self.user_state.online_store_ok

    def read_user_state(self, user_id: int) -> dict:
        self.events.catch_up()  # ratings other workers took since: in this worker's live ratings too
        return self.user_state.read(user_id, self.snapshot.catalog)

    def status(self) -> dict:
        """What /readyz reports: ready (models loaded) and whether requests are degraded."""
        online = self.user_state.probe()
        if online:
            self.events.push_pending()
        return {"ready": True, "degraded": not online, "online_store": "ok" if online else "unavailable",
                "models": self.snapshot.models.describe()}

    def variant_of(self, user_id: int) -> str:
        return assign_variant(user_id, self.config.experiment, self.config.challenger_share)

    def candidate_request(self, snapshot: Snapshot, user_id: int, state: dict) -> CandidateRequest:
        catalog = snapshot.catalog
        return CandidateRequest(catalog, snapshot.models.retriever.retriever, to_user_state(user_id, state),
                                tuple(state.get("user_genres") or ()),
                                frozenset(catalog.rated_movie_ids(user_id, state.get("recent_movie_ids") or ())),
                                snapshot.neighbours)

    def recommend(self, user_id: int, k: int = 10, variant: str | None = None, explain: bool = True,
                  ranker: str | None = None, retriever_only: bool = False, api: str = "recommend") -> dict:
        """Top k movies for a user: ranked by the variant's ranker, or by a ranker named by its catalogue name, or
        straight from the retriever (SparrowRecSys's model=emb). Each answer has a request_id and is logged as an
        impression (what was shown, where, by which models), which a later rating event may name."""
        snapshot = self.snapshot
        answer = self.rank_for(snapshot, user_id, k, variant, explain, ranker, retriever_only)
        answer = {**answer, "request_id": uuid.uuid4().hex, "retriever_model": snapshot.models.retriever.label}
        self.impressions.record({
            "request_id": answer["request_id"], "served_at": time.time(), "api": api, "user_id": user_id,
            "experiment": self.config.experiment,
            "variant": answer["variant"], "cold_start": answer["cold_start"], "ranker": answer["ranker"],
            "retriever": answer["retriever_model"],
            "items": [{"movie_id": item["movie_id"], "position": position, "score": item["score"],
                       "source": item["retriever"]} for position, item in enumerate(answer["items"], start=1)]})
        return answer

    def rank_for(self, snapshot: Snapshot, user_id: int, k: int, variant: str | None, explain: bool,
                 ranker: str | None, retriever_only: bool) -> dict:
        check_k(k, self.config.max_k)
        models = snapshot.models
        if variant is not None and variant not in models.rankers:
            raise InvalidRequestError(f"variant {variant!r}: expected one of {sorted(models.rankers)}")
        if ranker is not None and ranker not in models.named_rankers:
            raise InvalidRequestError(f"ranker {ranker!r}: expected one of {sorted(models.named_rankers)}")
        variant = variant or self.variant_of(user_id)
        variant = variant if variant in models.rankers else CHAMPION
        state = self.read_user_state(user_id)
        catalog = snapshot.catalog
        answer = {"user_id": user_id, "variant": variant, "cold_start": False}
        known = (state.get("user_rating_count") is not None or bool(state.get("recent_movie_ids"))
                 or catalog.has_user(user_id))
        if not known:
            return {**answer, "cold_start": True, "ranker": None, "candidates": 0, "degraded": self.degraded,
                    "items": self.cold_start(catalog, k)}
        request = self.candidate_request(snapshot, user_id, state)
        if retriever_only:
            source = RetrieverSource(self.config.max_candidates)
            found = request.retriever.retrieve(request.user, source.count, request.rated_movie_ids)
            proposed = Proposed(catalog.positions_of(found.movie_ids), np.zeros(len(found), np.int64),
                                [(source.name, lambda _: RetrieverSource.reason)])
            scores, label = found.scores[np.isin(found.movie_ids, catalog.movie_ids)], models.retriever.label
        else:
            proposed = retrieve_candidates(request, self.sources, self.config.max_candidates)
            chosen = models.named_rankers[ranker] if ranker else models.rankers[variant]
            scores, label = chosen.rank(user_id, state, proposed.positions), chosen.label
        positions = proposed.positions
        items = []
        for index in rerank_top(catalog, positions, scores, k, self.rerankers):
            source, reason = proposed.explain(index)
            item = {**summarise_movie(catalog, int(positions[index])), "score": float(scores[index]),
                    "retriever": source}
            if explain:
                item["reason"] = reason
            items.append(item)
        return {**answer, "ranker": label, "candidates": len(positions), "degraded": self.degraded, "items": items}

    def cold_start(self, catalog: MovieCatalog, k: int) -> list[dict]:
        """Popular movies, re-ranked like any list (at most max_per_genre of one primary genre)."""
        order = np.argsort(-catalog.popularity, kind="stable")[: max(50 * k, 500)]
        chosen = rerank_top(catalog, order, catalog.popularity[order], k, self.rerankers)
        return [{**summarise_movie(catalog, int(order[i])), "score": float(catalog.popularity[order[i]]),
                 "retriever": "popularity", "reason": f"popular in {catalog.primary_genre(int(order[i]))}"}
                for i in chosen]
