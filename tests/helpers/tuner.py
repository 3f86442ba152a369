"""Running the tuner stage in tests as a fresh KFP-like task process."""

import json
import os
import subprocess
import sys

from tests.helpers import REPO, TRAINER_MODULES

TUNED_MODULE = str(TRAINER_MODULES / "tfx_penguin" / "penguin_tuner.py")


def tuner_process(out, ingested, transformed, **kw):
    """Runs the tuner's entrypoint in a fresh process (its own TensorFlow and KerasTuner)."""
    args = {
        "examples": transformed.examples,
        "schema": ingested.schema,
        "module_file": TUNED_MODULE,
        "best_hyperparameters": str(out / "best_hyperparameters"),
        "trials": str(out / "trials.md"),
        "trials_chart": str(out / "trials.html"),
        "transform_graph": transformed.graph,
        "train_steps": 3,
        "eval_steps": 2,
        "custom_config": {"max_trials": 3},
        **kw,
    }
    code = (
        "import dataclasses, json\n"
        "from tfkfp.containers import tuner\n"
        "from tfkfp.containers.runtime import entrypoint\n"
        f"result = entrypoint(tuner.run, **{args!r})\n"
        "print('TUNER_RESULT ' + json.dumps(dataclasses.asdict(result)), flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "TF_CONFIG")}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
        cwd=REPO,
        timeout=900,
    )
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("TUNER_RESULT "):
            result = json.loads(line.split(" ", 1)[1])
    return proc.returncode, result, proc.stderr
