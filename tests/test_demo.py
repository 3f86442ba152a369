"""The README's `make demo` path: the whole penguin pipeline through kfp.local, twice."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import run_cli


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("demo")
    first = run_cli("demo", cwd=cwd)
    second = run_cli("demo", cwd=cwd)
    return cwd, first, second


@pytest.mark.pipeline
def test_demo_pushes_a_blessed_model_and_compiles_yaml(demo_runs):
    cwd, first, _ = demo_runs
    assert first.returncode == 0, first.stderr[-3000:]
    assert "blessed:       True" in first.stdout
    assert "data:          Valid: no anomalies in train, eval." in first.stdout
    assert "baseline:      none (no complete version" in first.stdout  # nothing pushed yet
    assert "eval report:   " in first.stdout
    assert "sparse_categorical_accuracy" in first.stdout
    versions = sorted((cwd / "serving" / "penguins").iterdir())
    assert versions and (versions[-1] / "saved_model.pb").is_file()
    assert f"pushed model:  {versions[0]}" in first.stdout
    assert (cwd / "build" / "penguins.yaml").is_file()


@pytest.mark.pipeline
def test_demo_output_fits_a_screen(demo_runs):
    """One line per stage start and end, then the summary; TensorFlow's chatter is in logs/."""
    cwd, first, _ = demo_runs
    lines = first.stdout.splitlines()
    assert len(lines) <= 40, first.stdout
    for stage in ("ingest", "transform", "trainer", "evaluator", "pusher"):
        assert any(line.split()[:2] == [stage, "ok"] for line in lines), first.stdout
    everything = first.stdout + first.stderr
    assert "cuInit" not in everything and "executor_input" not in everything
    assert "trainer      ok" in first.stdout and "loss" in first.stdout.split("trainer      ok")[1]
    logs = Path(first.stdout.split("task logs: ")[1].split()[0])
    assert (logs / "trainer.log").is_file() and (logs / "evaluator.log").is_file()
    assert "pictures:      build/trainer_curves.html" in first.stdout
    assert "<svg" in (cwd / "build" / "trainer_curves.html").read_text()


@pytest.mark.pipeline
def test_second_demo_succeeds(demo_runs):
    cwd, _, second = demo_runs
    assert second.returncode == 0, second.stderr[-3000:]
    assert (
        "pushed model:  " in second.stdout and "none" not in second.stdout.split("pushed model:")[1]
    )
    # the second run's baseline is the version the first run pushed
    assert f"baseline:      {cwd / 'serving' / 'penguins'}/" in second.stdout


