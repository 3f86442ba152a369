"""statistics, validate and the curated schema, on the real penguin data and variants of it."""

import csv
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

from tests.helpers import run_cli
from tfkfp.containers import ingest, statistics, validate
from tfkfp.containers.runtime import InputError, entrypoint
from tfkfp.containers.store import statistics_io
from tfkfp.containers.store.layout import load_schema


def _rows(penguins_csv: Path) -> list[dict]:
    with open(penguins_csv, newline="") as fh:
        return list(csv.DictReader(fh))


def _write(rows: list[dict], path: Path) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _pipeline(tmp: Path, data: Path, name: str = "run") -> Path:
    """ingest (inferred schema) + statistics of `data`; returns the run's folder."""
    out = tmp / name
    ingest.run(str(data), str(out / "examples"), str(out / "schema"))
    statistics.run(str(out / "examples"), str(out / "statistics"), str(out / "view.html"))
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory, penguins_csv) -> Path:
    return _pipeline(tmp_path_factory.mktemp("clean"), penguins_csv)


def _schema(clean: Path, edit=None, path: Path | None = None) -> str:
    schema = text_format.Parse((clean / "schema" / "schema.pbtxt").read_text(), schema_pb2.Schema())
    if edit:
        edit({f.name: f for f in schema.feature}, schema)
    path = path or clean.parent / f"schema-{os.urandom(4).hex()}.pbtxt"
    path.write_text(text_format.MessageToString(schema))
    return str(path)


def _validate(run: Path, schema: str, **kwargs) -> validate.ValidateResult:
    return validate.run(
        str(run / "statistics"), schema, str(run / "anomalies"), str(run / "report.md"), **kwargs
    )


def _kinds(run: Path, split: str) -> dict[str, list[str]]:
    data = (run / "anomalies" / f"Split-{split}" / "SchemaDiff.pb").read_bytes()
    proto = anomalies_pb2.Anomalies.FromString(data)
    return {
        name: [anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason]
        for name, info in proto.anomaly_info.items()
    }


# --- statistics ----------------------------------------------------------------------------


def test_statistics_match_numpy_on_the_same_data(clean, penguins_csv):
    rows = _rows(penguins_csv)
    split = {
        s: statistics_io.load(str(clean / "statistics"), s).datasets[0] for s in ("train", "eval")
    }
    assert sum(d.num_examples for d in split.values()) == len(rows)
    feats = {s: {f.path.step[0]: f for f in d.features} for s, d in split.items()}

    for name in ("bill_length_mm", "body_mass_g"):
        values = np.array([float(r[name]) for r in rows if r[name] not in ("", "NA")])
        parts = [feats[s][name].num_stats for s in split]
        counts = [p.common_stats.num_non_missing for p in parts]
        assert sum(counts) == len(values)
        assert sum(p.common_stats.num_missing for p in parts) == len(rows) - len(values)
        assert min(p.min for p in parts) == pytest.approx(values.min(), rel=1e-6)
        assert max(p.max for p in parts) == pytest.approx(values.max(), rel=1e-6)
        mean = sum(p.mean * n for p, n in zip(parts, counts, strict=True)) / sum(counts)
        assert mean == pytest.approx(values.mean(), rel=1e-5)
        # pooled variance of the two splits = the variance of all values
        second = sum((p.std_dev**2 + p.mean**2) * n for p, n in zip(parts, counts, strict=True))
        assert np.sqrt(second / sum(counts) - mean**2) == pytest.approx(values.std(), rel=1e-4)
        for p, n in zip(parts, counts, strict=True):
            standard = [h for h in p.histograms if h.type == h.STANDARD][0]
            assert sum(b.sample_count for b in standard.buckets) == n
            assert p.min <= p.median <= p.max

    # The train split's histogram, recomputed with numpy from the train values' own range.
    train = feats["train"]["flipper_length_mm"].num_stats
    standard = [h for h in train.histograms if h.type == h.STANDARD][0]
    assert standard.buckets[0].low_value == train.min
    assert standard.buckets[-1].high_value == train.max

    island = Counter(r["island"] for r in rows)
    merged = Counter()
    for s in split:
        ss = feats[s]["island"].string_stats
        merged.update({b.label: b.sample_count for b in ss.rank_histogram.buckets})
        assert ss.unique == len({b.label for b in ss.rank_histogram.buckets})
        assert ss.top_values[0].frequency == max(b.sample_count for b in ss.rank_histogram.buckets)
    assert merged == island


