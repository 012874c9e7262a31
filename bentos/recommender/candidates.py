"""Retrieval and filtering: where the movies a ranker scores come from.

Candidate sources are a configured list (EAGLEREC_CANDIDATE_SOURCES: `name:count` in order, e.g. the default
"similar_to_liked:80,retriever:500,genre_popular:150,fresh:100"). Each proposes catalogue positions with a reason;
the first source to propose a movie explains it. Then the filters run (today: drop what the user rated), and at most
max_candidates go on to ranking, in the order proposed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bentos.recommender.movie_catalog import MovieCatalog
from eaglerec.contracts.names import LIKED_MOVIE_COUNT
from eaglerec.contracts.retrieval import Retriever, UserState

DEFAULT_SOURCES = "similar_to_liked:80,retriever:500,genre_popular:150,fresh:100"


@dataclass(frozen=True)
class CandidateRequest:
    """What the sources and filters see of a request."""

    catalog: MovieCatalog
    retriever: Retriever
    user: UserState
    user_genres: tuple[str, ...]
    rated_movie_ids: frozenset[int]
    neighbours: Neighbours


class Neighbours:
    """The retriever's movies next to a movie, as catalogue positions, kept once found: they do not depend on the
    user, and each is a search over every movie (one per liked movie in each request). One per loaded snapshot (the
    retriever and catalogue it was found with); at most one entry per movie and count asked."""

    def __init__(self, catalog: MovieCatalog, retriever: Retriever):
        self.catalog, self.retriever = catalog, retriever
        self.found: dict[tuple[int, int], np.ndarray] = {}

    def positions(self, movie_id: int, count: int) -> np.ndarray:
        key = (movie_id, count)
        positions = self.found.get(key)
        if positions is None:  # two threads may both search once: the same answer, stored twice
            positions = self.found[key] = self.catalog.positions_of(self.retriever.similar(movie_id, count).movie_ids)
        return positions


class Candidates:
    """Positions as the sources propose them; `settle` keeps each movie's first proposal, in proposal order."""

    def __init__(self):
        self.proposals: list[tuple[np.ndarray, str, Callable[[int], str]]] = []

    def add(self, positions, source: str, reason: Callable[[int], str]) -> None:
        """Propose positions; reason(position) explains one if it is shown (made only for the items answered)."""
        self.proposals.append((np.asarray(positions, dtype=np.int64), source, reason))

    def settle(self) -> Proposed:
        if not self.proposals:
            return Proposed(np.empty(0, np.int64), np.empty(0, np.int64), [])
        positions = np.concatenate([proposed for proposed, _, _ in self.proposals])
        proposers = np.repeat(np.arange(len(self.proposals)), [len(proposed) for proposed, _, _ in self.proposals])
        _, first = np.unique(positions, return_index=True)
        first.sort()
        return Proposed(positions[first], proposers[first], [(source, reason) for _, source, reason in self.proposals])


@dataclass(frozen=True)
class Proposed:
    """Distinct candidate positions in the order proposed, and which proposal (source, reason) each came from."""

    positions: np.ndarray
    proposers: np.ndarray
    proposals: list[tuple[str, Callable[[int], str]]]

    def keep(self, mask: np.ndarray) -> Proposed:
        return Proposed(self.positions[mask], self.proposers[mask], self.proposals)

    def limit(self, count: int) -> Proposed:
        return Proposed(self.positions[:count], self.proposers[:count], self.proposals)

    def explain(self, index: int) -> tuple[str, str]:
        """(source, reason) of the candidate at `index`."""
        source, reason = self.proposals[self.proposers[index]]
        return source, reason(int(self.positions[index]))


@dataclass(frozen=True)
class RetrieverSource:
    """The champion retriever's top movies for the user."""

    count: int
    name = "retriever"
    reason = "matches your taste"

    def propose(self, request: CandidateRequest, candidates: Candidates) -> None:
        found = request.retriever.retrieve(request.user, self.count, request.rated_movie_ids)
        candidates.add(request.catalog.positions_of(found.movie_ids), self.name, lambda _: self.reason)


@dataclass(frozen=True)
class SimilarToLikedSource:
    """The retriever's movies next to each of the user's last liked movies."""

    count: int
    name = "similar_to_liked"

    def propose(self, request: CandidateRequest, candidates: Candidates) -> None:
        catalog = request.catalog
        for movie_id in request.user.liked_movie_ids[:LIKED_MOVIE_COUNT]:
            if not catalog.has_movie(movie_id):
                continue
            title = catalog.summaries[catalog.position[movie_id]]["title"]
            candidates.add(request.neighbours.positions(movie_id, self.count), self.name,
                           lambda _, title=title: f"because you liked {title}")


@dataclass(frozen=True)
class GenrePopularSource:
    """The most liked movies of each of the user's top genres."""

    count: int
    name = "genre_popular"
    genres: int = 3

    def propose(self, request: CandidateRequest, candidates: Candidates) -> None:
        genre_movies = request.catalog.genre_movies
        for genre in [g for g in request.user_genres if g in genre_movies][:self.genres]:
            candidates.add(genre_movies[genre][:self.count], self.name, lambda _, genre=genre: f"popular in {genre}")


@dataclass(frozen=True)
class FreshSource:
    """The most liked movies released in the catalogue's last `years` years."""

    count: int
    name = "fresh"
    years: int = 3

    def propose(self, request: CandidateRequest, candidates: Candidates) -> None:
        catalog = request.catalog
        release_years = catalog.movies["release_year"].to_numpy()
        fresh = np.flatnonzero(release_years >= np.nanmax(release_years) - self.years + 1)
        fresh = fresh[np.argsort(-catalog.popularity[fresh], kind="stable")][:self.count]
        candidates.add(fresh, self.name, lambda position: f"new in {int(release_years[position])}")


SOURCES = {source.name: source for source in (RetrieverSource, SimilarToLikedSource, GenrePopularSource, FreshSource)}


def parse_sources(spec: str) -> tuple:
    """`name:count,...` -> source objects, in order; an unknown name or a bad count is an error naming it."""
    sources = []
    for item in (part.strip() for part in spec.split(",") if part.strip()):
        name, _, count = item.partition(":")
        if name not in SOURCES or not count.isdigit() or int(count) < 1:
            raise ValueError(f"EAGLEREC_CANDIDATE_SOURCES item {item!r}: expected <name>:<count> with name one of "
                             f"{', '.join(SOURCES)} and a count of at least 1")
        sources.append(SOURCES[name](int(count)))
    if not sources:
        raise ValueError("EAGLEREC_CANDIDATE_SOURCES names no source")
    return tuple(sources)


@dataclass(frozen=True)
class DropRated:
    """Never recommend back what the user rated, whichever source proposed it."""

    def keep(self, request: CandidateRequest, positions: np.ndarray) -> np.ndarray:
        """A mask of the positions to keep."""
        return ~np.isin(positions, request.catalog.positions_of(sorted(request.rated_movie_ids)))


FILTERS = (DropRated(),)


def retrieve_candidates(request: CandidateRequest, sources, limit: int, filters=FILTERS) -> Proposed:
    """Run the sources in order, then the filters; keep at most `limit` candidates."""
    candidates = Candidates()
    for source in sources:
        source.propose(request, candidates)
    proposed = candidates.settle()
    for step in filters:
        proposed = proposed.keep(step.keep(request, proposed.positions))
    return proposed.limit(limit)
