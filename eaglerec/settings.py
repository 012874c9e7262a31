"""Where things live: paths and switches read from the environment (listed once in .env.example)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OFFLINE_ENV_FILE = Path(__file__).with_name("offline.env")
DEFAULT_DATASET = "ml-latest-small"
BUNDLED_DATASET_DIR = REPO_ROOT / "data" / "sample" / DEFAULT_DATASET
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"


def read_offline_env() -> dict[str, str]:
    """Return the telemetry-off variables of offline.env as a dict."""
    pairs = {}
    for line in OFFLINE_ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def duckdb_memory_limit() -> str:
    """DuckDB's memory for every job that runs one (dbt, Feast's offline store, the training-set gate): beyond it,
    DuckDB spills to disk. Unbounded it takes 80 % of RAM, which a 25M-rating job does."""
    return os.environ.get("EAGLEREC_DUCKDB_MEMORY_LIMIT", "4GB")


def apply_offline_env() -> None:
    """Switch telemetry off for every tool this process or its children start (explicit settings win)."""
    for key, value in read_offline_env().items():
        os.environ.setdefault(key, value)


@dataclass(frozen=True)
class Paths:
    """The runtime state tree under EAGLEREC_HOME."""

    home: Path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(Path(os.environ.get("EAGLEREC_HOME", REPO_ROOT / "var")).resolve())

    @property
    def raw(self) -> Path:
        return self.home / "raw"

    @property
    def downloads(self) -> Path:
        return self.home / "downloads"

    @property
    def marts(self) -> Path:
        return self.home / "marts"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def events(self) -> Path:
        """The service's durable log of rating events and impressions (eaglerec/event_log.py)."""
        return self.home / "events"

    @property
    def exports(self) -> Path:
        return self.home / "exports"

    @property
    def reports(self) -> Path:
        """What people read: the comparison table, A/B outcomes, model health, the gates' bad-row files."""
        return self.home / "reports"

    def raw_dataset(self, dataset: str) -> Path:
        return self.raw / dataset