def test_statistics_of_the_taxi_sample_count_every_value(tmp_path):
    """Taxi columns empty in whole batches (null-typed by the decoder) count as missing."""
    from importlib import resources

    data = resources.files("tfkfp.pipelines.taxi") / "data" / "chicago_taxi.csv"
    rows = list(csv.DictReader(open(data, newline="")))
    run = _pipeline(tmp_path, Path(str(data)))
    assert _validate(run, str(run / "schema")).valid
    for name in ("trip_miles", "company", "dropoff_census_tract"):
        present = sum(1 for r in rows if r[name].strip() not in ("", "NA"))
        total = 0
        for split in ("train", "eval"):
            stats = statistics_io.load(str(run / "statistics"), split).datasets[0]
            feat = next(f for f in stats.features if f.path.step[0] == name)
            common = getattr(feat, feat.WhichOneof("stats")).common_stats
            assert common.num_non_missing + common.num_missing == stats.num_examples
            total += common.num_non_missing
        assert total == present


def test_statistics_and_validate_do_not_import_tensorflow(clean, tmp_path):
    code = (
        "import sys, time; t = time.time();"
        "from tfkfp.containers import statistics, validate;"
        f"statistics.run({str(clean / 'examples')!r}, {str(tmp_path / 's')!r}, "
        f"{str(tmp_path / 'v.html')!r});"
        f"r = validate.run({str(tmp_path / 's')!r}, {str(clean / 'schema')!r}, "
        f"{str(tmp_path / 'a')!r}, {str(tmp_path / 'r.md')!r});"
        "print(r.valid, 'tensorflow' in sys.modules, round(time.time() - t, 2))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    valid, tf_imported, _seconds = out.stdout.split()
    assert (valid, tf_imported) == ("True", "False")


@pytest.mark.parametrize("manifest", [True, False])
def test_statistics_of_an_emptied_split_is_one_line(clean, tmp_path, capsys, manifest):
    import gzip

    examples = tmp_path / "examples"
    shutil.copytree(clean / "examples", examples)
    shards = sorted((examples / "Split-eval").glob("*.gz"))
    for shard in shards:
        shard.write_bytes(gzip.compress(b""))  # a valid gzip file of no records
    target = shards[0]  # the first the manifest check meets
    if not manifest:
        (examples / "tfkfp_manifest.json").unlink()
    with pytest.raises(SystemExit) as exit_:
        entrypoint(
            statistics.run,
            examples=str(examples),
            statistics=str(tmp_path / "s"),
            view=str(tmp_path / "v.html"),
        )
    assert exit_.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error")]
    assert len(err) == 1
    if manifest:
        assert err[0].startswith(f"error: examples: {target} is damaged: "), err
        assert "truncated since" in err[0]
    else:
        assert err == [f"error: examples: the 'eval' split has no rows ({examples / 'Split-eval'})"]
    assert not (tmp_path / "s").exists() and not (tmp_path / "v.html").exists()


def test_statistics_without_a_split_is_one_line(clean, tmp_path, capsys):
    examples = tmp_path / "examples"
    shutil.copytree(clean / "examples", examples)
    shutil.rmtree(examples / "Split-eval")
    with pytest.raises(SystemExit) as exit_:
        entrypoint(
            statistics.run,
            examples=str(examples),
            statistics=str(tmp_path / "s"),
            view=str(tmp_path / "v.html"),
        )
    assert exit_.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error")]
    assert err == [f"error: examples: no 'eval' split at {examples / 'Split-eval'}"]
    assert not (tmp_path / "s").exists() and not (tmp_path / "v.html").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not gzip at all", r"^examples: .*data.gz is not a readable TFRecord file"),
        ("truncated", r"^examples: .*data.gz is not a readable TFRecord file \(truncated record\)"),
    ],
)
def test_statistics_of_unreadable_examples_is_one_line(clean, tmp_path, content, message):
    import gzip

    examples = tmp_path / "examples"
    shutil.copytree(clean / "examples", examples)
    shards = sorted((examples / "Split-eval").glob("*.gz"))
    if content == "truncated":
        content = gzip.compress(gzip.decompress(shards[0].read_bytes())[:-7])
    for shard in shards:  # the split becomes one unreadable file
        shard.unlink()
    (examples / "Split-eval" / "data.gz").write_bytes(content)
    (examples / "tfkfp_manifest.json").unlink()  # examples not written by ingest: read as found
    with pytest.raises(InputError, match=message):
        statistics.run(str(examples), str(tmp_path / "s"), str(tmp_path / "v.html"))
    assert not (tmp_path / "s").exists() and not (tmp_path / "v.html").exists()


