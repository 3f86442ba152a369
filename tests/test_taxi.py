"""The advanced example end to end: `tfkfp run pipelines/taxi --local` trains, evaluates, pushes."""

import csv
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli

# Every test here reads one full local run of the taxi pipeline.
pytestmark = pytest.mark.pipeline

TAXI_CSV = REPO / "pipelines" / "taxi" / "data" / "chicago_taxi.csv"


@pytest.fixture(scope="module")
def taxi_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("taxi")
    proc = run_cli("run", str(REPO / "pipelines" / "taxi"), "--local", cwd=cwd, timeout=900)
    return cwd, proc


def _output(cwd: Path, task: str, name: str) -> Path:
    (run,) = (cwd / "build" / "local_outputs").glob("taxi-*")
    return run / task / name


def test_taxi_runs_locally_and_pushes_a_blessed_model(taxi_run):
    cwd, proc = taxi_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    versions = sorted((cwd / "serving" / "taxi").iterdir())
    assert len(versions) == 1
    assert (versions[0] / "saved_model.pb").is_file()
    assert (versions[0] / "PUSHED.json").is_file()
    report = json.loads((_output(cwd, "evaluator", "blessing") / "blessing.json").read_text())
    assert report["blessed"] is True
    assert report["metrics"]["auc"] > 0.85
    assert report["metrics"]["example_count"] > 3000


def test_evaluation_is_sliced_by_hour_and_payment_type(taxi_run):
    cwd, proc = taxi_run
    assert proc.returncode == 0
    import tensorflow_model_analysis as tfma

    slices = set()
    for metrics in tfma.load_metrics(str(_output(cwd, "evaluator", "evaluation"))):
        slices.update(k.column for k in metrics.slice_key.single_slice_keys)
    assert slices == {"trip_start_hour", "payment_type"}
    # the report and its chart name payment types (raw values: the model's features are `_xf`)
    report = json.loads((_output(cwd, "evaluator", "blessing") / "blessing.json").read_text())
    assert {"payment_type=Cash", "payment_type=Credit Card"} <= set(report["slices"])
    assert not report["slice_note"]
    chart = _output(cwd, "evaluator", "slice_chart").read_text()
    assert "payment_type=Cash" in chart and "<svg" in chart


