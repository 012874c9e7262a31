"""Train on rating_examples straight from parquet: one row group at a time, so memory does not grow with the data.

The harness (`training.ranking`) loads the gated splits into memory, which suits the bundled data and up to a few
million examples. At ML-25M size (17.6M training examples) the frame alone takes 3.8 GiB and its encoded copy as
much again; here a split streams instead: row groups in a seeded order that changes every epoch, each filtered to
the split, encoded with the training encoder (fitted in one streaming pass) and shuffled within itself, then cut into
batches for Keras through tf.data. `benchmarks/training_speed.py` times an epoch of Wide&Deep and DIN this way at 25M.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from eaglerec.contracts.encoding import FeatureEncoder
from eaglerec.contracts.features import FEATURES, LABEL

SPLIT_COLUMN = "split"


def iter_split_frames(path: Path, split: str, columns: list[str], seed: int | None = None,
                      row_groups: int | None = None) -> Iterator[pd.DataFrame]:
    """The split's rows of the parquet file, one row group at a time (in a seeded random order if seed is given;
    the first `row_groups` groups only if given, as benchmarks compare on a part)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = list(dict.fromkeys([*columns, SPLIT_COLUMN]))
    schema = pq.read_schema(path)
    # Text columns as dictionaries (pandas categoricals): reading and encoding a group take 2.2x less CPU than
    # with a Python string per value, CPU the training steps share.
    texts = [name for name in wanted if schema.field(name).type in (pa.string(), pa.large_string())]
    file = pq.ParquetFile(path, read_dictionary=texts)
    groups = np.arange(min(file.num_row_groups, row_groups or file.num_row_groups))
    if seed is not None:
        groups = np.random.default_rng(seed).permutation(groups)
    for group in groups:
        table = file.read_row_group(int(group), columns=wanted)
        table = table.filter(pc.equal(table[SPLIT_COLUMN], split))
        if table.num_rows:
            yield table.to_pandas()


def feature_columns() -> list[str]:
    return list(dict.fromkeys(["user_id", LABEL, *(feature.name for feature in FEATURES)]))


def fit_streamed_encoder(path: Path, catalogue_movie_ids: list[int], genres: list[str],
                         row_groups: int | None = None) -> FeatureEncoder:
    """The training encoder, fitted on the train split streamed from parquet."""
    frames = iter_split_frames(path, "train", feature_columns(), row_groups=row_groups)
    return FeatureEncoder.fit_frames(frames, catalogue_movie_ids, genres)


def stream_split(path: Path, split: str, encoder: FeatureEncoder, batch_size: int, seed: int | None = None,
                 row_groups: int | None = None):
    """A tf.data.Dataset of (encoded features, labels) batches of one split; with a seed, shuffled afresh on every
    pass (row-group order and rows within each group), so each epoch sees another order."""
    import tensorflow as tf

    epochs = iter(range(1 << 62))

    def generate():
        # One element per row group, encoded and shuffled in NumPy; tf.data cuts it into batches.
        epoch_seed = None if seed is None else seed + next(epochs)
        rng = np.random.default_rng(epoch_seed)
        for frame in iter_split_frames(path, split, feature_columns(), epoch_seed, row_groups):
            encoded = encoder.encode(frame)
            labels = frame[LABEL].to_numpy(dtype=np.int32)
            if seed is not None:
                order = rng.permutation(len(frame))
                encoded, labels = {name: values[order] for name, values in encoded.items()}, labels[order]
            yield encoded, labels

    # Keras runs every epoch to the end of a dataset of known length (and shows its progress): the batches a pass
    # makes, from the split column alone.
    batches = sum(-(-len(frame) // batch_size) for frame in iter_split_frames(path, split, [], row_groups=row_groups))
    signature = ({feature.name: tf.TensorSpec((None,), tf.float32 if feature.kind == "numeric" else tf.int32)
                  for feature in FEATURES}, tf.TensorSpec((None,), tf.int32))
    def cut(features, labels):
        # Batches as slices of the group's tensors (from_tensor_slices(...).batch() went row by row: 6x slower).
        starts = tf.data.Dataset.range(0, tf.cast(tf.shape(labels)[0], tf.int64), batch_size)
        return starts.map(lambda start: ({name: values[start:start + batch_size] for name, values in features.items()},
                                         labels[start:start + batch_size]))

    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).flat_map(cut)
    return dataset.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)
