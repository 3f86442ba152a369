"""Streaming ingest: schemas equal to the one-table reader's, splits written as shards."""

import os
from importlib import resources
from pathlib import Path

import pytest

from tests.helpers import tricky_data
from tfkfp.containers import ingest
from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import examples as examples_io
from tfkfp.containers.store import examples as manifest
from tfkfp.containers.store import sources
from tfkfp.containers.store.layout import MIN_SHARDS

GOLDEN = Path(__file__).parent / "data" / "schemas"
TAXI = Path(__file__).resolve().parent.parent / "pipelines" / "taxi" / "data" / "chicago_taxi.csv"


def _text(schema) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(schema)


@pytest.fixture
def small_blocks(monkeypatch):
    """CSV blocks of 4 KiB: a few dozen rows each, so types are decided across many batches."""
    monkeypatch.setattr(sources, "CSV_BLOCK_SIZE", 4096)
    monkeypatch.setattr(sources, "CHUNK_ROWS", 100)


@pytest.mark.parametrize("blocks", ["default", "small"])
def test_schema_equals_the_one_table_readers(tmp_path, request, blocks):
    """Golden schemas: written by main's ingest (one Arrow table), before streaming."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if blocks == "small":
        request.getfixturevalue("small_blocks")
    tricky = tricky_data.write(tmp_path / "tricky.csv")
    table = pcsv.read_csv(tricky).drop_columns(["empty"])
    pq.write_table(table, tmp_path / "tricky.parquet", row_group_size=500)
    penguins = resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv"
    cases = {
        "penguins": str(penguins),
        "taxi": str(TAXI),
        "tricky": str(tricky),
        "tricky_parquet": str(tmp_path / "tricky.parquet"),
    }
    for name, uri in cases.items():
        assert _text(sources.infer_schema(uri)) == (GOLDEN / f"{name}.pbtxt").read_text(), name


def test_tfrecord_schema_over_chunks(tmp_path, small_blocks):
    """tf.Examples typed over chunks: a feature missing from a whole chunk is still counted."""
    tricky = tricky_data.write(tmp_path / "tricky.csv")
    ingest.run(str(tricky), str(tmp_path / "ex"), str(tmp_path / "schema"))
    from_csv = sources.infer_schema(str(tricky))
    from_records = sources.infer_schema(str(tmp_path / "ex" / "Split-train"), "tfrecord")
    # The same columns and types as from the CSV (tf.Example features are sorted by name).
    assert {(f.name, f.type) for f in from_records.feature} == {
        (f.name, f.type) for f in from_csv.feature
    }
    sparse = next(f for f in from_records.feature if f.name == "sparse")
    assert sparse.presence.min_count == 1 and not sparse.HasField("shape")


def _records(path: str) -> int:
    return sum(1 for _ in examples_io.read_records(path))


def test_splits_written_as_shards(tmp_path):
    csv = tricky_data.write(tmp_path / "tricky.csv")
    result = ingest.run(str(csv), str(tmp_path / "ex"), str(tmp_path / "schema"))
    for split, rows in result.rows.items():
        names = sorted(os.listdir(tmp_path / "ex" / f"Split-{split}"))
        n = len(names)
        assert n >= MIN_SHARDS
        assert names == [f"data_tfrecord-{i:05d}-of-{n:05d}.gz" for i in range(n)]
        counts = [_records(str(tmp_path / "ex" / f"Split-{split}" / name)) for name in names]
        assert sum(counts) == rows and max(counts) - min(counts) <= 1  # dealt round-robin
    assert manifest.verify(str(tmp_path / "ex"), ["train", "eval"]) is True


def test_shard_count():
    mb = 1 << 20
    assert ingest.shard_count(10 * mb, 1000, 2) == MIN_SHARDS
    assert ingest.shard_count(10 * mb, 1000, 16) == 16  # a core each
    assert ingest.shard_count(640 * mb, 10**7, 2) == 10  # ~64 MB each
    assert ingest.shard_count(640 * mb, 3, 2) == 3  # never more than the rows
    assert ingest.shard_count(0, 1, None) == 1


def test_few_rows_leave_no_empty_shard(tmp_path):
    csv = tmp_path / "few.csv"
    csv.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(3)))
    ingest.run(str(csv), str(tmp_path / "ex"), str(tmp_path / "schema"), train_fraction=0.5)
    for split in ("train", "eval"):
        for name in os.listdir(tmp_path / "ex" / f"Split-{split}"):
            assert _records(str(tmp_path / "ex" / f"Split-{split}" / name)) > 0


def test_manifest_names_a_missing_or_truncated_shard(tmp_path):
    csv = tricky_data.write(tmp_path / "tricky.csv")
    ingest.run(str(csv), str(tmp_path / "ex"), str(tmp_path / "schema"))
    folder = tmp_path / "ex" / "Split-train"
    shards = sorted(folder.iterdir())
    data = shards[1].read_bytes()
    shards[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"{shards[1].name} is damaged: .* \(truncated since\)"):
        manifest.verify(str(tmp_path / "ex"), ["train"])
    shards[1].unlink()
    with pytest.raises(InputError, match=rf"{shards[1].name} is missing"):
        manifest.verify(str(tmp_path / "ex"), ["train"])


def _one_file_artifact(ingested, out: Path) -> str:
    """The ingested examples as today's ingest wrote them before shards: one file per split."""
    import shutil

    shutil.copytree(ingested.examples, out)
    for split in ("train", "eval"):
        folder = out / f"Split-{split}"
        shards = sorted(folder.iterdir())
        records = [r for shard in shards for r in examples_io.read_records(str(shard))]
        for shard in shards:
            shard.unlink()
        writer = examples_io.TFRecordWriter(str(folder / "data_tfrecord-00000-of-00001.gz"))
        for record in records:
            writer.write(record)
        writer.close()
    manifest.write(str(out), ingested.counts)
    return str(out)


