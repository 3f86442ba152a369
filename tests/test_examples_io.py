"""containers/store/examples.py: the one TFRecord reader and sampler every stage uses.

The readers against TensorFlow's own writer and reader (the format's reference), sharded and
one-file splits, gs:// and s3:// on the test servers, and the one-line errors a stage gives for
a corrupt examples file that has no manifest to be checked against.
"""

import gzip
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers.one_line import one_line_error
from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import examples as examples_io
from tfkfp.containers.store.layout import MANIFEST


def _write(path: Path, records: list[bytes]) -> None:
    writer = examples_io.TFRecordWriter(str(path))
    for record in records:
        writer.write(record)
    writer.close()


def test_framing_matches_tensorflow_both_ways(tmp_path):
    import tensorflow as tf

    records = [b"", b"x", os.urandom(70_000), b"y" * 5]
    _write(tmp_path / "ours.gz", records)
    got = [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / "ours.gz"), "GZIP")]
    assert got == records
    for name, options in (("tf.gz", "GZIP"), ("tf.tfrecord", "")):
        with tf.io.TFRecordWriter(str(tmp_path / name), options) as writer:
            for record in records:
                writer.write(record)
        assert list(examples_io.read_records(str(tmp_path / name))) == records


def test_records_larger_than_a_read_span_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(examples_io, "READ_BYTES", 7)  # every record crosses chunks
    records = [bytes([i]) * (i * 3) for i in range(20)]
    _write(tmp_path / "r.gz", records)
    assert list(examples_io.read_records(str(tmp_path / "r.gz"))) == records


def _artifact(root: Path, shards: dict[str, list[list[bytes]]]) -> str:
    for split, files in shards.items():
        folder = root / f"Split-{split}"
        folder.mkdir(parents=True)
        for i, records in enumerate(files):
            _write(folder / f"data_tfrecord-{i:05d}-of-{len(files):05d}.gz", records)
    return str(root)


def test_sampler_and_batches_read_sharded_and_one_file_splits(tmp_path):
    rec = [f"r{i}".encode() for i in range(10)]
    sharded = _artifact(tmp_path / "s", {"train": [rec[:4], rec[4:7], rec[7:]], "eval": [rec]})
    assert examples_io.first(sharded, "train", 5) == rec[:5]
    assert examples_io.first(sharded, "train", 50) == rec
    assert examples_io.first(sharded, "train", 0) == []
    assert [len(b) for b in examples_io.split_batches(sharded, "train", 3)] == [3, 1, 3, 3]
    where = [w for w, _ in examples_io.split_records(sharded, ["eval", "train"])]
    assert where[0] == "split eval, file data_tfrecord-00000-of-00001.gz, record 0"
    assert where[-1] == "split train, file data_tfrecord-00002-of-00003.gz, record 2"
    with pytest.raises(InputError, match="^examples: no 'test' split at "):
        examples_io.first(sharded, "test", 1)


def test_reads_from_object_stores(bucket, tmp_path):
    rec = [f"r{i}".encode() for i in range(6)]
    local = _artifact(tmp_path / "ex", {"eval": [rec[:2], rec[2:]]})
    for path in sorted(Path(local).rglob("*.gz")):
        bucket.put(f"ex/{path.relative_to(local)}", path.read_bytes())
    assert examples_io.first(f"{bucket.uri}/ex", "eval", 4) == rec[:4]
    assert sum(map(len, examples_io.split_batches(f"{bucket.uri}/ex", "eval", 4))) == 6