@pytest.mark.pipeline
def test_pushed_model_serves_raw_examples_in_a_fresh_process(demo_runs, penguins_csv):
    cwd, _, _ = demo_runs
    model = sorted((cwd / "serving" / "penguins").iterdir())[-1]
    script = textwrap.dedent(
        f"""
        import csv, json
        import tensorflow as tf
        def example(row, with_label):
            feats = {{}}
            for k, v in row.items():
                if v == "NA" or (k == "species" and not with_label):
                    continue
                if k in ("bill_length_mm", "bill_depth_mm"):
                    f = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
                elif k in ("flipper_length_mm", "body_mass_g", "year"):
                    f = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))
                else:
                    f = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
                feats[k] = f
            return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()
        rows = list(csv.DictReader(open({str(penguins_csv)!r})))
        m = tf.saved_model.load({str(model)!r})
        probs = m.signatures["serving_default"](examples=tf.constant([example(r, False) for r in rows]))
        probs = probs["probabilities"].numpy()
        labels = m.signatures["transform_features"](
            examples=tf.constant([example(r, True) for r in rows]))["species"].numpy().ravel()
        print(json.dumps({{"n": len(rows), "sum_ok": bool(abs(probs.sum(1) - 1).max() < 1e-4),
                          "accuracy": float((probs.argmax(1) == labels).mean())}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["n"] == 344 and result["sum_ok"]
    assert result["accuracy"] > 0.9  # species from raw measurements, missing values included


@pytest.mark.slow  # a local pipeline run
def test_bad_data_path_fails_the_run_with_one_line(tmp_path):
    proc = run_cli(
        "run",
        "penguins",
        "--local",
        "--param",
        f"data_uri={tmp_path / 'nope.csv'}",
        "--param",
        f"push_destination={tmp_path / 'serving'}",
        "--pipeline-root",
        str(tmp_path / "root"),
    )
    assert proc.returncode == 2  # the task's own one-line error ends the run (bad input)
    assert proc.stderr.strip().splitlines()[-1] == (
        f"tfkfp: error: fingerprint: data_uri: no such file or folder {tmp_path / 'nope.csv'}"
    ), proc.stderr
    output = proc.stdout + proc.stderr  # kfp.local streams task logs to stdout
    # The fingerprint step, the run's first task, says it; nothing after it runs.
    assert output.count(f"error: data_uri: no such file or folder {tmp_path / 'nope.csv'}") == 1
    assert not (tmp_path / "serving").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope", "--local"], "pipeline: 'nope' is neither"),
        (["run", "penguins", "--local", "--param", "colour=red"], "has no parameter 'colour'"),
        (["run", "penguins", "--local", "--param", "train_steps=many"], "expected int, got 'many'"),
        (["compile", "missing/pipeline.py", "-o", "x.yaml"], "no such file"),
    ],
)
@pytest.mark.slow_variants  # each case is a CLI process
def test_cli_bad_usage_is_one_line_exit_2(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_compile_cli(tmp_path):
    proc = run_cli("compile", "pipelines/penguins", "-o", str(tmp_path / "p.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_file()


@pytest.mark.pipeline
def test_model_card_records_what_made_the_version(demo_runs, penguins_csv):
    """Every fact reaches the card through KFP: artifact metadata and KFP's placeholders."""
    import hashlib
    import importlib.util

    from tfkfp.containers import fingerprint
    from tfkfp.containers.push import model_card

    cwd, _, _ = demo_runs
    version = sorted((cwd / "serving" / "penguins").iterdir())[0]  # the first run's push
    card = model_card.read(str(version))
    assert card is not None and (version / "model_card.md").is_file()
    first_run = sorted((cwd / "build" / "local_outputs").glob("penguins-*"))[0]
    assert card.kfp["pipeline_name"] == "penguins"
    assert card.kfp["run_name"] == first_run.name  # kfp.local's pipeline job name
    assert card.kfp["run_id"].isdigit()  # kfp.local's job id (a random number)
    assert card.data["fingerprint"] == fingerprint.run(str(penguins_csv)).fingerprint
    manifest = json.loads((first_run / "ingest" / "examples" / "tfkfp_manifest.json").read_text())
    assert card.data["rows"] == {s: v["records"] for s, v in manifest["splits"].items()}
    assert set(card.data["rows"]) == {"train", "eval"}
    source = importlib.util.find_spec("tfkfp.pipelines.penguins.module").origin
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    assert card.module_file == {
        "ref": "tfkfp.pipelines.penguins.module",
        "sha256": f"sha256:{digest}",
    }
    assert card.hyperparameters == {}  # the demo passes none
    assert card.evaluation["blessed"] is True
    assert card.infra_validation["blessed"] is True  # the pipeline's second gate ran
    text = (version / "model_card.md").read_text()
    assert f"sha256:{digest}" in text and card.data["fingerprint"] in text
    assert "null" not in json.dumps([card.kfp, card.data, card.module_file])


@pytest.mark.pipeline
def test_push_tflite_pushes_model_tflite_beside_the_saved_model(tmp_path):
    proc = run_cli("run", "penguins", "--local", "--param", "push_tflite=true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (version,) = (tmp_path / "serving" / "penguins").iterdir()
    assert (version / "saved_model.pb").is_file() and (version / "model.tflite").stat().st_size
    assert json.loads((version / "model_card.json").read_text())["infra_validation"]["blessed"]
