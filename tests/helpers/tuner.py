"""Running the tuner stage in tests as a fresh KFP-like task process."""

import json
import os
import subprocess
import sys

from tests.helpers import REPO, TRAINER_MODULES

TUNED_MODULE = str(TRAINER_MODULES / "tfx_penguin" / "penguin_tuner.py")


def tuner_popen(out, ingested, transformed, env=None, **kw) -> subprocess.Popen:
    """Starts the tuner's entrypoint in a fresh process (its own TensorFlow and KerasTuner)."""
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
        "if result is not None:\n"
        "    print('TUNER_RESULT ' + json.dumps(dataclasses.asdict(result)), flush=True)\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "TF_CONFIG")}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**base, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        cwd=REPO,
    )


def finish_tuner(proc, timeout=900) -> tuple[int, dict | None, str]:
    """Waits for a tuner process: its exit code, result (None if it printed none), stderr."""
    stdout, stderr = proc.communicate(timeout=timeout)
    result = None
    for line in stdout.splitlines():
        if line.startswith("TUNER_RESULT "):
            result = json.loads(line.split(" ", 1)[1])
    return proc.returncode, result, stderr


def tuner_process(out, ingested, transformed, **kw):
    """Runs the tuner's entrypoint in a fresh process; (exit code, result, stderr)."""
    return finish_tuner(tuner_popen(out, ingested, transformed, **kw))