def test_pushed_model_serves_raw_csv_rows_without_the_tips(taxi_run):
    cwd, proc = taxi_run
    assert proc.returncode == 0
    model = sorted((cwd / "serving" / "taxi").iterdir())[-1]
    with open(TAXI_CSV) as fh:
        header = next(csv.reader(fh))
    script = textwrap.dedent(
        f"""
        import csv, json
        import tensorflow as tf
        floats = {{"fare", "trip_miles", "pickup_latitude", "pickup_longitude",
                   "dropoff_latitude", "dropoff_longitude", "tips"}}
        strings = {{"payment_type", "company"}}
        def example(row):
            feats = {{}}
            for k, v in row.items():
                if v == "" or k == "tips":
                    continue
                if k in floats:
                    f = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
                elif k in strings:
                    f = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
                else:
                    f = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))
                feats[k] = f
            return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()
        rows = list(csv.DictReader(open({str(TAXI_CSV)!r})))[:2000]
        m = tf.saved_model.load({str(model)!r})
        p = m.signatures["serving_default"](examples=tf.constant([example(r) for r in rows]))
        p = p["probabilities"].numpy().ravel()
        truth = [float(r["tips"]) > 0.2 * float(r["fare"]) for r in rows]
        acc = sum((q > 0.5) == t for q, t in zip(p, truth)) / len(rows)
        print(json.dumps({{"n": len(rows), "in_range": bool(((p >= 0) & (p <= 1)).all()),
                          "accuracy": float(acc)}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "tips" in header and result["n"] == 2000 and result["in_range"]
    assert result["accuracy"] > 0.8  # missing lat/long, company, community areas included


def test_kfp_ui_gets_roc_and_confusion_matrix_for_the_binary_label(taxi_run):
    cwd, proc = taxi_run
    assert proc.returncode == 0
    (run,) = (cwd / "build" / "local_outputs").glob("taxi-*")
    executor = json.loads((run / "evaluator" / "executor_output.json").read_text())
    metadata = executor["artifacts"]["classification_metrics"]["artifacts"][0]["metadata"]
    roc = metadata["confidenceMetrics"]
    assert len(roc) > 10
    assert all(0 <= p["falsePositiveRate"] <= 1 and 0 <= p["recall"] <= 1 for p in roc)
    assert len(metadata["confusionMatrix"]["rows"]) == 2


def test_taxi_model_is_infra_validated_before_the_push(taxi_run, tmp_path):
    """The pipeline's infra_validate task on the real taxi model, then the same model refusing
    an example that lacks a feature its serving signature requires."""
    cwd, proc = taxi_run
    assert proc.returncode == 0
    from tfkfp.containers import infra_validate
    from tfkfp.containers.evaluation.infra_blessing import InfraValidation

    blessing = _output(cwd, "infra-validate", "blessing")
    assert (blessing / "INFRA_BLESSED").is_file()
    found = InfraValidation.read(str(blessing))
    by_name = {s["signature"]: s for s in found.signatures}
    assert set(by_name) == {"serving_default", "transform_features"}
    assert by_name["serving_default"]["outputs"] == {"probabilities": [1]}
    model = sorted((cwd / "serving" / "taxi").iterdir())[-1]
    card = json.loads((model / "model_card.json").read_text())
    assert card["infra_validation"]["blessed"] is True
    assert card["kfp"]["pipeline_name"] == "taxi"

    import tensorflow as tf

    examples = _output(cwd, "ingest", "examples")
    files = sorted(str(p) for p in (examples / "Split-eval").glob("*.gz"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, "GZIP").take(6)]
    broken = tf.train.Example.FromString(records[4])
    del broken.features.feature["trip_start_hour"]  # in every CSV row: required at serving
    records[4] = broken.SerializeToString()
    (tmp_path / "examples" / "Split-eval").mkdir(parents=True)
    path = str(tmp_path / "examples" / "Split-eval" / "data.gz")
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for record in records:
            writer.write(record)
    result = infra_validate.run(
        str(model), str(tmp_path / "examples"), str(tmp_path / "infra"), num_examples=6
    )
    assert result.blessed is False
    assert "signature serving_default refused example 4 " in result.reason
    assert "trip_start_hour" in result.reason and "\n" not in result.reason
    assert (tmp_path / "infra" / "INFRA_NOT_BLESSED").is_file()


@pytest.mark.pipeline
def test_a_renamed_column_stops_the_run_before_training(tmp_path):
    """Against the previous run's statistics the renamed column is gone; training is skipped."""
    from tfkfp.containers import ingest, statistics

    ingest.run(str(TAXI_CSV), str(tmp_path / "ex"), str(tmp_path / "schema"))
    statistics.run(str(tmp_path / "ex"), str(tmp_path / "previous"), str(tmp_path / "v.html"))
    with open(TAXI_CSV, newline="") as fh:
        rows = list(csv.reader(fh))
    rows[0] = ["fare_usd" if c == "fare" else c for c in rows[0]]
    renamed = tmp_path / "renamed.csv"
    with open(renamed, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    proc = run_cli(
        "run", str(REPO / "pipelines" / "taxi"), "--local",
        "--param", f"data_uri={renamed}",
        "--param", f"previous_statistics_uri={tmp_path / 'previous'}",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    # the run says loudly that validation stopped it: exit 2 and the anomalies in one line
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "tfkfp: error: validation stopped the run: 2 anomalies" in proc.stderr
    (run,) = (tmp_path / "build" / "local_outputs").glob("taxi-*")
    report = (run / "validate" / "report").read_text()
    assert "Not valid" in report
    assert "| train | `fare` | The feature is in the previous statistics" in report
    assert "`fare_usd`" in report
    assert not (run / "transform").exists() and not (run / "trainer").exists()
    assert not (tmp_path / "serving").exists()


def test_a_second_run_compares_with_the_first(taxi_run, tmp_path):
    """As TFX's taxi pipeline, the newest model pushed before is the evaluator's baseline."""
    cwd, first = taxi_run
    assert first.returncode == 0, first.stderr[-3000:]
    # A copy of the first run's destination: the other tests here read the first run's.
    destination = tmp_path / "serving" / "taxi"
    shutil.copytree(cwd / "serving" / "taxi", destination)
    (pushed,) = destination.iterdir()
    second = run_cli(
        "run", str(REPO / "pipelines" / "taxi"), "--local",
        "--param", f"push_destination={destination}", "--param", "train_steps=150",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    (run,) = (tmp_path / "build" / "local_outputs").glob("taxi-*")
    blessing = json.loads((run / "evaluator" / "blessing" / "blessing.json").read_text())
    assert blessing["baseline"] == str(pushed), blessing["baseline_note"]
    assert blessing["baseline_metrics"]["auc"] > 0.85
    change = [t for t in blessing["thresholds"] if t["kind"] == "change"]
    assert change and all(t["result"] in ("pass", "fail") for t in change), change