# --- validate ------------------------------------------------------------------------------


def test_clean_data_is_valid(clean):
    result = _validate(clean, str(clean / "schema"))
    assert result.valid
    assert result.anomalies == {"train": {}, "eval": {}}
    assert "**Valid**" in (clean / "report.md").read_text()
    assert _kinds(clean, "train") == {} and _kinds(clean, "eval") == {}


def test_dropped_column_is_not_valid(clean, penguins_csv, tmp_path):
    rows = [{k: v for k, v in r.items() if k != "island"} for r in _rows(penguins_csv)]
    run = _pipeline(tmp_path, _write(rows, tmp_path / "dropped.csv"))
    result = _validate(run, str(clean / "schema"))
    assert not result.valid
    assert _kinds(run, "train")["island"] == ["SCHEMA_MISSING_COLUMN"]
    assert "| train | `island` |" in (run / "report.md").read_text()


def test_renamed_column_is_missing_and_new(clean, penguins_csv, tmp_path):
    rows = [{("mass_g" if k == "body_mass_g" else k): v for k, v in r.items()} for r in _rows(penguins_csv)]  # fmt: skip
    run = _pipeline(tmp_path, _write(rows, tmp_path / "renamed.csv"))
    result = _validate(run, str(clean / "schema"))
    assert not result.valid
    kinds = _kinds(run, "eval")
    assert kinds["body_mass_g"] == ["SCHEMA_MISSING_COLUMN"]
    assert kinds["mass_g"] == ["SCHEMA_NEW_COLUMN"]
    report = (run / "report.md").read_text()
    assert "`body_mass_g`" in report and "Not valid" in report


def test_type_change_is_not_valid(clean, penguins_csv, tmp_path):
    rows = _rows(penguins_csv)
    for r in rows[::7]:
        r["body_mass_g"] = f"{r['body_mass_g']} g"
    run = _pipeline(tmp_path, _write(rows, tmp_path / "typed.csv"))
    assert not _validate(run, str(clean / "schema")).valid
    assert _kinds(run, "train")["body_mass_g"] == ["UNEXPECTED_DATA_TYPE"]


def test_out_of_domain_string_is_not_valid(clean, penguins_csv, tmp_path):
    def domain(features, schema):
        features["island"].string_domain.value.extend(["Biscoe", "Dream", "Torgersen"])

    schema = _schema(clean, domain)
    assert _validate(clean, schema).valid  # the real data keeps to the domain
    rows = _rows(penguins_csv)
    for r in rows[::3]:
        r["island"] = "Atlantis"
    run = _pipeline(tmp_path, _write(rows, tmp_path / "atlantis.csv"))
    result = _validate(run, schema)
    assert not result.valid
    assert _kinds(run, "train")["island"] == ["ENUM_TYPE_UNEXPECTED_STRING_VALUES"]
    assert "'Atlantis'" in result.anomalies["train"]["island"]