def test_storage_errors_name_the_input(denying_gcs, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", denying_gcs)
    with pytest.raises(InputError, match="^examples: no permission to read gs://b/x.gz"):
        list(examples_io.read_records("gs://b/x.gz", "examples"))


def test_infer_names_its_examples_input_on_a_storage_error(
    denying_gcs, trained, tmp_path, monkeypatch
):
    # through the component's body: a denied bucket is named as `examples`, never `data_uri`
    from tfkfp.containers import infer

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", denying_gcs)
    line = one_line_error(
        infer.run,
        model=trained.model,
        examples="gs://b/examples",
        inference_result=str(tmp_path / "i"),
        predictions=str(tmp_path / "p"),
    )
    assert line.startswith("examples: no permission to read gs://b/examples/"), line
    assert "data_uri" not in line


@pytest.mark.parametrize("how", ["garbage", "truncated", "raw_garbage"])
def test_a_corrupt_file_is_one_line_naming_it(tmp_path, how):
    _write(tmp_path / "ok.gz", [b"a" * 100, b"b" * 100])
    data = gzip.decompress((tmp_path / "ok.gz").read_bytes())
    bad, content = {
        "garbage": ("bad.gz", b"not gzip at all"),
        "truncated": ("bad.gz", gzip.compress(data[:-7])),
        # uncompressed: no gzip CRC, so every length's CRC is checked
        "raw_garbage": ("bad.tfrecord", data[:116] + b"\xff" * 12 + data[116:]),
    }[how]
    (tmp_path / bad).write_bytes(content)
    with pytest.raises(InputError, match=f"^data_uri: {tmp_path / bad} is not a readable TFRecord"):
        list(examples_io.read_records(str(tmp_path / bad), "data_uri"))


# --- every stage that reads examples, on a corrupt file without a manifest ---------------------


def corrupt_unmanifested(src: str, dst: Path, split: str, how: str) -> str:
    """A copy of an examples artifact without its manifest, one file of `split` corrupt.

    `garbage`: bytes that are not gzip; `truncated`: the records cut inside one, gzipped
    again (a valid gzip file). Returns the corrupt file's path.
    """
    shutil.copytree(src, dst)
    (dst / MANIFEST).unlink()
    path = sorted((dst / f"Split-{split}").glob("*.gz"))[-1]
    if how == "garbage":
        path.write_bytes(b"\x00garbage, not a TFRecord" * 10)
    else:
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-7]))
    return str(path)


def _expect(path: str) -> str:
    return f"examples: {path} is not a readable TFRecord file"


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_statistics_transform_and_trainer_refuse_a_corrupt_file(tmp_path, ingested, how):
    from tests.helpers import PENGUINS_MODULE
    from tfkfp.containers import statistics, trainer, transform, tuner

    path = corrupt_unmanifested(ingested.examples, tmp_path / "ex", "eval", how)
    ex, out = str(tmp_path / "ex"), tmp_path / "out"
    line = one_line_error(
        statistics.run, examples=ex, statistics=str(out / "s"), view=str(out / "v.html")
    )
    assert line.startswith(_expect(path)), line
    line = one_line_error(
        transform.run,
        examples=ex,
        schema=ingested.schema,
        module_file=PENGUINS_MODULE,
        transform_graph=str(out / "g"),
        transformed_examples=str(out / "t"),
    )
    assert line.startswith(_expect(path)), line
    line = one_line_error(
        trainer.run,
        examples=ex,
        schema=ingested.schema,
        module_file=PENGUINS_MODULE,
        model=str(out / "m"),
        model_run=str(out / "r"),
        curves=str(out / "c.html"),
    )
    assert line.startswith(_expect(path)), line
    line = one_line_error(
        tuner.run,
        examples=ex,
        schema=ingested.schema,
        module_file=PENGUINS_MODULE,
        best_hyperparameters=str(out / "hp"),
        trials=str(out / "trials"),
        trials_chart=str(out / "trials.html"),
    )
    assert line.startswith(_expect(path)), line
    assert not out.exists()


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_model_stages_refuse_a_corrupt_file(tmp_path, ingested, trained, how):
    from tfkfp.containers import evaluator, infer, infra_validate, tflite
    from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG

    path = corrupt_unmanifested(ingested.examples, tmp_path / "ex", "eval", how)
    ex, out = str(tmp_path / "ex"), tmp_path / "out"
    calls = {
        "evaluator": lambda: one_line_error(
            evaluator.run,
            model=trained.model,
            examples=ex,
            eval_config=EVAL_CONFIG,
            evaluation=str(out / "e"),
            blessing=str(out / "b"),
            report=str(out / "r.md"),
            slice_chart=str(out / "s.html"),
            schema=ingested.schema,
        ),
        "infra_validate": lambda: one_line_error(
            infra_validate.run,
            model=trained.model,
            examples=ex,
            blessing=str(out / "ib"),
        ),
        "tflite": lambda: one_line_error(
            tflite.run,
            model=trained.model,
            examples=ex,
            tflite_model=str(out / "t"),
            select_tf_ops=True,
        ),
        "infer": lambda: one_line_error(
            infer.run,
            model=trained.model,
            examples=ex,
            inference_result=str(out / "i"),
            predictions=str(out / "p"),
        ),
    }
    for stage, call in calls.items():
        line = call()
        assert line.startswith(_expect(path)), (stage, line)
        # nothing written (infer makes its outputs' parent folder, which KFP provides anyway)
        assert not out.exists() or not any(out.iterdir()), (stage, sorted(out.rglob("*")))
