"""Stages start without libraries they do not need: bad input fails before TensorFlow loads.

Each stage runs as its container does (kfp.dsl first, then the stage through `entrypoint`) in a
fresh interpreter whose importer refuses and records any import of TensorFlow, so an import
that is caught and ignored still counts. The probe is checked against code that does import it.
"""

import json
import subprocess
import sys

import pytest

PROBE = """
import importlib.abc, json, sys
attempts = []
class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "tf_keras", "keras"):
            attempts.append(name)
            raise ImportError(f"probe: {name} must not be imported")
        return None
sys.meta_path.insert(0, NoTensorFlow())
code = None
try:
    exec(sys.argv[1])
except SystemExit as exit:
    code = exit.code
except ImportError as err:  # what a refused import does when nothing catches it
    code = f"ImportError: {err}"
print(json.dumps({"code": code, "attempts": attempts,
                  "loaded": sorted(m for m in sys.modules if m.partition(".")[0] == "tensorflow")}))
"""

STAGE = (
    "import json, kfp.dsl\n"
    "from tfkfp.containers import {stage} as stage\n"
    "from tfkfp.containers.runtime import entrypoint\n"
    "entrypoint(stage.run, **json.loads({kwargs!r}))\n"
)


def probe(code: str) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def bad_inputs(tmp) -> dict[str, tuple[dict, str]]:
    """Per stage: arguments with one bad input, and the input its error must name."""
    missing = str(tmp / "missing")
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    out = {k: str(tmp / "out" / k) for k in ("a", "b", "c", "d", "e", "f", "g")}
    return {
        "fingerprint": ({"data_uri": missing}, "data_uri"),
        "ingest": (
            {"data_uri": missing, "examples": out["a"], "schema": out["b"]},
            "data_uri",
        ),
        "statistics": (
            {"examples": str(empty), "statistics": out["a"], "view": out["b"]},
            "examples",
        ),
        "validate": (
            {
                "statistics": str(empty),
                "schema": str(empty),
                "anomalies": out["a"],
                "report": out["b"],
            },
            "schema",
        ),
        "pusher": (
            {"model": missing, "blessing": str(empty), "destination": out["a"]},
            "blessing",
        ),
        # Stages that need TensorFlow for their work still check their inputs before loading it.
        "transform": (
            {
                "examples": str(empty),
                "schema": str(empty),
                "module_file": "tfkfp.pipelines.penguins.module",
                "transform_graph": out["a"],
                "transformed_examples": out["b"],
            },
            "examples",
        ),
        "trainer": (
            {
                "examples": str(empty),
                "schema": str(empty),
                "module_file": "tfkfp.pipelines.penguins.module",
                "model": out["a"],
                "model_run": out["b"],
                "curves": out["c"],
            },
            "schema",  # checked first: both are empty folders
        ),
        "evaluator": (
            {
                "model": missing,
                "examples": str(empty),
                "eval_config": {"model_specs": [{"label_key": "species"}]},
                "evaluation": out["a"],
                "blessing": out["b"],
                "report": out["c"],
                "slice_chart": out["d"],
            },
            "candidate model",
        ),
    }


def test_probe_sees_a_tensorflow_import():
    result, _ = probe("import tensorflow")

    assert result["attempts"] == ["tensorflow"]
    assert result["code"] == "ImportError: probe: tensorflow must not be imported"
    assert result["loaded"] == []


STAGES = ["fingerprint", "ingest", "statistics", "validate", "pusher"]
STAGES += ["transform", "trainer", "evaluator"]


@pytest.mark.parametrize("stage", STAGES)
def test_bad_input_fails_before_tensorflow_is_imported(stage, tmp_path):
    kwargs, named = bad_inputs(tmp_path)[stage]

    result, stderr = probe(STAGE.format(stage=stage, kwargs=json.dumps(kwargs)))

    # The bad input was reached and reported (not some other failure that came first) ...
    assert result["code"] == 2, stderr[-2000:]
    assert f"error: {named}" in stderr
    # ... and nothing tried to load TensorFlow or Keras on the way.
    assert result["attempts"] == []
    assert result["loaded"] == []
    # Nothing half-written where the outputs were to go.
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