def test_range_violation_is_not_valid(clean):
    def ranges(features, schema):
        features["bill_length_mm"].float_domain.max = 50.0
        features["body_mass_g"].int_domain.min = 3000

    _validate(clean, _schema(clean, ranges))
    kinds = _kinds(clean, "train")
    assert kinds["bill_length_mm"] == ["FLOAT_TYPE_BIG_FLOAT"]
    assert kinds["body_mass_g"] == ["INT_TYPE_SMALL_INT"]


def test_drift_above_threshold_is_not_valid(clean, penguins_csv, tmp_path):
    def comparators(features, schema):
        features["body_mass_g"].drift_comparator.jensen_shannon_divergence.threshold = 0.1
        features["island"].drift_comparator.infinity_norm.threshold = 0.2

    schema = _schema(clean, comparators)
    previous = str(clean / "statistics")
    assert _validate(clean, schema, previous_statistics=previous).valid  # itself: no drift
    rows = _rows(penguins_csv)
    for r in rows:
        if r["body_mass_g"] != "NA":
            r["body_mass_g"] = str(int(r["body_mass_g"]) + 1500)
        r["island"] = "Biscoe"
    run = _pipeline(tmp_path, _write(rows, tmp_path / "drifted.csv"))
    result = _validate(run, schema, previous_statistics=previous)
    assert not result.valid
    kinds = _kinds(run, "train")
    assert kinds["body_mass_g"] == ["COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"]
    assert kinds["island"] == ["COMPARATOR_L_INFTY_HIGH"]


def test_distances_as_tfdv_defines_them(clean):
    train = {f.path.step[0]: f for f in statistics_io.load(str(clean / "statistics"), "train").datasets[0].features}  # fmt: skip
    island = train["island"]
    assert validate.l_infinity(island, island) == 0.0
    assert validate.jensen_shannon(train["body_mass_g"], train["body_mass_g"]) == pytest.approx(0)
    # Disjoint histograms diverge fully (1 with log base 2).
    assert validate.jensen_shannon(train["body_mass_g"], train["year"]) == pytest.approx(1.0)


def test_skew_between_train_and_eval(clean):
    def skew(features, schema):
        features["island"].skew_comparator.infinity_norm.threshold = 0.0001
        features["bill_depth_mm"].skew_comparator.jensen_shannon_divergence.threshold = 0.9

    result = _validate(clean, _schema(clean, skew))
    assert not result.valid
    assert _kinds(clean, "eval") == {"island": ["COMPARATOR_L_INFTY_HIGH"]}


def test_previous_statistics_from_a_bucket(clean, gcs, tmp_path):
    bucket = gcs.client.bucket(gcs.bucket)
    for split in ("train", "eval"):
        path = clean / "statistics" / f"Split-{split}" / "FeatureStats.pb"
        bucket.blob(f"runs/1/statistics/Split-{split}/FeatureStats.pb").upload_from_filename(path)

    def comparators(features, schema):
        features["body_mass_g"].drift_comparator.jensen_shannon_divergence.threshold = 0.1

    uri = f"gs://{gcs.bucket}/runs/1/statistics"
    assert _validate(clean, _schema(clean, comparators), previous_statistics_uri=uri).valid
    with pytest.raises(InputError, match=r"^previous_statistics_uri: no 'train' split"):
        _validate(clean, str(clean / "schema"), previous_statistics_uri=f"gs://{gcs.bucket}/x")


def test_type_change_since_the_previous_run_is_drift(clean, penguins_csv, tmp_path):
    """FLOAT before, BYTES now, under a schema inferred from the new data: an anomaly."""
    rows = _rows(penguins_csv)
    for r in rows:
        if r["bill_length_mm"] != "NA":
            r["bill_length_mm"] = f"{r['bill_length_mm']} mm"
    run = _pipeline(tmp_path, _write(rows, tmp_path / "retyped.csv"))
    previous = str(clean / "statistics")
    assert _validate(run, str(run / "schema")).valid  # its own schema says BYTES now

    def comparator(features, schema):
        features["bill_length_mm"].drift_comparator.jensen_shannon_divergence.threshold = 0.5

    for schema in (str(run / "schema"), _schema(run, comparator)):
        result = _validate(run, schema, previous_statistics=previous)
        assert not result.valid
        assert _kinds(run, "train") == {"bill_length_mm": ["UNEXPECTED_DATA_TYPE"]}
        text = result.anomalies["train"]["bill_length_mm"]
        assert "FLOAT" in text and "STRING" in text, text
        assert _kinds(run, "eval") == {}


