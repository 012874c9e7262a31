"""Read the model catalogue (models.toml, next to this file): every model EagleRec can train, listed once.

The DAG reads the same file with the standard library (it cannot import this package); a contract test checks that
both readings agree."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType

CATALOGUE_FILE = Path(__file__).with_name("models.toml")
KINDS = ("ranker", "retriever")
REQUIRED_KEYS = {"kind", "module", "description", "baseline", "registered", "default"}
OPTIONAL_KEYS = {"params", "serve_latest", "aliases"}
KIND_KEYS = {"experiment", "registered_model", "gate_metric"}
OPTIONAL_KIND_KEYS = {"gate_min_gain", "refit"}


class CatalogueError(ValueError):
    """The catalogue is malformed or a name is not in it; the message names the entry and what was expected."""


@dataclass(frozen=True)
class Kind:
    """What every model of one kind is tracked in, registered as and gated on."""

    name: str
    experiment: str
    registered_model: str
    gate_metric: str
    # The gate promotes when the 95 % interval of (candidate - champion) lies wholly above this.
    gate_min_gain: float = 0.0
    # Serve a refit on all ratings of each served version's configuration (the evaluated version stays the one gated).
    refit: bool = True


@dataclass(frozen=True)
class ModelEntry:
    """One model of the catalogue."""

    name: str
    kind: Kind
    module: str
    description: str
    baseline: bool
    registered: bool
    default: bool
    params: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    serve_latest: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def registered_model(self) -> str | None:
        """The registered model this entry competes in, if any."""
        return self.kind.registered_model if self.registered else None


@dataclass(frozen=True)
class QualityGoals:
    """What the comparison checks the models against, on test (the best model of a kind chosen on validation)."""

    reference_retriever: str
    recall_over_reference: float  # the best retriever's Recall@10 over the reference's
    best_ndcg_at_10: float
    best_auc: float
    ranker_order: tuple[str, str]  # the first ranks at least as well as the second


@dataclass(frozen=True)
class ModelCatalogue:
    kinds: dict[str, Kind]
    models: dict[str, ModelEntry]
    goals: QualityGoals | None = None

    def entry(self, name: str) -> ModelEntry:
        if name not in self.models:
            raise CatalogueError(f"model {name!r} is not in the catalogue ({CATALOGUE_FILE.name}): expected one of "
                                 f"{', '.join(self.models)}")
        return self.models[name]

    def names(self, kind: str | None = None, defaults_only: bool = False) -> list[str]:
        """Model names in catalogue order, optionally of one kind and only those trained by default."""
        return [name for name, entry in self.models.items()
                if (kind is None or entry.kind.name == kind) and (entry.default or not defaults_only)]

    def find_by_alias(self, name: str, kind: str) -> ModelEntry | None:
        """The entry of a kind called `name` or having it among its aliases."""
        for entry in self.models.values():
            if entry.kind.name == kind and (entry.name == name or name in entry.aliases):
                return entry
        return None


def parse_catalogue(text: str, source: str = CATALOGUE_FILE.name) -> ModelCatalogue:
    """Parse and check a catalogue: known kinds, every required key, no unknown key, unique aliases."""
    data = tomllib.loads(text)
    kinds = {}
    for name, table in data.get("kinds", {}).items():
        if name not in KINDS or not KIND_KEYS <= set(table) <= KIND_KEYS | OPTIONAL_KIND_KEYS:
            raise CatalogueError(f"{source}: [kinds.{name}] must be one of {KINDS} with keys {sorted(KIND_KEYS)} "
                                 f"(optional: {sorted(OPTIONAL_KIND_KEYS)})")
        if not isinstance(table.get("refit", True), bool):
            raise CatalogueError(f"{source}: [kinds.{name}] refit must be true or false")
        kinds[name] = Kind(name, **table)
    if set(kinds) != set(KINDS):
        raise CatalogueError(f"{source}: expected a [kinds.<kind>] table for each of {', '.join(KINDS)}")
    models, aliases = {}, {}
    for name, table in data.get("models", {}).items():
        where = f"{source}: [models.{name}]"
        if missing := REQUIRED_KEYS - set(table):
            raise CatalogueError(f"{where} lacks {', '.join(sorted(missing))}")
        if unknown := set(table) - REQUIRED_KEYS - OPTIONAL_KEYS:
            raise CatalogueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; expected "
                                 f"{', '.join(sorted(REQUIRED_KEYS | OPTIONAL_KEYS))}")
        if table["kind"] not in kinds:
            raise CatalogueError(f"{where}: kind {table['kind']!r}, expected one of {', '.join(KINDS)}")
        for flag in ("baseline", "registered", "default", "serve_latest"):
            if not isinstance(table.get(flag, False), bool):
                raise CatalogueError(f"{where}: {flag} must be true or false")
        if not name.isidentifier() or not name.islower():
            raise CatalogueError(f"{where}: a name is lower-case letters, digits and underscores")
        for alias in table.get("aliases", ()):
            if alias in aliases or alias in data["models"]:
                raise CatalogueError(f"{where}: alias {alias!r} names another model too")
            aliases[alias] = name
        models[name] = ModelEntry(
            name=name, kind=kinds[table["kind"]], module=table["module"], description=table["description"],
            baseline=table["baseline"], registered=table["registered"], default=table["default"],
            params=MappingProxyType(dict(table.get("params", {}))), serve_latest=table.get("serve_latest", False),
            aliases=tuple(table.get("aliases", ())))
    goals = None
    if "goals" in data:
        table = data["goals"]
        fields = {"reference_retriever", "recall_over_reference", "best_ndcg_at_10", "best_auc", "ranker_order"}
        if set(table) != fields:
            raise CatalogueError(f"{source}: [goals] must have exactly {', '.join(sorted(fields))}")
        named = [table["reference_retriever"], *table["ranker_order"]]
        if unknown := [name for name in named if name not in models]:
            raise CatalogueError(f"{source}: [goals] names {', '.join(unknown)}, not in the catalogue")
        goals = QualityGoals(**{**table, "ranker_order": tuple(table["ranker_order"])})
    return ModelCatalogue(kinds, models, goals)


@cache
def load_catalogue() -> ModelCatalogue:
    """The project's catalogue, read once per process."""
    return parse_catalogue(CATALOGUE_FILE.read_text())
