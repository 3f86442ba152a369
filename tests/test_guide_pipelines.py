"""The TF2 guide's examples as pipelines of ours, each run whole through kfp.local.

`iris`: the guide's "module file without Transform" (raw examples and the schema straight to
the trainer).
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
