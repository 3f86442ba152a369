import gzip
import os

import pytest

from tfkfp.containers import events, ingest
from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import sources
from tfkfp.containers.store.layout import load_schema


def _count_records(examples_dir: str, split: str) -> int:
    import tensorflow as tf

    pattern = os.path.join(examples_dir, f"Split-{split}", "*.gz")
    return sum(1 for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), "GZIP"))


def test_csv_splits_and_schema(ingested):
    assert set(ingested.counts) == {"train", "eval"}
    assert sum(ingested.counts.values()) == 344
    # ~75% train by hash, not by position
    assert 0.65 < ingested.counts["train"] / 344 < 0.85
    for split, n in ingested.counts.items():
        assert _count_records(ingested.examples, split) == n
    features = {f.name: f for f in load_schema(ingested.schema).feature}
    # always present -> fixed length; NA in some rows -> VarLen (value_count, no shape)
    assert features["species"].HasField("shape") and features["species"].type == 1  # BYTES
    assert features["year"].HasField("shape") and features["year"].type == 2  # INT
    assert not features["bill_length_mm"].HasField("shape")
    assert features["bill_length_mm"].type == 3  # FLOAT
    assert features["body_mass_g"].type == 2  # INT: no decimal point
    assert not features["sex"].HasField("shape")


def test_split_is_deterministic(tmp_path, penguins_csv, ingested):
    counts = ingest.run(str(penguins_csv), str(tmp_path / "ex"), str(tmp_path / "schema")).rows
    assert counts == ingested.counts


def test_missing_values_are_absent_from_examples(tmp_path):
    import tensorflow as tf

    csv = tmp_path / "d.csv"
    csv.write_text("a,b,c\n1,x,\n2,NA,1.5\n3,y,2.5\n4,z,\n")
    ingest.run(str(csv), str(tmp_path / "ex"), str(tmp_path / "s"), train_fraction=0.5)
    records = []
    for split in ("train", "eval"):
        pattern = os.path.join(tmp_path, "ex", f"Split-{split}", "*.gz")
        for r in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), "GZIP"):
            records.append(tf.train.Example.FromString(r.numpy()))
    by_a = {e.features.feature["a"].int64_list.value[0]: e.features.feature for e in records}
    # a missing value carries no values (TFX encodes it as an empty Feature, parsed as missing)
    assert by_a[2]["b"].WhichOneof("kind") is None and by_a[1]["c"].WhichOneof("kind") is None
    assert by_a[3]["c"].float_list.value[0] == pytest.approx(2.5)
    kinds = {f.name: f.type for f in load_schema(str(tmp_path / "s")).feature}
    assert kinds == {"a": 2, "b": 1, "c": 3}


def test_tfrecord_input(tmp_path, ingested):
    # The splits ingest wrote are themselves valid TFRecord input.
    src = os.path.join(ingested.examples, "Split-train")
    counts = ingest.run(src, str(tmp_path / "ex"), str(tmp_path / "schema")).rows
    assert sum(counts.values()) == ingested.counts["train"]
    features = {f.name: f for f in load_schema(str(tmp_path / "schema")).feature}
    assert features["island"].HasField("shape")
    assert not features["sex"].HasField("shape")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n", "no data rows"),
        ("", "no data rows"),
        ("a,b\n1,2\n3\n", "Expected 2 columns, got 1"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_bad_csv(tmp_path, content, message):
    csv = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        csv.write_bytes(content)
    else:
        csv.write_text(content)
    out = tmp_path / "examples"
    with pytest.raises(InputError, match=message):
        ingest.run(str(csv), str(out), str(tmp_path / "schema"))
    assert not out.exists() and not (tmp_path / "schema").exists()
    assert os.listdir(tmp_path) == ["bad.csv"]  # no staging left behind


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="data_uri: no such file"):
        ingest.run(str(tmp_path / "nope.csv"), str(tmp_path / "e"), str(tmp_path / "s"))


def test_not_a_tfrecord(tmp_path):
    bad = tmp_path / "data.tfrecord.gz"
    bad.write_bytes(gzip.compress(b"definitely not a tfrecord"))
    with pytest.raises(InputError, match="not a readable TFRecord"):
        ingest.run(str(bad), str(tmp_path / "e"), str(tmp_path / "s"))
    assert not (tmp_path / "e").exists()


