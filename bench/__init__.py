"""Benchmarks: each prints ratios against a baseline measured in the same run (`make bench`)."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parent.parent


def write_json(path: Path, data) -> Path:
    """Writes a result file atomically (a killed benchmark leaves the previous result intact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def alternating(first: str, second: str, reps: int) -> Iterator[tuple[int, str]]:
    """(rep, side) for `reps` rounds of two sides, flipping which goes first every round.

    A load change on the shared machine then hits both sides alike.
    """
    for rep in range(reps):
        yield from ((rep, side) for side in ((first, second) if rep % 2 == 0 else (second, first)))


def timed_job(code: str, args: list, out: Path, expected: str) -> dict:
    """Runs `code` in a fresh Python (`sys.argv[1]`: args as JSON), checks it wrote `expected`.

    Returns:
        The JSON object the job printed last (its own timings); `out` is removed.
    """
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"job {args[0]} failed:\n{proc.stderr[-3000:]}")
    if not (out / expected).is_file():
        raise RuntimeError(f"job {args[0]} wrote no {expected} in {out}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])