def test_empty_column_is_valid_against_its_inferred_schema(penguins_csv, tmp_path):
    rows = [{**r, "comment": ""} for r in _rows(penguins_csv)]
    run = _pipeline(tmp_path, _write(rows, tmp_path / "empty_column.csv"))
    features = {f.name: f for f in load_schema(str(run / "schema")).feature}
    comment = features["comment"]
    # As TFDV infers it: may be absent, nothing else known.
    assert comment.presence.HasField("min_count") and comment.presence.min_count == 0
    assert not comment.HasField("value_count") and not comment.HasField("shape")
    result = _validate(run, str(run / "schema"))
    assert result.valid, result.anomalies


def _tfx_style_examples(data: str, path: Path) -> Path:
    """The CSV as TFX's CsvExampleGen writes it: gzip tf.Examples without the empty cells."""
    import tensorflow as tf

    rows = list(csv.DictReader(open(data, newline="")))

    def kind(column: str) -> str:
        values = [r[column] for r in rows if r[column] != ""]
        for name, cast in (("int", int), ("float", float)):
            try:
                [cast(v) for v in values]
                return name
            except ValueError:
                pass
        return "bytes"

    kinds = {column: kind(column) for column in rows[0]}
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            features = {}
            for column, value in row.items():
                if value == "":
                    continue
                if kinds[column] == "int":
                    feature = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
                elif kinds[column] == "float":
                    feature = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
                else:
                    feature = tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[value.encode()])
                    )
                features[column] = feature
            example = tf.train.Example(features=tf.train.Features(feature=features))
            writer.write(example.SerializeToString())
    return path


def test_tfx_taxi_examples_are_valid_against_their_inferred_schema(tmp_path):
    """TFX's taxi data as TFX writes it: pickup_census_tract has a value in 1 of 15,002 rows,
    so one split's examples never name it. It stopped the example pipelines ('Column
    dropped'), also with the schema `tfkfp schema` infers handed back as schema_uri."""
    data = "/work/shared/data/chicago_taxi.csv"
    if not os.path.exists(data):
        from importlib import resources

        data = str(resources.files("tfkfp.pipelines.taxi") / "data" / "chicago_taxi.csv")
    examples = _tfx_style_examples(data, tmp_path / "taxi.tfrecord.gz")
    schema = tmp_path / "taxi.pbtxt"
    proc = run_cli("schema", str(examples), "-o", str(schema))
    assert proc.returncode == 0, proc.stderr
    for name, uri in (("inferred", ""), ("schema_uri", str(schema))):
        out = tmp_path / name
        ingest.run(str(examples), str(out / "examples"), str(out / "schema"), schema_uri=uri)
        statistics.run(str(out / "examples"), str(out / "statistics"), str(out / "view.html"))
        seen = [
            {
                f.path.step[0]
                for f in statistics_io.load(str(out / "statistics"), s).datasets[0].features
            }
            for s in ("train", "eval")
        ]
        # the case: one split has no example naming the feature
        assert ("pickup_census_tract" in seen[0]) != ("pickup_census_tract" in seen[1])
        result = _validate(out, str(out / "schema"))
        assert result.valid, result.anomalies
        assert result.summary() == "valid"


