"""Feature build: run the dbt project over a dataset that passed the raw gate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from eaglerec.contracts.names import RAW_GATE_RECORD
from eaglerec.event_log import LIVE_RATINGS_FILE, WATERMARK_FILE
from eaglerec.files import compute_sha256
from eaglerec.settings import DBT_PROJECT_DIR, REPO_ROOT, Paths

SPLIT_METHODS = ("per_user_time", "global_time", "random")
# Where dbt runs the models: DuckDB in-process (the default), or a local Spark (dbt-spark, the Spark env). The marts
# are the same either way (tests/integration/test_spark.py compares them row for row), so the build record
# (_build.json, the data version) does not name the engine.
ENGINES = ("duckdb", "spark")
SPARK_DBT = REPO_ROOT / ".venvs" / "spark" / "bin" / "dbt"
# dbt_project.yml's default of var live_ratings_path, relative to the project: Spark needs it absolute.
NO_LIVE_RATINGS = DBT_PROJECT_DIR / "live" / "no_live_ratings.csv"
# The marts are the dbt project's models/marts/*.sql: one parquet file each (the DAG reads the same folder).
MARTS_DIR = DBT_PROJECT_DIR / "models" / "marts"


def list_marts() -> list[str]:
    """The marts' names, from the dbt project."""
    return sorted(path.stem for path in MARTS_DIR.glob("*.sql"))


class FeatureBuildError(Exception):
    """dbt build failed; dbt's own output above the message names the failing models and tests."""


class UngatedReleaseError(FeatureBuildError):
    """The release did not pass the raw gate, or changed since it did: nothing is built from it."""


def require_passed_gate(raw_dir: Path) -> dict:
    """Return the raw gate's record of a dataset, or raise UngatedReleaseError if its files are unvalidated or
    changed since."""
    raw_dir = Path(raw_dir)
    record = raw_dir / RAW_GATE_RECORD
    if not record.exists():
        raise UngatedReleaseError(f"{raw_dir}: no passed raw gate recorded ({RAW_GATE_RECORD} missing): run "
                                  "`eaglerec validate` first; the marts are unchanged")
    recorded = json.loads(record.read_text())
    changed = [name for name, sha in recorded["checksums"].items()
               if not (raw_dir / name).is_file() or compute_sha256(raw_dir / name) != sha]
    # Live ratings taken after the gate ran were never validated.
    changed += [path.name for path in raw_dir.glob("*.csv") if path.name not in recorded["checksums"]]
    if changed:
        problems = "; ".join(f"{name}: changed since it was validated" for name in changed)
        raise UngatedReleaseError(f"{raw_dir}: {problems}; validate again (the marts are unchanged)")
    return recorded


def choose_engine(engine: str | None = None) -> str:
    """The engine asked for, else EAGLEREC_FEATURE_ENGINE's, else duckdb; a ValueError names the choices."""
    engine = engine or os.environ.get("EAGLEREC_FEATURE_ENGINE") or ENGINES[0]
    if engine not in ENGINES:
        raise ValueError(f"feature engine {engine!r}: expected one of {', '.join(ENGINES)}")
    return engine


def find_dbt(engine: str = "duckdb") -> str:
    """Return the dbt executable for an engine: the Spark env's for spark, else the one of the environment running
    this code."""
    if engine == "spark":
        if not SPARK_DBT.exists():
            raise FeatureBuildError(f"dbt on Spark needs the Spark environment ({SPARK_DBT} is missing): run "
                                    "`make install-spark` (it needs a JRE 17+)")
        return str(SPARK_DBT)
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def spark_dir(paths: Paths) -> Path:
    """Spark's state for dbt: its Hive metastore (Derby) and the warehouse of its tables."""
    return paths.home / "spark"


