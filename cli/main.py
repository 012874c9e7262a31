"""The eaglerec command line: one subcommand per pipeline step (ingest, validate, build-features, Feast, training,
comparison, promotion, serving, Airflow, exports). The one module that wires the stages together: each command
imports the stage it runs when it runs."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from eaglerec.contracts.catalogue import KINDS, load_catalogue
from eaglerec.contracts.names import INVALID_ROWS_POLICIES, MAX_INVALID_SHARE
from eaglerec.features import ENGINES, SPLIT_METHODS, choose_engine
from eaglerec.ingest import IngestError
from eaglerec.settings import BUNDLED_DATASET_DIR, DEFAULT_DATASET, Paths, apply_offline_env


def run_ingest(args: argparse.Namespace) -> None:
    from eaglerec.ingest import ingest

    result = ingest(args.source, args.dataset, expected_sha256=args.sha256)
    state = "copied" if result.changed else "unchanged (same checksums)"
    print(f"ingest {result.dataset}: {state} -> {result.raw_dir}")


def run_take_events(args: argparse.Namespace) -> None:
    from eaglerec.event_log import take_live_ratings

    paths = Paths.from_env()
    raw_dir = paths.raw_dataset(args.dataset)
    if not raw_dir.is_dir():
        raise IngestError(f"{raw_dir}: no ingested dataset {args.dataset!r}: run `eaglerec ingest` first")
    taken = take_live_ratings(paths.events, raw_dir)
    print(f"take-events {args.dataset}: {taken.events:,} logged rating events -> {taken.ratings:,} live ratings in "
          f"{raw_dir / 'live_ratings.csv'} (watermark {taken.watermark.offsets or 'empty log'})")


def run_validate(args: argparse.Namespace) -> None:
    from expectations.gate import validate_raw_dataset

    paths = Paths.from_env()
    report = validate_raw_dataset(paths.raw_dataset(args.dataset),
                                  reports_dir=paths.reports / "raw_gate" / args.dataset,
                                  invalid_rows=args.invalid_rows, max_invalid_share=args.max_invalid_share)
    rows = ", ".join(f"{name} {count:,}" for name, count in report.row_counts.items())
    print(f"raw gate passed for {args.dataset}: {report.expectations_run} expectations; rows: {rows}")
    if report.dropped_rows:
        left_out = ", ".join(f"{name} {count:,}" for name, count in report.dropped_rows.items())
        print(f"invalid_rows=drop left rows out ({left_out}), for these problems:")
        print("\n".join(f"  - {problem}" for problem in report.dropped_problems))
        print(f"every row left out, with its reason: {report.quarantine_file}")


def run_build_features(args: argparse.Namespace) -> None:
    from eaglerec.features import build_features

    marts = build_features(args.dataset, split_method=args.split_method, split_seed=args.split_seed,
                           select=args.select, engine=args.engine)
    print(f"features built for {args.dataset}: marts in {marts}")


# features-changed answers by exit code: 0 a build would differ from the marts, this when it would not.
UNCHANGED_EXIT = 3


def run_features_changed(args: argparse.Namespace) -> int:
    from eaglerec.features import features_changed

    if features_changed(args.dataset, split_method=args.split_method, split_seed=args.split_seed):
        print(f"features of {args.dataset}: the release, the logged events, the dbt code or the split changed since "
              "the marts were built")
        return 0
    print(f"features of {args.dataset}: unchanged since the marts were built (nothing to rebuild)")
    return UNCHANGED_EXIT


def run_show_marts(args: argparse.Namespace) -> None:
    import duckdb

    marts = Paths.from_env().marts
    files = sorted(marts.glob("*.parquet"))
    if not files:
        print(f"no marts in {marts}")
    with duckdb.connect() as con:
        for path in files:
            rows, = con.execute("select count(*) from read_parquet(?)", [str(path)]).fetchone()
            columns = len(con.execute("describe select * from read_parquet(?)", [str(path)]).fetchall())
            print(f"  {path.stem:<22} {rows:>10,} rows  {columns:>3} columns  {path}")


def run_feast_apply(args: argparse.Namespace) -> None:
    from eaglerec.feature_store import apply_feature_repo, select_online_store

    apply_feature_repo(online_store=args.online_store)
    print(f"feast apply: feature repo registered, {select_online_store(args.online_store)} online store ready")


def run_materialize(args: argparse.Namespace) -> None:
    from eaglerec.feature_store import materialize_online, open_feature_store

    for view, outcome in materialize_online(open_feature_store(online_store=args.online_store)).items():
        print(f"  {view:<22} {outcome}")


def run_tracking_server(args: argparse.Namespace) -> None:
    from eaglerec.processes import read_running_pid, stop_process_group
    from training.tracking import DEFAULT_TRACKING_PORT, start_tracking_server, wait_for_tracking_server

    pid_file = Paths.from_env().home / "mlflow" / "server.pid"
    if args.action == "stop":
        if (pid := stop_process_group(pid_file)) is not None:
            print(f"stopped the MLflow server (pid {pid})")
        return
    uri = f"http://127.0.0.1:{DEFAULT_TRACKING_PORT}"
    if read_running_pid(pid_file) is None:
        server = start_tracking_server(Paths.from_env())
        pid_file.write_text(str(server.pid))
        wait_for_tracking_server(uri, server)
    print(f"MLflow UI and tracking server: {uri} (pid {read_running_pid(pid_file)})")


def run_serve(args: argparse.Namespace) -> None:
    import secrets

    from eaglerec.processes import read_running_pid, start_recommender, stop_process_group, wait_for_http

    state = Paths.from_env().home / "recommender"
    state.mkdir(parents=True, exist_ok=True)
    pid_file = state / "server.pid"
    if args.action == "stop":
        if (pid := stop_process_group(pid_file)) is not None:
            print(f"stopped the recommender (pid {pid})")
        return
    port = os.environ.get("EAGLEREC_SERVE_PORT", "3000")
    url = f"http://127.0.0.1:{port}"
    if args.action == "reload":
        reload_recommender(url, pid_file, state / "admin_token")
        return
    # The admin API (/admin/reload) needs a token: generated once, readable by this user only.
    token_file = state / "admin_token"
    if not token_file.exists():
        token_file.touch(mode=0o600)
        token_file.write_text(secrets.token_urlsafe(24))
    if read_running_pid(pid_file) is None:
        env = {**os.environ, "EAGLEREC_ADMIN_TOKEN": os.environ.get("EAGLEREC_ADMIN_TOKEN") or token_file.read_text()}
        server = start_recommender(port, state / "server.log", env)
        pid_file.write_text(str(server.pid))
        try:
            wait_for_http(f"{url}/readyz", server, timeout=300, name="the recommender")
        except RuntimeError as exc:
            stop_process_group(pid_file)
            raise ServiceStartError(f"{exc}; its log: {state / 'server.log'}") from None
    print(f"recommender: {url} (pid {read_running_pid(pid_file)}); admin token in {token_file}")


def reload_recommender(url: str, pid_file: Path, token_file: Path) -> None:
    """POST /admin/reload to the recommender `make serve` started; nothing to do if it is not running."""
    import json
    import urllib.request

    from eaglerec.processes import read_running_pid

    if read_running_pid(pid_file) is None:
        print("the recommender is not running (make serve starts it): nothing to reload")
        return
    request = urllib.request.Request(f"{url}/admin/reload", b"", method="POST",
                                     headers={"Authorization": f"Bearer {token_file.read_text().strip()}"})
    with urllib.request.urlopen(request, timeout=600) as response:
        swapped = json.loads(response.read())
    print(f"recommender reloaded: {swapped['before']} -> {swapped['after']}")


class ServiceStartError(Exception):
    """A background service did not come up; the message points at its log."""


def run_models(args: argparse.Namespace) -> None:
    import json

    catalogue = load_catalogue()
    names = catalogue.names(args.kind)
    if args.json:
        print(json.dumps([describe_entry(catalogue.entry(name), args.params) for name in names], indent=2))
        return
    print(f"{'model':<20} {'kind':<10} {'baseline':<9} {'default':<8} {'registered model':<19} description")
    for name in names:
        entry = catalogue.entry(name)
        print(f"{name:<20} {entry.kind.name:<10} {yes_no(entry.baseline):<9} {yes_no(entry.default):<8} "
              f"{entry.registered_model or '-':<19} {entry.description}")
        if args.params:
            print(f"{'':<20} params {describe_entry(entry, True)['params']}")


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def describe_entry(entry, resolve_params: bool) -> dict:
    """An entry as plain data; with resolve_params, its hyperparameters as training will use them (this imports
    the model's module)."""
    from dataclasses import asdict

    described = {"name": entry.name, "kind": entry.kind.name, "module": entry.module,
                 "description": entry.description, "baseline": entry.baseline, "default": entry.default,
                 "registered_model": entry.registered_model, "experiment": entry.kind.experiment,
                 "params": dict(entry.params)}
    if resolve_params:
        from training.train import resolve_params as resolve

        described["params"] = asdict(resolve(entry))
    return described


def choose_models(args: argparse.Namespace) -> list[str]:
    catalogue = load_catalogue()
    if args.model:
        return list(dict.fromkeys(args.model))
    return catalogue.names(args.kind, defaults_only=args.defaults)


def run_train(args: argparse.Namespace) -> None:
    import mlflow

    from training.compare import TABLES
    from training.tracking import tracking_uri
    from training.train import accepted_params, train_model

    # MLflow's own default is a local ./mlruns folder: log to the project's server unless told otherwise.
    mlflow.set_tracking_uri(tracking_uri())
    for name in choose_models(args):
        entry = load_catalogue().entry(name)
        overrides = {"epochs": args.epochs} if args.epochs and "epochs" in accepted_params(name) else {}
        user_fraction = args.user_fraction if entry.kind.name == "ranker" else 1.0
        outcome = train_model(name, overrides=overrides, user_fraction=user_fraction, verbose=1, gate=not args.no_gate)
        shown = TABLES[entry.kind.name][1]
        scores = ", ".join(f"{shown[metric]} {value:.4f}" for metric, value in outcome.metrics.items()
                           if metric in shown and metric.startswith("test"))
        speed = f", {outcome.examples_per_second:,.0f} examples/s" if outcome.examples_per_second else ""
        print(f"{name}: {scores}; {outcome.train_seconds:.1f} s{speed}"
              + (f"; {outcome.decision}" if outcome.decision else ""))


def run_tune(args: argparse.Namespace) -> None:
    import mlflow

    from training.tracking import tracking_uri
    from training.tuning import tune_model

    mlflow.set_tracking_uri(tracking_uri())
    overrides = {"epochs": args.epochs} if args.epochs else {}
    print(tune_model(args.model, trials=args.trials, timeout_minutes=args.timeout_minutes,
                     user_fraction=args.user_fraction, overrides=overrides, seed=args.seed,
                     final=not args.no_final).describe())


def run_airflow(args: argparse.Namespace) -> None:
    from cli.orchestration import (
        DEFAULT_AIRFLOW_PORT,
        USERNAME,
        airflow_home,
        choose_executor,
        read_password,
        run_pipeline,
        start_airflow,
        stop_airflow,
    )

    paths = Paths.from_env()
    port = int(os.environ.get("EAGLEREC_AIRFLOW_PORT", DEFAULT_AIRFLOW_PORT))
    if args.action == "stop":
        for service in stop_airflow(paths):
            print(f"stopped airflow {service}")
        return
    if args.action == "start":
        url = start_airflow(paths, port)
        password_file = airflow_home(paths) / "simple_auth_manager_passwords.json.generated"
        read_password(paths)
        print(f"Airflow UI: {url} (user {USERNAME}; its generated password is in {password_file}); executor: "
              f"{choose_executor()}")
        return
    conf = {"source": args.source, "dataset": args.dataset or Path(args.source.rstrip("/")).name.removesuffix(".zip")}
    if args.models is not None:
        conf["models"] = [name for name in args.models.split(",") if name]
        for name in conf["models"]:
            load_catalogue().entry(name)  # an unknown name fails here, before a run is triggered
    if args.epochs:
        conf["epochs"] = args.epochs
    conf["rebuild"] = args.rebuild
    conf["invalid_rows"] = args.invalid_rows
    conf["engine"] = choose_engine(args.engine)
    run_pipeline(paths, conf, port)


def run_validate_training_set(args: argparse.Namespace) -> None:
    from training.data import gate_training_examples

    rows = gate_training_examples(Paths.from_env())
    print(f"training-set gate passed: rating_examples, {rows:,} rows")


def run_compare(args: argparse.Namespace) -> None:
    import mlflow

    from training.compare import compare_models, write_comparison
    from training.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    comparison = compare_models()
    print(comparison.to_markdown())
    for path in write_comparison(comparison).values():
        print(f"wrote {path}")


class UnhealthyModelError(Exception):
    """Monitoring found drift, skew or bad scores past a threshold; the report says which."""


def run_monitor(args: argparse.Namespace) -> None:
    from eaglerec.feature_store import open_feature_store
    from monitoring.health import check_health, write_health_report

    paths = Paths.from_env()
    since = time.time() - args.since_hours * 3600 if args.since_hours else None
    report = check_health(paths, open_feature_store(paths), since, args.sample_users, psi_threshold=args.psi_threshold)
    if len(report.drift):
        print(f"drift, training events against {report.recent_events:,} recent ones:")
        for row in report.drift.itertuples():
            print(f"  {row.feature:<17} PSI {row.psi:.4f}  KS {row.ks_statistic:.4f} (p {row.ks_p_value:.3g})")
    else:
        print("drift: no recent events logged")
    print(f"skew: {report.skew['user_id'].nunique()} of {report.skew_users} sampled users differ online from the marts")
    for row in report.scores.itertuples():
        print(f"  scores of {row.ranker}: {row.scores:,} served, median {row.median:.4f} "
              f"[p05 {row.p05:.4f}, p95 {row.p95:.4f}], not finite {row.not_finite}")
    for path in write_health_report(report, paths.reports).values():
        print(f"wrote {path}")
    if report.problems:
        raise UnhealthyModelError("monitoring failed: " + "; ".join(report.problems)
                                  + f" (see {paths.home / 'reports' / 'model_health.html'})")
    print("monitoring: healthy")


def run_hold_out(args: argparse.Namespace) -> None:
    from eaglerec.held_out import hold_out_period

    held = hold_out_period(Path(args.source), Path(args.out), args.fraction, args.users)
    print(f"hold-out: {held.kept:,} ratings before {time.strftime('%Y-%m-%d %H:%M', time.gmtime(held.cutoff))} UTC "
          f"-> {held.release_dir} (ingest it as a release); {held.held_out:,} later ratings -> {held.ratings} "
          "(play them with `eaglerec replay`)")


def run_replay(args: argparse.Namespace) -> None:
    from monitoring.replay import replay

    port = os.environ.get("EAGLEREC_SERVE_PORT", "3000")
    result = replay(args.url or f"http://127.0.0.1:{port}", Path(args.ratings), args.k, args.limit, args.max_seconds,
                    args.per_user)
    print(f"replayed {result.played:,} ratings in {result.seconds:.1f} s"
          + (f" (stopped at the {result.stopped_early})" if result.stopped_early else "")
          + (f"; not accepted: {result.refused}" if result.refused else ""))
    for variant, tally in sorted(result.by_variant.items()):
        print(f"  {variant:<11} ratings {tally.ratings:>6,}  next rating in the top {args.k}: {tally.shown:>5,} "
              f"(hit rate {tally.hit_rate():.4f}); positives {tally.positives:,}, shown {tally.positives_shown:,}")
    if not args.no_report:
        run_ab_report(argparse.Namespace(window_hours=args.window_hours))


def run_ab_report(args: argparse.Namespace) -> None:
    import mlflow

    from monitoring.ab_outcomes import build_ab_report, write_ab_report
    from training.tracking import tracking_uri

    paths = Paths.from_env()
    report = build_ab_report(paths.events, args.window_hours)
    if report.table.empty:
        print(f"no impressions logged in {paths.events} yet: nothing to report")
    for row in report.table.to_dict("records"):
        print(f"  {row['experiment']:<12} {row['variant']:<11} users {row['users']:>6,}  impressions "
              f"{row['impressions']:>7,}  hit rate {row['hit_rate']}  mean rating {row['mean_rating']}")
    for experiment, verdict in report.verdicts.items():
        print(f"  {experiment}: {verdict['verdict']}"
              + (f" (challenger - champion hit rate {verdict['difference']})" if verdict["difference"] else ""))
    mlflow.set_tracking_uri(tracking_uri())
    for path in write_ab_report(report, paths.reports).values():
        print(f"wrote {path}")


def run_promote(args: argparse.Namespace) -> None:
    import mlflow

    from training.promotion import promote, promote_pending
    from training.registry import PromotionError
    from training.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    if args.pending:
        for kind in [args.kind] if args.kind else KINDS:
            decisions = promote_pending(kind)
            for decision in decisions:
                print(decision.describe())
            if not decisions:
                print(f"no {kind} version is waiting for the gate")
        return
    if not args.kind:
        raise PromotionError("name the kind of model to promote (ranker or retriever), or use --pending")
    print(promote(args.kind, args.version).describe())


def run_refit(args: argparse.Namespace) -> None:
    import mlflow

    from training.refit import refit_served, refit_version
    from training.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    if args.version:
        print(refit_version(args.kind, args.version, verbose=args.verbose).describe())
        return
    skipped = []
    done = refit_served([args.kind] if args.kind else None, verbose=args.verbose, skipped=skipped)
    for refit in done:
        print(refit.describe())
    for reason in skipped:
        print(f"not refit, serves as before: {reason}")
    if not done and not skipped:
        print("every served version has its refit on the current marts (or the catalogue's kinds ask for none)")


def run_rollback(args: argparse.Namespace) -> None:
    import mlflow

    from eaglerec.contracts.catalogue import load_catalogue
    from training.registry import roll_back
    from training.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    done = roll_back(mlflow.MlflowClient(), load_catalogue().kinds[args.kind].registered_model, args.reason, args.to)
    print(done.record)
    state = Paths.from_env().home / "recommender"
    reload_recommender(f"http://127.0.0.1:{os.environ.get('EAGLEREC_SERVE_PORT', '3000')}", state / "server.pid",
                       state / "admin_token")


def run_export_sparrowrecsys(args: argparse.Namespace) -> None:
    from eaglerec.export import export_sparrowrecsys

    written = export_sparrowrecsys(Paths.from_env(), args.out)
    for path, rows in written.items():
        print(f"wrote {rows:,} rows -> {path}")


def expected_errors() -> tuple[type[Exception], ...]:
    """The errors whose message already says what is wrong: printed without a traceback."""
    from cli.orchestration import AirflowError
    from eaglerec.contracts.catalogue import CatalogueError
    from eaglerec.export import ExportError
    from eaglerec.feature_store import FeatureStoreError
    from eaglerec.features import FeatureBuildError
    from expectations.gate import RawGateError
    from expectations.training_gate import TrainingSetGateError
    from monitoring.replay import ReplayError
    from training.refit import RefitError
    from training.registry import PromotionError

    return (IngestError, RawGateError, FeatureBuildError, FeatureStoreError, TrainingSetGateError, PromotionError,
            RefitError, ExportError, ServiceStartError, AirflowError, CatalogueError, ReplayError, UnhealthyModelError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eaglerec", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="copy a MovieLens release into $EAGLEREC_HOME/raw/<dataset>/")
    ingest.add_argument("source", nargs="?", default=str(BUNDLED_DATASET_DIR),
                        help="a MovieLens release (any GroupLens format: ml-latest/25m/20m csv, ml-10m/1m .dat, "
                             "ml-100k): a folder, a .zip file, or an http(s) URL of a .zip (default: the bundled "
                             "ml-latest-small)")
    ingest.add_argument("--dataset", help="name under raw/ (default: the folder or zip name)")
    ingest.add_argument("--sha256", help="expected SHA-256 of a downloaded zip")
    ingest.set_defaults(run=run_ingest)

    take = commands.add_parser("take-events", help="take the recommender's logged ratings up to now into the raw "
                                                   "dataset (live_ratings.csv, checked by the raw gate) for the "
                                                   "next features build")
    take.add_argument("--dataset", default=DEFAULT_DATASET)
    take.set_defaults(run=run_take_events)

    validate = commands.add_parser("validate", help="run the raw gate (Great Expectations) on an ingested dataset")
    validate.add_argument("--dataset", default=DEFAULT_DATASET)
    validate.add_argument("--invalid-rows", choices=INVALID_ROWS_POLICIES, default="stop",
                          help="stop (default): any bad row stops the gate; drop: leave rows that break a row rule "
                               "out (to reports/raw_gate/<dataset>/quarantined_rows.csv) unless they are more than "
                               "--max-invalid-share of a file")
    validate.add_argument("--max-invalid-share", type=float, default=MAX_INVALID_SHARE,
                          help="the share of a file's rows drop may leave out (default %(default)s)")
    validate.set_defaults(run=run_validate)

    build = commands.add_parser("build-features", help="dbt build: staging, intermediate, parquet marts, tests")
    build.add_argument("--dataset", default=DEFAULT_DATASET)
    build.add_argument("--split-method", default=SPLIT_METHODS[0], choices=SPLIT_METHODS)
    build.add_argument("--split-seed", type=int, default=42, help="seed of the random split")
    build.add_argument("--select", help="dbt node selection (default: everything)")
    build.add_argument("--engine", choices=ENGINES, help="where dbt runs the models: duckdb, or a local Spark "
                                                         "(make install-spark); default $EAGLEREC_FEATURE_ENGINE, "
                                                         "else duckdb")
    build.set_defaults(run=run_build_features)

    changed = commands.add_parser("features-changed", help="exit 0 if a build-features now would differ from the "
                                                            f"marts (release, logged events, dbt code, split), "
                                                            f"{UNCHANGED_EXIT} if not")
    changed.add_argument("--dataset", default=DEFAULT_DATASET)
    changed.add_argument("--split-method", default=SPLIT_METHODS[0], choices=SPLIT_METHODS)
    changed.add_argument("--split-seed", type=int, default=42)
    changed.set_defaults(run=run_features_changed)

    show = commands.add_parser("show-marts", help="list the parquet marts with their row and column counts")
    show.set_defaults(run=run_show_marts)

    online_store_help = "sqlite or redis (default: $EAGLEREC_ONLINE_STORE, else sqlite)"
    feast_apply = commands.add_parser("feast-apply", help="register the Feast feature repo and create online tables")
    feast_apply.add_argument("--online-store", help=online_store_help)
    feast_apply.set_defaults(run=run_feast_apply)

    materialize = commands.add_parser("materialize", help="load the latest feature states into the online store")
    materialize.add_argument("--online-store", help=online_store_help)
    materialize.set_defaults(run=run_materialize)

    tracking = commands.add_parser("tracking-server", help="start or stop the local MLflow server (127.0.0.1:5000)")
    tracking.add_argument("action", choices=("start", "stop"))
    tracking.set_defaults(run=run_tracking_server)

    serve = commands.add_parser("serve", help="start, stop or reload the recommender (bentoml serve, 127.0.0.1:3000)")
    serve.add_argument("action", choices=("start", "stop", "reload"))
    serve.set_defaults(run=run_serve)

    catalogue = load_catalogue()
    models = commands.add_parser("models", help="list the model catalogue (eaglerec/contracts/models.toml)")
    models.add_argument("--kind", choices=KINDS)
    models.add_argument("--params", action="store_true",
                        help="also each model's hyperparameters as training uses them (imports each model)")
    models.add_argument("--json", action="store_true", help="as JSON")
    models.set_defaults(run=run_models)

    train = commands.add_parser("train", help="train models of the catalogue: log each run to MLflow, register "
                                              "those that compete, run the champion gate")
    which = train.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", nargs="+", choices=catalogue.names(), metavar="NAME",
                       help=f"one or more of: {', '.join(catalogue.names())}")
    which.add_argument("--defaults", action="store_true", help="the models the catalogue trains by default")
    which.add_argument("--all", action="store_true", help="every model of the catalogue")
    train.add_argument("--kind", choices=KINDS, help="with --defaults or --all: only this kind")
    train.add_argument("--epochs", type=int, help="epochs of every model that trains in epochs (default: its params)")
    train.add_argument("--user-fraction", type=float, default=1.0,
                       help="rankers train on a seeded sample of users (retrievers always on all)")
    train.add_argument("--no-gate", action="store_true",
                       help="register without the champion gate (gate later with `promote --pending`)")
    train.set_defaults(run=run_train)

    tune = commands.add_parser("tune", help="search a model's hyperparameters on validation (Optuna TPE) within a "
                                            "budget, then train the best configuration as an ordinary gated run")
    tune.add_argument("--model", required=True, choices=catalogue.names(), metavar="NAME",
                      help="a model whose module has a search space (suggest_params)")
    tune.add_argument("--trials", type=int, default=20, help="at most this many trials (default 20)")
    tune.add_argument("--timeout-minutes", type=float, help="and no new trial after this many minutes")
    tune.add_argument("--epochs", type=int, help="the epochs of every trial (default: the model's own)")
    tune.add_argument("--user-fraction", type=float, default=1.0, help="rankers: tune on a seeded sample of users")
    tune.add_argument("--seed", type=int, default=0, help="of the sampler")
    tune.add_argument("--no-final", action="store_true", help="search only: do not train the best configuration")
    tune.set_defaults(run=run_tune)

    airflow = commands.add_parser("airflow", help="start/stop Airflow (127.0.0.1:8080) or trigger eaglerec_features "
                                                  "and follow the chain it starts (training, deploy)")
    airflow.add_argument("action", choices=("start", "stop", "run"))
    airflow.add_argument("--source", default=str(BUNDLED_DATASET_DIR), help="release folder, .zip or URL (run)")
    airflow.add_argument("--dataset", help="name under raw/ (default: from the source)")
    airflow.add_argument("--models", help="comma-separated models to train (default: the catalogue's defaults; "
                                          "empty: none)")
    airflow.add_argument("--epochs", type=int, help="epochs of every model (default: each model's own)")
    airflow.add_argument("--rebuild", action="store_true", help="build and retrain even if neither the release "
                                                                "nor the logged events changed")
    airflow.add_argument("--engine", choices=ENGINES, help="where dbt builds the features (run): duckdb or spark; "
                                                           "default $EAGLEREC_FEATURE_ENGINE, else duckdb")
    airflow.add_argument("--invalid-rows", choices=INVALID_ROWS_POLICIES, default="stop",
                         help="the raw gate's policy for bad rows (see `eaglerec validate --help`)")
    airflow.set_defaults(run=run_airflow)

    training_gate = commands.add_parser("validate-training-set",
                                        help="run the training-set gate (Great Expectations) on rating_examples")
    training_gate.set_defaults(run=run_validate_training_set)

    compare = commands.add_parser("compare", help="compare the latest run of every model on the current marts: "
                                                  "markdown/HTML table in $EAGLEREC_HOME/reports/ and MLflow")
    compare.set_defaults(run=run_compare)

    promote = commands.add_parser("promote", help="run the champion gate for a registered ranker or retriever version")
    promote.add_argument("kind", nargs="?", choices=KINDS, help="ranker or retriever (with --pending: default both)")
    which = promote.add_mutually_exclusive_group()
    which.add_argument("--version", help="registered version (default: the latest)")
    which.add_argument("--pending", action="store_true", help="every version not gated yet, oldest first")
    promote.set_defaults(run=run_promote)

    refit = commands.add_parser("refit", help="train each served version (champion, challenger, serve_latest) again on "
                                              "all ratings with its chosen configuration, register and link the refit "
                                              "the recommender serves (held-out figures stay the evaluated version's)")
    refit.add_argument("kind", nargs="?", choices=KINDS, help="ranker or retriever (default: both)")
    refit.add_argument("--version", help="refit this evaluated version (needs the kind), whether served or not")
    refit.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2), help="Keras progress output")
    refit.set_defaults(run=run_refit)

    rollback = commands.add_parser("rollback", help="give `champion` back to an earlier version (default: the one "
                                                    "before), without the gate, and reload the recommender")
    rollback.add_argument("kind", choices=KINDS)
    rollback.add_argument("--to", help="the version to serve (default: the latest earlier champion)")
    rollback.add_argument("--reason", default="rolled back by hand", help="recorded on both versions")
    rollback.set_defaults(run=run_rollback)

    monitor = commands.add_parser("monitor", help="drift (PSI, KS) of recent events against the training data, "
                                                  "train/serve skew, served scores: reports/model_health.html; "
                                                  "exits 1 past a threshold")
    monitor.add_argument("--since-hours", type=float, help="recent = logged in the last N hours (default: all after "
                                                           "the marts' watermark)")
    monitor.add_argument("--sample-users", type=int, default=200, help="users checked for skew (default 200)")
    monitor.add_argument("--psi-threshold", type=float, default=0.25, help="PSI at or above this fails (0.25)")
    monitor.set_defaults(run=run_monitor)

    hold_out = commands.add_parser("hold-out", help="split a release at a time: the ratings before it stay a release "
                                                    "(ingest it), the later ones become the traffic `replay` plays")
    hold_out.add_argument("source", nargs="?", default=str(BUNDLED_DATASET_DIR), help="a release folder")
    hold_out.add_argument("--out", required=True, help="folder for release/ and held_out_ratings.csv")
    hold_out.add_argument("--fraction", type=float, default=0.05, help="share of the ratings held out (the latest)")
    hold_out.add_argument("--users", type=int, help="a seeded sample of this many users only (a slice)")
    hold_out.set_defaults(run=run_hold_out)

    replay = commands.add_parser("replay", help="play held-out ratings as live traffic against the running "
                                                "recommender (loopback): /recommend, then /events, in time order; "
                                                "prints the hit rate per variant, then the A/B report")
    replay.add_argument("--ratings", required=True, help="a CSV in ratings.csv's columns (e.g. from hold-out)")
    replay.add_argument("--limit", type=int, default=1000, help="at most this many ratings (default 1000)")
    replay.add_argument("--max-seconds", type=float, default=600.0, help="stop after this long (default 600)")
    replay.add_argument("--per-user", type=int, help="at most this many ratings of each user (spreads a bounded "
                                                     "replay over more users)")
    replay.add_argument("--k", type=int, default=10, help="recommendations per request (default 10)")
    replay.add_argument("--url", help="the recommender (default http://127.0.0.1:$EAGLEREC_SERVE_PORT or 3000)")
    replay.add_argument("--window-hours", type=float, default=24.0, help="the A/B report's window")
    replay.add_argument("--no-report", action="store_true", help="skip the A/B report")
    replay.set_defaults(run=run_replay)

    ab_report = commands.add_parser("ab-report", help="A/B outcomes per experiment and variant from the logged "
                                                      "impressions and rating events, with 95 %% intervals and a "
                                                      "verdict: reports/ab_outcomes.html and MLflow")
    ab_report.add_argument("--window-hours", type=float, default=24.0,
                           help="a rating counts for an impression up to this long after it (default 24)")
    ab_report.set_defaults(run=run_ab_report)

    export = commands.add_parser("export-sparrowrecsys",
                                 help="write rating_examples in SparrowRecSys's 27-column sample format")
    export.add_argument("--out", help="output folder (default: $EAGLEREC_HOME/exports/sparrowrecsys)")
    export.set_defaults(run=run_export_sparrowrecsys)
    return parser


def main(argv: list[str] | None = None) -> int:
    apply_offline_env()
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        status = args.run(args)
    except Exception as exc:
        if not isinstance(exc, expected_errors()):
            raise
        print(f"eaglerec {args.command}: {exc}", file=sys.stderr)
        return 1
    print(f"eaglerec {args.command}: done in {time.perf_counter() - started:.1f} s")
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