@pytest.mark.slow  # statistics and transform in full again; the readers' cheap tests stay
def test_one_file_artifacts_read_as_before(tmp_path, ingested, transformed):
    """Every reader of examples takes a one-file split (tfkfp's before shards, or TFX's)."""
    from tests.helpers import PENGUINS_MODULE
    from tfkfp.containers import statistics, transform
    from tfkfp.containers.train import fn_args

    examples = _one_file_artifact(ingested, tmp_path / "one")
    assert len(os.listdir(Path(examples) / "Split-train")) == 1
    stats = statistics.run(examples, str(tmp_path / "stats"), str(tmp_path / "view.html"))
    assert stats.rows == ingested.counts
    args = fn_args.common_fn_args(examples, ingested.schema, None, 1, 1, None)
    assert args.train_files == [os.path.join(examples, "Split-train", "*.gz")]
    assert len(examples_io.first(examples, "eval", 5)) == 5
    result = transform.run(
        examples, ingested.schema, PENGUINS_MODULE, str(tmp_path / "g"), str(tmp_path / "t")
    )
    assert result.rows == ingested.counts
    # and the sharded artifact transforms to several shards per split
    for split in ("train", "eval"):
        assert len(os.listdir(Path(transformed.examples) / f"Split-{split}")) >= MIN_SHARDS


def _file_sharded(train_files: list[str], workers: int, index: int) -> int:
    """Records worker `index` of `workers` reads by tf.data FILE auto-sharding (as
    MultiWorkerMirroredStrategy applies it) of the guide's make_batched_features_dataset."""
    import tensorflow as tf
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    dataset = tf.data.experimental.make_batched_features_dataset(
        train_files,
        batch_size=1,
        features={"species": tf.io.FixedLenFeature([1], tf.string)},
        reader=lambda f: tf.data.TFRecordDataset(f, "GZIP"),
        num_epochs=1,
        shuffle=False,
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    sharded = _AutoShardDataset(dataset.with_options(options), workers, index)
    return sum(1 for _ in sharded)


def test_file_sharding_gives_each_trainer_worker_its_shards(tmp_path, ingested):
    """Issue 34: the guide's _input_fn over fn_args.train_files, FILE-sharded over 2 workers."""
    import tensorflow as tf

    from tfkfp.containers.train import fn_args

    args = fn_args.common_fn_args(ingested.examples, ingested.schema, None, 1, 1, None)
    parts = [_file_sharded(args.train_files, 2, i) for i in range(2)]
    assert all(parts) and sum(parts) == ingested.counts["train"]
    # a one-file split (before shards) cannot be FILE-sharded over 2 workers: what users met
    one = _one_file_artifact(ingested, tmp_path / "one")
    one_args = fn_args.common_fn_args(one, ingested.schema, None, 1, 1, None)
    try:
        one_parts = [_file_sharded(one_args.train_files, 2, i) for i in range(2)]
    except tf.errors.InvalidArgumentError as err:
        one_parts = str(err)
    # Under the strategy: "Could not apply FILE based sharding"; here no worker gets a record.
    assert isinstance(one_parts, str) or sum(one_parts) < ingested.counts["train"]