def gather_spark_marts(paths: Paths, target_dir: Path, marts_dir: Path) -> list[str]:
    """Write each mart the last dbt run built on Spark (its run_results.json) as one parquet file in marts_dir,
    batch by batch from the table's part files; return their names."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    results = json.loads((target_dir / "run_results.json").read_text())["results"]
    built = {result["unique_id"].split(".")[-1] for result in results
             if result["unique_id"].startswith("model.") and result["status"] == "success"}
    gathered = []
    for mart in sorted(built & set(list_marts())):
        parts = ds.dataset(spark_dir(paths) / "warehouse" / "eaglerec.db" / mart, format="parquet")
        with pq.ParquetWriter(marts_dir / f"{mart}.parquet", parts.schema) as writer:
            for batch in parts.to_batches():
                writer.write_batch(batch)
        gathered.append(mart)
    return gathered


# Selections that build no mart: the marts folder is left alone, no staging copy.
LAYERS_WITHOUT_MARTS = ("staging", "intermediate")


def describe_build(gate: dict, dataset: str, dbt_vars: dict) -> dict:
    """What marts built now would be built from: the raw files' checksums (release and live ratings), the dbt code,
    the vars. It names the data version of the marts: parquet bytes differ between identical rebuilds (parallel
    writes), so models compare test sets by this record, not by hashing the files."""
    import hashlib

    code = hashlib.sha256()
    for path in sorted(DBT_PROJECT_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".sql", ".yml", ".csv") and "target" not in path.parts:
            code.update(path.relative_to(DBT_PROJECT_DIR).as_posix().encode() + compute_sha256(path).encode())
    return {"dataset": dataset, "raw_checksums": gate["checksums"], "dropped_rows": gate.get("dropped_rows", {}),
            "dbt_code": code.hexdigest(), "vars": dbt_vars}


def record_build(gate: dict, dataset: str, dbt_vars: dict, marts_dir: Path) -> None:
    """Write marts/_build.json: what the marts were built from (describe_build)."""
    (marts_dir / "_build.json").write_text(json.dumps(describe_build(gate, dataset, dbt_vars), indent=2,
                                                      sort_keys=True))


def choose_dbt_vars(dataset: str, paths: Paths, split_method: str, split_seed: int) -> dict:
    if split_method not in SPLIT_METHODS:
        raise ValueError(f"split_method {split_method!r}: expected one of {', '.join(SPLIT_METHODS)}")
    dbt_vars = {"dataset": dataset, "split_method": split_method, "split_seed": split_seed}
    raw_dir = paths.raw_dataset(dataset)
    gate = raw_dir / RAW_GATE_RECORD
    accepted = json.loads(gate.read_text()).get("accepted_dir") if gate.exists() else None
    if accepted:  # the gate left invalid rows out (invalid_rows=drop): dbt reads what it accepted
        raw_dir = raw_dir / accepted
        dbt_vars["raw_dir"] = str(raw_dir)
    live_ratings = raw_dir / LIVE_RATINGS_FILE
    if live_ratings.is_file():  # the site's ratings a features run took (else the dbt source reads none)
        dbt_vars["live_ratings_path"] = str(live_ratings)
    return dbt_vars


def features_changed(dataset: str, paths: Paths | None = None, split_method: str = "per_user_time",
                     split_seed: int = 42) -> bool:
    """Would a build now differ from the current marts (another release, new logged events, other dbt code or
    vars)? The dataset must have passed the raw gate."""
    paths = paths or Paths.from_env()
    gate = require_passed_gate(paths.raw_dataset(dataset))
    record = paths.marts / "_build.json"
    if not record.exists():
        return True
    wanted = describe_build(gate, dataset, choose_dbt_vars(dataset, paths, split_method, split_seed))
    return json.loads(json.dumps(wanted, sort_keys=True)) != json.loads(record.read_text())


def build_features(dataset: str, paths: Paths | None = None, split_method: str = "per_user_time",
                   split_seed: int = 42, select: str | None = None, engine: str | None = None) -> Path:
    """Run `dbt build` for a dataset that passed the raw gate, on an engine (choose_engine); return the marts folder.

    The marts are written to a staging folder (a copy of the current marts when only some are selected) that
    replaces $EAGLEREC_HOME/marts in one rename once every model and test passed: readers never see half-written
    marts, and a failed or killed build leaves the previous ones in place. On Spark the dbt unit tests are left out
    (their fixtures are DuckDB SQL); the marts' data tests run on both."""
    from eaglerec.files import replace_dir

    paths = paths or Paths.from_env()
    engine = choose_engine(engine)
    dbt_vars = choose_dbt_vars(dataset, paths, split_method, split_seed)
    gate = require_passed_gate(paths.raw_dataset(dataset))
    paths.marts.mkdir(parents=True, exist_ok=True)
    writes_marts = not select or any(part not in LAYERS_WITHOUT_MARTS for part in select.split())
    staging = paths.home / "marts.building"
    if writes_marts:
        shutil.rmtree(staging, ignore_errors=True)
        if select:  # marts outside the selection must survive the swap
            shutil.copytree(paths.marts, staging)
        staging.mkdir(parents=True, exist_ok=True)
    run_vars = dict(dbt_vars)
    target_dir = paths.home / "dbt" / "target"
    # dbt's compiled files and logs are runtime state too: keep them under EAGLEREC_HOME, out of the source tree.
    env = {**os.environ, "EAGLEREC_HOME": str(paths.home), "DBT_TARGET_PATH": str(target_dir),
           "DBT_LOG_PATH": str(paths.home / "dbt" / "logs"), "EAGLEREC_MARTS_DIR": str(staging)}
    engine_args = []
    if engine == "spark":
        run_vars.setdefault("live_ratings_path", str(NO_LIVE_RATINGS))
        engine_args = ["--target", "spark", "--exclude-resource-type", "unit_test"]
        env.update({"EAGLEREC_SPARK_DIR": str(spark_dir(paths)), "SPARK_LOCAL_IP": "127.0.0.1"})
        if not select:  # a whole build starts from an empty metastore and warehouse
            shutil.rmtree(spark_dir(paths), ignore_errors=True)
        spark_dir(paths).mkdir(parents=True, exist_ok=True)
    args = [find_dbt(engine), "build", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--vars", json.dumps(run_vars), *engine_args]
    if select:
        # Run only the tests whose every parent is in the selection: others would read marts not rebuilt.
        args += ["--select", select, "--indirect-selection", "cautious"]
    completed = subprocess.run(args, env=env, cwd=DBT_PROJECT_DIR)
    if completed.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        log = paths.home / "dbt" / "logs" / "dbt.log"
        raise FeatureBuildError(f"dbt build failed for dataset {dataset!r} (exit {completed.returncode}); the marts "
                                f"are unchanged; see the dbt output above and {log}")
    if writes_marts:
        if engine == "spark":
            gather_spark_marts(paths, target_dir, staging)
        # The data version record describes the marts it is swapped in with.
        record_build(gate, dataset, dbt_vars, staging)
        # Which logged events the marts hold (the service replays the later ones): none taken, none held.
        watermark = paths.raw_dataset(dataset) / WATERMARK_FILE
        if "live_ratings_path" in dbt_vars and watermark.is_file():
            shutil.copyfile(watermark, staging / WATERMARK_FILE)
        else:
            (staging / WATERMARK_FILE).unlink(missing_ok=True)
        replace_dir(staging, paths.marts)
    return paths.marts