def test_ingest_imports_no_tensorflow(tmp_path, penguins_csv):
    import subprocess
    import sys

    code = (
        "import sys; from tfkfp.containers import ingest;"
        f"ingest.run({str(penguins_csv)!r}, {str(tmp_path / 'e')!r}, {str(tmp_path / 's')!r});"
        "print('tensorflow' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_bad_train_fraction(tmp_path, penguins_csv):
    with pytest.raises(InputError, match="train_fraction"):
        ingest.run(str(penguins_csv), str(tmp_path / "e"), str(tmp_path / "s"), train_fraction=1.5)


# --- locations, formats, progress (issue 13) and large or BOM-marked CSV (issue 14) -----------


def _schema_types(schema_dir: str) -> dict:
    return {f.name: (f.type, f.HasField("shape")) for f in load_schema(schema_dir).feature}


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path):
    csv = tmp_path / "bom.csv"
    csv.write_bytes("\ufeffspecies,mass\nAdelie,1\nGentoo,2\nChinstrap,3\nAdelie,4\n".encode())
    ingest.run(str(csv), str(tmp_path / "e"), str(tmp_path / "s"), train_fraction=0.5)
    assert _schema_types(str(tmp_path / "s")) == {"species": (1, True), "mass": (2, True)}


@pytest.mark.parametrize("field_mib", [1.5, 20])
def test_csv_with_a_field_larger_than_pyarrows_block(tmp_path, caplog, field_mib):
    # 1.5 MiB: over pyarrow's default 1 MiB block; 20 MiB: over ingest's own first block too,
    # so the block grows and the file is read again.
    big = "x" * int(field_mib * (1 << 20))
    csv = tmp_path / "big.csv"
    short = "".join(f'{i},"row {i}"\n' for i in range(2, 22))
    csv.write_text(f"id,text\n1,{big}\n{short}")
    with caplog.at_level("INFO", logger="tfkfp"):
        counts = ingest.run(str(csv), str(tmp_path / "e"), str(tmp_path / "s"), 0.5).rows
    assert sum(counts.values()) == 21
    grew = "is larger than the block" in caplog.text
    assert grew == (field_mib * (1 << 20) > sources.CSV_BLOCK_SIZE)


def _penguins_parquet(penguins_csv, path) -> str:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pcsv.read_csv(
        penguins_csv,
        convert_options=pcsv.ConvertOptions(null_values=["NA", ""], strings_can_be_null=True),
    )
    pq.write_table(table, path)
    return str(path)


def test_parquet_keeps_its_types_and_nulls_are_missing(tmp_path, penguins_csv, ingested):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = _penguins_parquet(penguins_csv, tmp_path / "penguins.parquet")
    counts = ingest.run(src, str(tmp_path / "e"), str(tmp_path / "s")).rows
    assert sum(counts.values()) == 344
    # The same features, types and fixed/VarLen shapes as the CSV ingest of the same data.
    assert _schema_types(str(tmp_path / "s")) == _schema_types(ingested.schema)
    lists = pa.table({"tags": pa.array([[1, 2], None, [], [3]]), "ok": [True, False, True, None]})
    pq.write_table(lists, tmp_path / "lists.pq")
    ingest.run(str(tmp_path / "lists.pq"), str(tmp_path / "e2"), str(tmp_path / "s2"), 0.5)
    features = {f.name: f for f in load_schema(str(tmp_path / "s2")).feature}
    assert features["tags"].type == 2 and not features["tags"].HasField("shape")
    assert (features["tags"].value_count.min, features["tags"].value_count.max) == (0, 2)
    assert features["ok"].type == 2 and not features["ok"].HasField("shape")


def test_parquet_with_unsupported_type(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"s": pa.array([{"a": 1}, {"a": 2}])}), tmp_path / "x.parquet")
    with pytest.raises(InputError, match="column 's' has Parquet type struct"):
        ingest.run(str(tmp_path / "x.parquet"), str(tmp_path / "e"), str(tmp_path / "s"))
    assert not (tmp_path / "e").exists()


def test_progress_lines_name_files_bytes_and_rows(tmp_path, penguins_csv, monkeypatch, caplog):
    monkeypatch.setattr(events, "PROGRESS_EVERY", 0.0)
    with caplog.at_level("INFO", logger="tfkfp"):
        ingest.run(str(penguins_csv), str(tmp_path / "e"), str(tmp_path / "s"))
    size = os.path.getsize(penguins_csv) / 1e6
    assert f"ingest: read 1/1 files, {size:.1f}/{size:.1f} MB, 344 rows" in caplog.text


