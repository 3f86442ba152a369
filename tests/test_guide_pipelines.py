"""The TF2 guide's examples as pipelines of ours, each run whole through kfp.local.

`iris`: the guide's "module file without Transform" (raw examples and the schema straight to
the trainer). `mnist`: images as fixed-length float lists (scikit-learn's 8x8 digits), a CNN
with Reshape, TFLite conversion, the SavedModel and the TFLite model each evaluated against
thresholds (TFMA's tf_lite model type), both pushed.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli

pytestmark = pytest.mark.pipeline


def _run(tmp_path_factory, name: str) -> tuple[Path, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp(name)
    return cwd, run_cli("run", name, "--local", cwd=cwd, timeout=900)


def _output(cwd: Path, pipeline: str, task: str, name: str) -> Path:
    (run,) = (cwd / "build" / "local_outputs").glob(f"{pipeline}-*")
    return run / task / name


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    return _run(tmp_path_factory, "iris")


def test_iris_trains_on_raw_examples_and_pushes_a_blessed_model(iris_run):
    cwd, proc = iris_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "transform" not in proc.stdout  # no Transform task in this pipeline
    (version,) = (cwd / "serving" / "iris").iterdir()
    assert (version / "saved_model.pb").is_file()
    blessing = json.loads(
        (_output(cwd, "iris", "evaluator", "blessing") / "blessing.json").read_text()
    )
    assert blessing["blessed"] is True
    assert blessing["metrics"]["sparse_categorical_accuracy"] >= 0.8


def test_pushed_iris_model_serves_raw_examples_in_a_fresh_process(iris_run):
    cwd, _ = iris_run
    (version,) = (cwd / "serving" / "iris").iterdir()
    script = textwrap.dedent(
        f"""
        import tensorflow as tf
        model = tf.saved_model.load({str(version)!r})
        rows = [(5.1, 3.5, 1.4, 0.2), (6.7, 3.0, 5.2, 2.3)]  # a setosa, a virginica
        names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        examples = [
            tf.train.Example(features=tf.train.Features(feature={{
                n: tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
                for n, v in zip(names, row)
            }})).SerializeToString()
            for row in rows
        ]
        out = model.signatures["serving_default"](examples=tf.constant(examples))
        print(tf.argmax(out["probabilities"], axis=1).numpy().tolist())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[0, 2]"


# --- mnist: images as fixed-length lists, a CNN, TFLite evaluated and pushed beside it ---


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    return _run(tmp_path_factory, "mnist")


def test_mnist_evaluates_both_models_and_pushes_both(mnist_run):
    cwd, proc = mnist_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = next((cwd / "build" / "local_outputs").glob("mnist-*"))
    verdicts = {}
    for blessing in run.glob("evaluator*/blessing/blessing.json"):
        report = json.loads(blessing.read_text())
        kind = "tflite" if report["candidate"].endswith("tflite_model") else "saved_model"
        verdicts[kind] = report
    assert set(verdicts) == {"saved_model", "tflite"}
    for report in verdicts.values():
        assert report["blessed"] is True
        # 0.9 is the pipeline's threshold; a TFLite input TFMA left unfed (-1) scores ~0.1
        assert report["metrics"]["sparse_categorical_accuracy"] >= 0.9
        assert report["metrics"]["example_count"] > 300
    evaluator_logs = "".join(p.read_text() for p in (run / "logs").glob("evaluator*.log"))
    assert "model_types: {'tf_lite'}" in evaluator_logs
    (version,) = (cwd / "serving" / "mnist").iterdir()
    assert (version / "saved_model.pb").is_file() and (version / "model.tflite").is_file()


def test_pushed_tflite_model_reads_a_digit(mnist_run):
    cwd, _ = mnist_run
    (version,) = (cwd / "serving" / "mnist").iterdir()
    data = REPO / "pipelines" / "mnist" / "data" / "digits.parquet"
    script = textwrap.dedent(
        f"""
        import numpy as np, pyarrow.parquet as pq, tensorflow as tf
        table = pq.read_table({str(data)!r}).slice(0, 200)
        pixels = np.array(table["image_floats"].to_pylist(), dtype=np.float32)
        labels = np.array(table["image_class"].to_pylist())
        interpreter = tf.lite.Interpreter(model_path={str(version / "model.tflite")!r})
        runner = interpreter.get_signature_runner()
        got = [int(np.argmax(runner(image_floats=p[None])["probabilities"])) for p in pixels]
        print(float(np.mean(np.array(got) == labels)))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.strip().splitlines()[-1]) >= 0.9


def test_tflite_evaluation_refuses_a_preprocessing_function(mnist_run, tmp_path):
    from tfkfp.containers import evaluator
    from tfkfp.containers.runtime import InputError
    from tfkfp.pipelines.mnist.pipeline import TFLITE_EVAL_CONFIG

    cwd, _ = mnist_run
    run = next((cwd / "build" / "local_outputs").glob("mnist-*"))
    config = json.loads(json.dumps(TFLITE_EVAL_CONFIG))
    config["model_specs"][0]["preprocessing_function_names"] = ["transform_features"]
    with pytest.raises(InputError, match="cannot run in a TFLite model"):
        evaluator.run(
            model=str(run / "tflite" / "tflite_model"),
            examples=str(run / "ingest" / "examples"),
            eval_config=config,
            evaluation=str(tmp_path / "evaluation"),
            blessing=str(tmp_path / "blessing"),
            report=str(tmp_path / "report.md"),
            slice_chart=str(tmp_path / "chart.html"),
            schema=str(run / "ingest" / "schema"),
        )
    assert not (tmp_path / "evaluation").exists() and not (tmp_path / "blessing").exists()
