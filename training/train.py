"""Train any model of the catalogue: resolve its hyperparameters (the defaults of its module's `Params`, then the
catalogue entry's `params`, then the caller's overrides) and hand it to its kind's harness."""

from __future__ import annotations

import dataclasses
from importlib import import_module

from eaglerec.contracts.catalogue import CatalogueError, ModelEntry, load_catalogue
from eaglerec.settings import Paths
from training.tracking import TrainedRun


def resolve_params(entry: ModelEntry, overrides: dict | None = None):
    """The entry's `Params`, from the module's defaults, the catalogue's values and the overrides, in that order."""
    params_type = getattr(import_module(entry.module), "Params", None)
    if params_type is None or not dataclasses.is_dataclass(params_type):
        raise CatalogueError(f"{entry.name}: {entry.module} defines no `Params` dataclass")
    fields = {field.name: field for field in dataclasses.fields(params_type)}
    values = {**entry.params, **(overrides or {})}
    if unknown := sorted(set(values) - set(fields)):
        raise CatalogueError(f"{entry.name}: unknown parameter(s) {', '.join(unknown)}; {entry.module}.Params has "
                             f"{', '.join(fields) or 'none'}")
    # TOML has arrays, not tuples: a tuple field (hidden_units) takes a list as its tuple.
    return params_type(**{name: tuple(value) if isinstance(value, list) else value for name, value in values.items()})


def train_model(name: str, paths: Paths | None = None, overrides: dict | None = None, user_fraction: float = 1.0,
                verbose: int = 0, gate: bool = True) -> TrainedRun:
    """Train, evaluate, log and (if its entry competes) register one model of the catalogue."""
    from training.ranking import train_ranker
    from training.retrieval import train_retriever

    entry = load_catalogue().entry(name)
    params = resolve_params(entry, overrides)
    paths = paths or Paths.from_env()
    if entry.kind.name == "ranker":
        return train_ranker(entry, params, paths, user_fraction, verbose, gate)
    if user_fraction != 1.0:
        raise CatalogueError(f"{name}: retrievers train on every user (a user fraction applies to rankers only)")
    return train_retriever(entry, params, paths, verbose, gate)


def accepted_params(name: str) -> set[str]:
    """The hyperparameters a model takes (its module's `Params` fields)."""
    entry = load_catalogue().entry(name)
    return {field.name for field in dataclasses.fields(resolve_params(entry))}