@pytest.fixture
def penguin_files(tmp_path, penguins_csv, ingested) -> dict:
    """The penguins as CSV (two files), TFRecord (ingest's own splits) and Parquet."""
    lines = open(penguins_csv).read().splitlines(keepends=True)
    half = len(lines) // 2
    files = {
        "csv": [("a.csv", "".join(lines[:half]).encode()),
                ("b.csv", "".join(lines[:1] + lines[half:]).encode())],
        "tfrecord": [  # each split's shards as one file (gzip members concatenate)
            (f"{split}.tfrecord.gz",
             b"".join(open(f, "rb").read() for f in glob_split(ingested.examples, split)))
            for split in ("train", "eval")
        ],
        "parquet": [("p.parquet",
                     open(_penguins_parquet(penguins_csv, tmp_path / "p.parquet"), "rb").read())],
    }  # fmt: skip
    return files


def glob_split(examples: str, split: str) -> list[str]:
    import glob

    return sorted(glob.glob(os.path.join(examples, f"Split-{split}", "*.gz")))


@pytest.mark.parametrize("fmt", ["csv", "tfrecord", "parquet"])
def test_object_store_file_folder_and_glob(bucket, penguin_files, fmt, tmp_path):
    for name, data in penguin_files[fmt]:
        bucket.put(f"in/{fmt}/{name}", data)
    bucket.put(f"in/{fmt}/_SUCCESS", b"")  # a marker file in the folder is not data
    suffix = {"csv": "*.csv", "tfrecord": "*.gz", "parquet": "*.parquet"}[fmt]
    first = penguin_files[fmt][0][0]
    expected = {"csv": 344, "tfrecord": 344, "parquet": 344}[fmt]
    for i, (uri, rows) in enumerate(
        [
            (f"{bucket.uri}/in/{fmt}", expected),
            (f"{bucket.uri}/in/{fmt}/{suffix}", expected),
            (f"{bucket.uri}/in/{fmt}/{first}", None),
        ]
    ):
        counts = ingest.run(uri, str(tmp_path / f"e{i}"), str(tmp_path / f"s{i}")).rows
        if rows is not None:
            assert sum(counts.values()) == rows, uri
        assert load_schema(str(tmp_path / f"s{i}")).feature


def test_object_store_csv_matches_the_local_ingest(bucket, penguins_csv, ingested, tmp_path):
    uri = bucket.put("penguins.csv", open(penguins_csv, "rb").read())
    counts = ingest.run(uri, str(tmp_path / "e"), str(tmp_path / "s")).rows
    assert counts == ingested.counts
    assert (
        open(tmp_path / "s" / "schema.pbtxt").read()
        == open(os.path.join(ingested.schema, "schema.pbtxt")).read()
    )


def test_object_store_bad_inputs_publish_nothing(bucket, tmp_path):
    bucket.put("data/a.csv", "a,b\n1,2\n")
    missing_bucket = f"{bucket.scheme}://no-such-bucket-{bucket.name[-8:]}"
    cases = {
        f"{missing_bucket}/x.csv": f"data_uri: bucket {missing_bucket} does not exist",
        f"{bucket.uri}/nothing/": "data_uri: no such file or folder",
        f"{bucket.uri}/data/*.parquet": "data_uri: no files match",
        f"{bucket.scheme}:/{bucket.name}/data/a.csv": "data_uri: unsupported location",
    }
    for uri, message in cases.items():
        with pytest.raises(InputError, match=f"^{message}"):
            ingest.run(uri, str(tmp_path / "e"), str(tmp_path / "s"))
        assert os.listdir(tmp_path) == []


def test_manifest_lists_each_split_file_with_size_checksum_and_records(ingested):
    import json

    from tfkfp.containers.store import examples as manifest

    written = json.loads(open(os.path.join(ingested.examples, manifest.MANIFEST)).read())
    assert written["format"] == manifest.FORMAT and written["version"] == manifest.VERSION
    for split, n in ingested.counts.items():
        entry = written["splits"][split]
        assert entry["records"] == n
        assert set(entry["files"]) == set(
            os.listdir(os.path.join(ingested.examples, f"Split-{split}"))
        )
        for name, info in entry["files"].items():  # every shard
            path = os.path.join(ingested.examples, f"Split-{split}", name)
            assert info["bytes"] == os.path.getsize(path) and len(info["crc32c"]) == 8
    assert manifest.verify(ingested.examples, ["train", "eval"]) is True