@pytest.mark.pipeline
def test_example_pipeline_stopped_by_validation_says_so_and_fails(clean, penguins_csv, tmp_path):
    """Anomalies: no training, and the run fails at a step saying why (exit 2, KFP UI red)."""
    import json

    def ranges(features, schema):
        features["bill_length_mm"].float_domain.max = 50.0

    schema = _schema(clean, ranges, path=tmp_path / "schema.pbtxt")
    root = tmp_path / "root"
    proc = run_cli(
        "run", "penguins", "--local",
        "--param", f"data_uri={penguins_csv}",
        "--param", f"push_destination={tmp_path / 'serving'}",
        "--param", f"schema_uri={schema}",
        "--pipeline-root", str(root),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "tfkfp: error: validation stopped the run: 2 anomalies against the schema: "
        "'bill_length_mm' in train: Maximum "
    ), last
    assert "data-not-valid FAILED" in proc.stdout
    [run_dir] = list(root.iterdir())
    assert not (run_dir / "transform").exists() and not (run_dir / "trainer").exists()
    assert not (tmp_path / "serving").exists()
    executor = json.loads((run_dir / "validate" / "executor_output.json").read_text())
    assert executor["parameterValues"]["valid"] is False
    assert executor["parameterValues"]["summary"] == last.removeprefix(
        "tfkfp: error: validation stopped the run: "
    )
    report = executor["artifacts"]["report"]["artifacts"][0]["uri"]
    assert "bill_length_mm" in open(report).read()


def test_fail_on_anomalies_fails_in_one_line(clean, capsys):
    def ranges(features, schema):
        features["bill_length_mm"].float_domain.max = 50.0

    schema = _schema(clean, ranges)
    with pytest.raises(SystemExit) as exit_:
        entrypoint(
            validate.run,
            statistics=str(clean / "statistics"),
            schema=schema,
            anomalies=str(clean / "anomalies"),
            report=str(clean / "report.md"),
            fail_on_anomalies=True,
        )
    assert exit_.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error")]
    assert len(err) == 1 and err[0].startswith("error: statistics: ")
    assert "'bill_length_mm'" in err[0]
    assert "bill_length_mm" in (clean / "report.md").read_text()  # the report is there to read


@pytest.mark.parametrize(
    "case, message",
    [
        ("no_schema", r"^schema: no such file or folder .*missing.pbtxt \(expected"),
        ("not_a_schema", r"^schema: .* is not a Schema in text format"),
        ("folder_without_schema", r"^schema: .*/empty is a folder without schema.pbtxt"),
        ("binary_file", r"^schema: .*bin.pbtxt is not a Schema in text format \(not UTF-8"),
        ("binary_schema", r"^schema: .*/schema.pbtxt is a binary Schema protobuf; expected the"),
        ("empty_schema", r"^schema: .*/empty.pbtxt is empty"),
        ("no_split", r"^statistics: no 'eval' split statistics at "),
        ("empty_stats", r"^statistics: .*Split-eval/FeatureStats.pb is empty \(0 bytes"),
        ("empty_previous", r"^previous_statistics: .*Split-train/FeatureStats.pb is empty"),
        ("comparator_on_absent", r"^schema: drift_comparator on feature 'nope', which is absent"),
    ],
)
def test_validate_bad_input(clean, tmp_path, case, message):
    stats, schema, previous = str(clean / "statistics"), str(clean / "schema"), None
    if case == "no_schema":
        schema = str(tmp_path / "missing.pbtxt")
    elif case == "not_a_schema":
        schema = str(tmp_path / "bad.pbtxt")
        Path(schema).write_text("this is { not a schema")
    elif case == "folder_without_schema":
        schema = str(tmp_path / "empty")
        os.makedirs(schema)
    elif case == "binary_file":
        schema = str(tmp_path / "bin.pbtxt")
        Path(schema).write_bytes(bytes(range(256)))
    elif case == "binary_schema":
        # tfdv.write_schema (not write_schema_text) gives this, named as TFX names the text
        parsed = text_format.Parse(
            (clean / "schema" / "schema.pbtxt").read_text(), schema_pb2.Schema()
        )
        os.makedirs(tmp_path / "binary")
        (tmp_path / "binary" / "schema.pbtxt").write_bytes(parsed.SerializeToString())
        schema = str(tmp_path / "binary")
    elif case == "empty_schema":
        schema = str(tmp_path / "empty.pbtxt")
        Path(schema).write_text("")
    elif case in ("no_split", "empty_stats", "empty_previous"):
        shutil.copytree(clean / "statistics", tmp_path / "s")
        if case == "no_split":
            shutil.rmtree(tmp_path / "s" / "Split-eval")
            stats = str(tmp_path / "s")
        elif case == "empty_stats":
            (tmp_path / "s" / "Split-eval" / "FeatureStats.pb").write_bytes(b"")
            stats = str(tmp_path / "s")
        else:
            (tmp_path / "s" / "Split-train" / "FeatureStats.pb").write_bytes(b"")
            previous = str(tmp_path / "s")
    else:

        def absent(features, schema_):
            schema_.feature.add(name="nope", type=schema_pb2.FLOAT)
            schema_.feature[-1].drift_comparator.jensen_shannon_divergence.threshold = 0.1

        schema, previous = _schema(clean, absent), stats
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        validate.run(stats, schema, str(out / "a"), str(out / "r.md"), previous_statistics=previous)
    assert not out.exists()


