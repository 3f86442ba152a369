import gzip
import os

import pytest
from tfkfp.containers import ingest
from tfkfp.containers.runtime import InputError, load_schema


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
    counts = ingest.run(str(penguins_csv), str(tmp_path / "ex"), str(tmp_path / "schema"))
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
    counts = ingest.run(src, str(tmp_path / "ex"), str(tmp_path / "schema"))
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


def test_manifest_lists_each_split_file_with_size_checksum_and_records(ingested):
    import json

    from tfkfp.containers import manifest

    written = json.loads(open(os.path.join(ingested.examples, manifest.MANIFEST)).read())
    assert written["format"] == manifest.FORMAT and written["version"] == manifest.VERSION
    for split, n in ingested.counts.items():
        entry = written["splits"][split]
        assert entry["records"] == n
        [(name, info)] = entry["files"].items()
        path = os.path.join(ingested.examples, f"Split-{split}", name)
        assert info["bytes"] == os.path.getsize(path) and len(info["crc32c"]) == 8
    assert manifest.verify(ingested.examples, ["train", "eval"]) is True


def test_examples_without_manifest_are_read_unverified(tmp_path, ingested, caplog):
    """TFX's layout (or hand-made examples) has no manifest: read as is, and the log says so."""
    import logging
    import shutil

    from tfkfp.containers import manifest
    from tfkfp.containers.runtime import require_split, split_pattern

    examples = tmp_path / "examples"
    shutil.copytree(ingested.examples, examples)
    (examples / manifest.MANIFEST).unlink()
    with caplog.at_level(logging.INFO, logger="tfkfp"):
        assert require_split(str(examples), "eval", "examples") == split_pattern(
            str(examples), "eval"
        )
    assert f"no {manifest.MANIFEST}" in caplog.text and "unverified" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not a readable examples manifest"), ('{"format": "x"}', "expected format")],
)
def test_unreadable_manifest_is_refused(tmp_path, ingested, content, message):
    import shutil

    from tfkfp.containers import manifest
    from tfkfp.containers.runtime import require_split

    examples = tmp_path / "examples"
    shutil.copytree(ingested.examples, examples)
    (examples / manifest.MANIFEST).write_text(content)
    with pytest.raises(InputError, match=f"examples: .*{manifest.MANIFEST} .*{message}"):
        require_split(str(examples), "train", "examples")


@pytest.mark.parametrize("how", ["boundary", "mid_record", "flipped"])
def test_damaged_split_file_is_refused_naming_it(tmp_path, ingested, how):
    import shutil

    from conftest import damage_examples
    from tfkfp.containers.runtime import require_split

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
    os.remove(path)
    with pytest.raises(InputError, match="no 'train' split files"):
        require_split(str(tmp_path / "examples"), "train", "examples")
