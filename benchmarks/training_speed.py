"""Benchmark training from parquet (training/streaming.py) on a built EAGLEREC_HOME, by default the 25M synthetic
one of `make bench-features SIZES=25000000`.

For each model named (`make bench-training`: Wide&Deep and DIN; the catalogue's hyperparameters but the batch
size), each epoch in its own process:
1. side by side on the same first row groups (--compare-groups, 20: 1.73M training examples at 25M): one epoch
   from arrays in memory (the harness's way) and one streamed: examples/s and peak RSS of each;
2. one full epoch streamed over the whole training split: encoder fit, epoch time, examples/s, peak RSS, and the
   validation AUC after it (streamed as well).
Usage: python benchmarks/training_speed.py --models MODEL... [--home DIR] [--compare-groups 20]
       [--batch-size 4096] [--no-full]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOME = REPO_ROOT / "var" / "bench" / "home" / "synthetic-25000000"


def run_epoch(model_name: str, home: Path, mode: str, row_groups: int | None, batch_size: int) -> dict:
    """One epoch of a model in this process; mode 'memory' (arrays in memory) or 'stream'."""
    from importlib import import_module

    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from eaglerec.contracts.catalogue import load_catalogue
    from eaglerec.contracts.encoding import FeatureEncoder
    from eaglerec.contracts.features import LABEL
    from training.data import read_catalogue_vocabulary
    from training.rankers import predict_in_batches
    from training.streaming import feature_columns, fit_streamed_encoder, iter_split_frames, stream_split
    from training.train import resolve_params

    marts = home / "marts"
    path = marts / "rating_examples.parquet"
    movie_ids, genres = read_catalogue_vocabulary(marts)
    entry = load_catalogue().entry(model_name)
    params = resolve_params(entry, {"batch_size": batch_size})
    started = time.perf_counter()
    if mode == "memory":
        train = pd.concat(iter_split_frames(path, "train", feature_columns(), row_groups=row_groups))
        encoder = FeatureEncoder.fit(train, movie_ids, genres)
        inputs, labels = encoder.encode(train), train[LABEL].to_numpy(dtype=np.int32)
        examples = len(train)
        del train
    else:
        encoder = fit_streamed_encoder(path, movie_ids, genres, row_groups)
    prepared = time.perf_counter() - started
    sizes = {kind: encoder.vocabulary_size(kind) for kind in ("user", "movie", "genre")}
    # A Keras ranker's module builds it with build_<name>(sizes, params).
    model = getattr(import_module(entry.module), f"build_{model_name}")(sizes, params)
    started = time.perf_counter()
    if mode == "memory":
        model.fit(inputs, labels, batch_size=params.batch_size, epochs=1, shuffle=True, verbose=0)
    else:
        model.fit(stream_split(path, "train", encoder, params.batch_size, seed=1, row_groups=row_groups), epochs=1,
                  verbose=0)
    epoch = time.perf_counter() - started
    if mode == "stream":  # counted after the fit, not to slow it
        examples = sum(len(frame) for frame in iter_split_frames(path, "train", ["user_id"], row_groups=row_groups))
    aucs = []
    for frame in iter_split_frames(path, "validation", feature_columns(), row_groups=row_groups):
        aucs.append((frame[LABEL].to_numpy(), predict_in_batches(model, encoder.encode(frame))))
    labels_all = np.concatenate([labels for labels, _ in aucs])
    scores_all = np.concatenate([scores for _, scores in aucs])
    return {"model": model_name, "mode": mode, "examples": examples, "prepare_s": prepared, "epoch_s": epoch,
            "examples_per_s": examples / epoch, "validation_auc": float(roc_auc_score(labels_all, scores_all)),
            "batch_size": params.batch_size}


def measure(model: str, home: Path, mode: str, row_groups: int | None, batch_size: int) -> dict:
    """Run one epoch in a child process; return its figures and peak RSS (MiB)."""
    command = [sys.executable, __file__, "--run", model, mode, "--home", str(home), "--batch-size", str(batch_size)]
    command += ["--compare-groups", str(row_groups or 0)]  # 0: every row group
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    figures = json.loads(output.decode().strip().splitlines()[-1])
    return {**figures, "peak_rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME)
    parser.add_argument("--models", nargs="+", default=[], help="Keras rankers of the catalogue (the Makefile "
                        "names Wide&Deep and DIN)")
    parser.add_argument("--compare-groups", type=int, default=20, help="row groups of the side-by-side part")
    # The catalogue's 512 suits the bundled data. At 25M each step has a large fixed cost (Wide&Deep, 2 cores: 12.5k
    # examples/s at 512, 62k at 2048, 84k at 8192; updating only the batch's embedding rows was no faster at 4096).
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--no-full", dest="full", action="store_false", help="skip the full streamed epoch")
    parser.add_argument("--run", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_epoch(args.run[0], args.home, args.run[1], args.compare_groups or None, args.batch_size)),
              flush=True)
        return
    if not args.models:
        parser.error("name the models: --models wide_and_deep din (make bench-training does)")
    if not (args.home / "marts" / "rating_examples.parquet").exists():
        raise SystemExit(f"{args.home}/marts/rating_examples.parquet is missing: run "
                         "`make bench-features SIZES=25000000` first (or give --home)")
    rows = []
    for model in args.models:
        pair = [measure(model, args.home, mode, args.compare_groups, args.batch_size) for mode in ("memory", "stream")]
        rows += pair
        print(f"{model}: streamed / in memory on {pair[0]['examples']:,} examples: "
              f"{pair[1]['examples_per_s'] / pair[0]['examples_per_s']:.2f}x the speed, "
              f"{pair[1]['peak_rss_mib'] / pair[0]['peak_rss_mib']:.2f}x the peak RSS", flush=True)
        if args.full:
            rows.append(measure(model, args.home, "stream", None, args.batch_size))
            print(f"{model}: full epoch streamed: {rows[-1]['examples']:,} examples in {rows[-1]['epoch_s']:.0f} s",
                  flush=True)
    print("\nmodel           mode     examples     prepare s  epoch s   examples/s  val AUC  peak RSS MiB")
    for row in rows:
        print(f"{row['model']:<15} {row['mode']:<8} {row['examples']:>11,}  {row['prepare_s']:9.1f}  "
              f"{row['epoch_s']:7.1f}  {row['examples_per_s']:11,.0f}  {row['validation_auc']:.4f}  "
              f"{row['peak_rss_mib']:12,.0f}")


if __name__ == "__main__":
    main()