# --- curated schema ------------------------------------------------------------------------


def test_schema_command_writes_ingests_schema(penguins_csv, tmp_path, clean):
    out = tmp_path / "curated" / "schema.pbtxt"
    proc = run_cli("schema", str(penguins_csv), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == (clean / "schema" / "schema.pbtxt").read_text()


def test_curated_schema_becomes_the_schema_output(clean, penguins_csv, bucket, tmp_path):
    def domain(features, schema):
        features["island"].string_domain.value.extend(["Biscoe", "Dream", "Torgersen"])

    curated = Path(_schema(clean, domain))
    uri = bucket.put("schemas/penguins.pbtxt", curated.read_text())
    ingest.run(str(penguins_csv), str(tmp_path / "ex"), str(tmp_path / "schema"), schema_uri=uri)
    assert (tmp_path / "schema" / "schema.pbtxt").read_text() == curated.read_text()


@pytest.mark.parametrize(
    "case, message",
    [
        ("dropped", "error: schema_uri: the data has no column island ({schema} lists it)"),
        ("added", "error: schema_uri: the data's column colour is not in {schema}"),
        (
            "retyped",
            "error: schema_uri: column 'body_mass_g' should hold INT values per {schema}, "
            "the data has BYTES",
        ),
        ("missing", "error: schema_uri: no such file or folder {schema}"),
        ("not_a_schema", "error: schema_uri: {schema} is not a Schema in text format"),
    ],
)
def test_curated_schema_the_data_breaks_fails_ingest_in_one_line(
    clean, penguins_csv, tmp_path, capsys, case, message
):
    rows = _rows(penguins_csv)
    schema = _schema(clean, path=tmp_path / "schema.pbtxt")
    if case == "dropped":
        rows = [{k: v for k, v in r.items() if k != "island"} for r in rows]
    elif case == "added":
        rows = [{**r, "colour": "grey"} for r in rows]
    elif case == "retyped":
        rows[5]["body_mass_g"] = "heavy"
    elif case == "missing":
        schema = str(tmp_path / "nowhere.pbtxt")
    else:
        Path(schema).write_text('feature { name: "x" type: NOPE }')
    data = _write(rows, tmp_path / "data.csv")
    with pytest.raises(SystemExit) as exit_:
        entrypoint(
            ingest.run,
            data_uri=str(data),
            examples=str(tmp_path / "ex"),
            schema=str(tmp_path / "sc"),
            schema_uri=schema,
        )
    assert exit_.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error")]
    assert len(err) == 1
    assert err[0].startswith(message.format(schema=schema))
    assert not (tmp_path / "ex").exists() and not (tmp_path / "sc").exists()


def _bad_schema(clean: Path, tmp_path: Path, how: str) -> str:
    """A schema location that is no text schema: a binary Schema named schema.pbtxt, a binary
    file, or a folder without schema.pbtxt."""
    if how == "binary_schema":
        parsed = text_format.Parse(
            (clean / "schema" / "schema.pbtxt").read_text(), schema_pb2.Schema()
        )
        os.makedirs(tmp_path / "bad_schema")
        (tmp_path / "bad_schema" / "schema.pbtxt").write_bytes(parsed.SerializeToString())
        return str(tmp_path / "bad_schema")
    if how == "binary_file":
        (tmp_path / "bad.pbtxt").write_bytes(b"\x80\x81 binary \xff")
        return str(tmp_path / "bad.pbtxt")
    os.makedirs(tmp_path / "no_schema_here")
    return str(tmp_path / "no_schema_here")


BAD_SCHEMA = {
    "binary_schema": r" is a binary Schema protobuf; expected the text format",
    "binary_file": r"bad.pbtxt is not a Schema in text format \(not UTF-8 text: byte 0x80 at",
    "folder": r"no_schema_here is a folder without schema.pbtxt",
}


@pytest.mark.parametrize("how", list(BAD_SCHEMA))
@pytest.mark.parametrize("stage", ["ingest", "transform", "trainer", "tuner", "evaluator"])
def test_every_schema_reader_refuses_a_schema_that_is_not_text(
    clean, tmp_path, ingested, transformed, trained, stage, how
):
    """One reader (layout.load_schema) for every stage: one line naming the input."""
    from tfkfp.containers import evaluator, trainer, transform, tuner
    from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG

    bad = _bad_schema(clean, tmp_path, how)
    out = tmp_path / "out"
    module = "tfkfp.pipelines.penguins.module"
    calls = {
        "ingest": lambda: ingest.run(
            _penguins(), str(out / "ex"),
            str(out / "sc"), schema_uri=bad,
        ),
        "transform": lambda: transform.run(
            ingested.examples, bad, module, str(out / "graph"), str(out / "ex")
        ),
        "trainer": lambda: trainer.run(
            transformed.examples, bad, module, str(out / "model"), str(out / "run"),
            str(out / "curves.html"), transform_graph=transformed.graph,
        ),
        "tuner": lambda: tuner.run(
            transformed.examples, bad, module, str(out / "hp"), str(out / "t.md"),
            str(out / "t.html"), transform_graph=transformed.graph,
        ),
        "evaluator": lambda: evaluator.run(
            trained.model, ingested.examples, EVAL_CONFIG, str(out / "ev"), str(out / "bl"),
            str(out / "r.md"), str(out / "s.html"), schema=bad,
        ),
    }  # fmt: skip
    what = "schema_uri" if stage == "ingest" else "schema"
    with pytest.raises(InputError, match=f"^{what}: .*{BAD_SCHEMA[how]}") as raised:
        calls[stage]()
    assert "\n" not in str(raised.value)
    assert not out.exists() or not any(out.iterdir())


def _penguins() -> str:
    from importlib import resources

    return str(resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv")


def test_schema_uri_at_a_schema_artifact_folder_reads_its_schema(clean, penguins_csv, tmp_path):
    ingest.run(
        str(penguins_csv),
        str(tmp_path / "ex"),
        str(tmp_path / "sc"),
        schema_uri=str(clean / "schema"),
    )
    assert (tmp_path / "sc" / "schema.pbtxt").read_text() == (
        clean / "schema" / "schema.pbtxt"
    ).read_text()


# --- the HTML view in a real browser -------------------------------------------------------


@pytest.mark.slow  # a browser; test_charts keeps one
def test_view_renders_the_feature_table_in_headless_chromium(clean, tmp_path, chromium):
    from PIL import Image

    page = clean / "view.html"
    dom = chromium.dump_dom(str(page))
    for name in ("bill_length_mm", "body_mass_g", "island", "species"):
        assert f"<td>{name}</td>" in dom
    assert dom.count("<svg") >= 6 and "<rect" in dom
    shot = chromium.screenshot(str(page), tmp_path / "view.png", size="1200,900")
    # text and bars make many distinct pixel rows; a blank page has one
    image = Image.open(shot).convert("RGB")
    width = image.width
    pixels = list(image.getdata())
    rows = {tuple(pixels[i * width : (i + 1) * width]) for i in range(image.height)}
    assert len(rows) > 50, "the screenshot is blank"
