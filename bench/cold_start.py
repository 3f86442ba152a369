"""Each stage's cold start in a fresh local interpreter: `python -m bench.cold_start`.

Cold start: from the process start to the stage's first log line (`tfkfp: <stage>: ...`), the
stage run as its container runs it (kfp.dsl imported first, as KFP's executor does), on the
penguin data, each stage on the outputs of the ones before. Also recorded: the whole run and
which heavy libraries the stage loaded. `python -m bench.images` measures the same in the CPU
image (a fresh container per stage); this one needs no Docker. Writes
bench/results/cold_start.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from bench import RESULTS, write_json
from bench.images import cold_start_target, stage_args

HEAVY = ("tensorflow", "apache_beam", "tensorflow_transform", "tensorflow_model_analysis")
CODE = (
    "import atexit, json, sys, importlib, kfp.dsl\n"
    "from tfkfp.containers.runtime import entrypoint\n"
    f"heavy = {HEAVY!r}\n"
    "atexit.register(lambda: print(json.dumps([m for m in heavy if m in sys.modules])))\n"
    "entrypoint(importlib.import_module('tfkfp.containers.' + sys.argv[1]).run,\n"
    "           **json.loads(sys.argv[2]))\n"
)


def run_stage(stage: str, kwargs: dict) -> dict:
    """Runs one stage in a fresh interpreter; times its first log line as it arrives."""
    # _KFP_RUNTIME as KFP's component command sets it: kfp's __init__ then skips its client.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "_KFP_RUNTIME": "true"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CODE, stage, json.dumps(kwargs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    first = None
    lines = []
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:
        lines.append(line)
        if first is None and f"tfkfp: {stage}:" in line:
            first = time.perf_counter() - started
    out = proc.stdout.read()
    code = proc.wait()
    total = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"{stage} failed (exit {code}):\n{''.join(lines)[-3000:]}")
    return {
        "stage": stage,
        "cold_start_s": None if first is None else round(first, 3),
        "target_s": cold_start_target(stage),
        "total_s": round(total, 2),
        "loaded": json.loads(out.strip().splitlines()[-1]) if out.strip() else [],
    }


def measure() -> list[dict]:
    """Every stage once, in pipeline order, in a scratch folder."""
    work = Path(tempfile.mkdtemp(prefix="tfkfp-bench-cold-"))
    try:
        data = work / "penguins.csv"
        shutil.copy(
            str(resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv"), data
        )
        return [run_stage(s, kwargs) for s, kwargs in stage_args(work, str(data)).items()]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(rows: list[dict]) -> str:
    out = [
        "| stage | cold start (local process) | target (in the image) | whole run | loaded |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        first = "n/a" if r["cold_start_s"] is None else f"{r['cold_start_s']:.2f} s"
        out.append(
            f"| {r['stage']} | {first} | ≤ {r['target_s']} s | {r['total_s']:.1f} s | "
            f"{', '.join(r['loaded']) or '-'} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    rows = measure()
    print(report(rows))
    write_json(RESULTS / "cold_start.json", {"where": "local process", "stages": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