def test_manifest_reads_what_it_writes_and_what_earlier_tfkfp_wrote():
    import json

    from tfkfp.containers.store.examples import FORMAT, Manifest

    earlier = {  # as ingest wrote it before the manifest had a type: a dict, keys sorted
        "format": FORMAT,
        "splits": {
            "eval": {
                "files": {"d-00000-of-00001.gz": {"bytes": 10, "crc32c": "0a0b0c0d"}},
                "records": 3,
            },
            "train": {
                "files": {"d-00000-of-00001.gz": {"bytes": 20, "crc32c": "1a1b1c1d"}},
                "records": 7,
            },
        },
        "version": 1,
    }
    text = json.dumps(earlier, indent=1, sort_keys=True)
    manifest = Manifest.from_json(text)
    assert manifest.splits["train"].files["d-00000-of-00001.gz"].crc32c == "1a1b1c1d"
    assert manifest.records(["train", "eval"]) == 10 and manifest.records(["test"]) == 0
    assert manifest.to_json() == text  # the same bytes
    assert Manifest.from_json(manifest.to_json()) == manifest
    for damaged in ("[]", '{"format": "x", "splits": {}}', json.dumps({"format": FORMAT})):
        with pytest.raises(ValueError):
            Manifest.from_json(damaged)


def test_examples_without_manifest_have_their_framing_checked(tmp_path, ingested, caplog):
    """TFX's layout (or hand-made examples) has no manifest: each file's TFRecord framing is
    read once instead (a corrupt file fails in one line: tests/test_examples_io.py)."""
    import logging
    import shutil

    from tfkfp.containers.store import examples as manifest
    from tfkfp.containers.store.examples import require_split
    from tfkfp.containers.store.layout import split_pattern

    examples = tmp_path / "examples"
    shutil.copytree(ingested.examples, examples)
    (examples / manifest.MANIFEST).unlink()
    with caplog.at_level(logging.INFO, logger="tfkfp"):
        assert require_split(str(examples), "eval", "examples") == split_pattern(
            str(examples), "eval"
        )
    assert f"no {manifest.MANIFEST}" in caplog.text
    assert f"framing of its {len(os.listdir(examples / 'Split-eval'))} file(s) checked" in (
        caplog.text
    )
    assert f"({ingested.counts['eval']} records)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tfkfp"):  # a reader of every record skips it
        assert not manifest.verify(str(examples), ["eval"], frames=False)
    assert "unverified" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not a readable examples manifest"), ('{"format": "x"}', "expected format")],
)
def test_unreadable_manifest_is_refused(tmp_path, ingested, content, message):
    import shutil

    from tfkfp.containers.store import examples as manifest
    from tfkfp.containers.store.examples import require_split

    examples = tmp_path / "examples"
    shutil.copytree(ingested.examples, examples)
    (examples / manifest.MANIFEST).write_text(content)
    with pytest.raises(InputError, match=f"examples: .*{manifest.MANIFEST} .*{message}"):
        require_split(str(examples), "train", "examples")


@pytest.mark.parametrize("how", ["boundary", "mid_record", "flipped"])
def test_damaged_split_file_is_refused_naming_it(tmp_path, ingested, how):
    import shutil

    from tests.helpers import damage_examples
    from tfkfp.containers.store.examples import require_split

    path = damage_examples(ingested.examples, tmp_path / "examples", "train", how)
    with pytest.raises(InputError, match=f"examples: {path} is damaged"):
        require_split(str(tmp_path / "examples"), "train", "examples")
    # the other split is intact
    require_split(str(tmp_path / "examples"), "eval", "examples")
    # a file added to the split, or one removed, is refused too
    shutil.copy(path, path + ".extra.gz")
    with pytest.raises(InputError, match=r"\.extra\.gz is not in tfkfp_manifest\.json"):
        require_split(str(tmp_path / "examples"), "train", "examples")
    os.remove(path + ".extra.gz")
    os.remove(path)  # one shard gone: named
    with pytest.raises(InputError, match=f"examples: {path} is missing"):
        require_split(str(tmp_path / "examples"), "train", "examples")
    for shard in glob_split(str(tmp_path / "examples"), "train"):
        os.remove(shard)
    with pytest.raises(InputError, match="no 'train' split files"):
        require_split(str(tmp_path / "examples"), "train", "examples")


def test_manifest_at_an_object_store_uri(tmp_path, ingested, bucket):
    """A remote runner's transform writes its examples at a bucket URI: so does the manifest."""
    from tfkfp.containers.store import examples as manifest
    from tfkfp.containers.store import storage
    from tfkfp.containers.store.layout import MANIFEST

    uri = f"{bucket.uri}/examples"
    storage.upload(ingested.examples, uri, "test")
    storage.delete(f"{uri}/{MANIFEST}", "test")
    written = manifest.write(uri, ingested.counts)
    assert written == manifest.read(ingested.examples)  # the same bytes, sizes and CRC32C
    assert manifest.verify(uri, ["train", "eval"]) is True
    train = sorted(written.splits["train"].files)[0]
    storage.write_bytes(f"{uri}/Split-train/{train}", b"x", "test")
    with pytest.raises(InputError, match=r"examples: .*/Split-train/.* is damaged: 1 bytes"):
        manifest.verify(uri, ["train"])
