"""Running the trainer stage in tests: in this process or as a fresh KFP-like task process."""

import json
import os
import subprocess
import sys
from dataclasses import asdict

from tests.helpers import REPO
from tfkfp.containers import trainer


def run_trainer(tmp_path, ingested, transformed, module, **kw):
    """The trainer's result as the metadata dict the component records."""
    return asdict(
        trainer.run(
            examples=transformed.examples,
            schema=ingested.schema,
            module_file=module,
            model=str(tmp_path / "model"),
            model_run=str(tmp_path / "model_run"),
            **{
                "curves": str(tmp_path / "curves.html"),
                "transform_graph": transformed.graph,
                "train_steps": 2,
                "eval_steps": 1,
                **kw,
            },
        )
    )


def trainer_process(out, ingested, transformed, env=None, timeout=600, **kw):
    """Runs the trainer's entrypoint in a fresh process (fresh TensorFlow runtime)."""
    args = {
        "examples": transformed.examples,
        "schema": ingested.schema,
        "model": str(out / "model"),
        "model_run": str(out / "model_run"),
        "curves": str(out / "curves.html"),
        "transform_graph": transformed.graph,
        "train_steps": 2,
        "eval_steps": 1,
        **kw,
    }
    code = (
        "import json\n"
        "from dataclasses import asdict\n"
        "from tfkfp.containers import trainer\n"
        "from tfkfp.containers.runtime import entrypoint\n"
        f"info = entrypoint(trainer.run, **{args!r})\n"
        "print('TRAINER_INFO ' + json.dumps(asdict(info)), flush=True)\n"
    )
    # The child decides its own Keras flavour (select_keras), as a KFP task does.
    base = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "TF_CONFIG")}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**base, "TF_CPP_MIN_LOG_LEVEL": "1", **(env or {})},
        cwd=REPO,
    )


def finish_trainer(proc, timeout=600) -> tuple[int, dict | None, str]:
    stdout, stderr = proc.communicate(timeout=timeout)
    info = None
    for line in stdout.splitlines():
        if line.startswith("TRAINER_INFO "):
            info = json.loads(line.split(" ", 1)[1])
    return proc.returncode, info, stderr
