"""Training straight from parquet (training/streaming.py): the streamed encoder equals the in-memory one, an epoch
streams every row of its split exactly once, encoded as in memory, in a new order each epoch, and a ranker learns
from the stream."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from eaglerec.contracts.encoding import FeatureEncoder
from eaglerec.contracts.features import FEATURES, LABEL
from training.data import read_catalogue_vocabulary
from training.streaming import fit_streamed_encoder, stream_split

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def examples(built_paths, tmp_path_factory):
    """The built rating_examples rewritten in row groups of 7,000 rows (the bundled mart is one row group), so the
    stream crosses many groups as at 25M; the catalogue's movies and genres."""
    path = tmp_path_factory.mktemp("streaming") / "rating_examples.parquet"
    pq.write_table(pq.read_table(built_paths.marts / "rating_examples.parquet"), path, row_group_size=7_000)
    return (path, *read_catalogue_vocabulary(built_paths.marts))


def test_the_streamed_encoder_is_the_in_memory_one(examples):
    path, movie_ids, genres = examples
    train = pd.read_parquet(path).query("split == 'train'")
    assert pq.ParquetFile(path).num_row_groups > 10
    streamed, in_memory = fit_streamed_encoder(path, movie_ids, genres), FeatureEncoder.fit(train, movie_ids, genres)
    assert streamed.vocabularies == in_memory.vocabularies
    assert streamed.means.keys() == in_memory.means.keys()
    for name in in_memory.means:
        assert streamed.means[name] == pytest.approx(in_memory.means[name], rel=1e-9, abs=1e-12)
        assert streamed.stddevs[name] == pytest.approx(in_memory.stddevs[name], rel=1e-9)


def collect(dataset) -> pd.DataFrame:
    parts = [pd.DataFrame({**{name: values.numpy() for name, values in features.items()}, LABEL: labels.numpy()})
             for features, labels in dataset]
    return pd.concat(parts, ignore_index=True)


def test_an_epoch_streams_each_row_of_its_split_once_encoded_as_in_memory_in_a_new_order(examples):
    path, movie_ids, genres = examples
    validation = pd.read_parquet(path).query("split == 'validation'")
    encoder = FeatureEncoder.fit(pd.read_parquet(path).query("split == 'train'"), movie_ids, genres)
    dataset = stream_split(path, "validation", encoder, batch_size=256, seed=3)
    first, second = collect(dataset), collect(dataset)
    expected = pd.DataFrame({**encoder.encode(validation), LABEL: validation[LABEL].to_numpy(dtype=np.int32)})
    columns = [feature.name for feature in FEATURES] + [LABEL]

    def in_order(frame):
        return frame[columns].sort_values(columns).reset_index(drop=True)

    pd.testing.assert_frame_equal(in_order(first), in_order(expected), check_dtype=False)
    pd.testing.assert_frame_equal(in_order(second), in_order(expected), check_dtype=False)
    assert len(first) == len(validation)
    assert not first[columns].equals(second[columns]), "a second epoch must see another order"


def test_a_ranker_learns_from_the_stream(examples):
    from sklearn.metrics import roc_auc_score

    from training.rankers import predict_in_batches
    from training.rankers.wide_and_deep import Params, build_wide_and_deep

    path, movie_ids, genres = examples
    encoder = fit_streamed_encoder(path, movie_ids, genres)
    params = Params(embedding_dim=8, hidden_units=(32,), batch_size=256, epochs=2)
    sizes = {kind: encoder.vocabulary_size(kind) for kind in ("user", "movie", "genre")}
    model = build_wide_and_deep(sizes, params)
    model.fit(stream_split(path, "train", encoder, params.batch_size, seed=1), epochs=params.epochs, verbose=0)
    validation = pd.read_parquet(path).query("split == 'validation'")
    scores = predict_in_batches(model, encoder.encode(validation))
    assert roc_auc_score(validation[LABEL], scores) > 0.65
