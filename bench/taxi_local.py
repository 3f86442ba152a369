"""Benchmark: `tfkfp run taxi --local` end to end on the bundled 15,002 trips.

Prints the wall time of the whole run and of each task, the CPU time, and each as a ratio to a
baseline measured in the same run on the same machine: a cold `import tensorflow` in a fresh
process (the floor every TF task pays), so numbers from a busy shared machine stay comparable.

    .venv/bin/python bench/taxi_local.py
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_TASK = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (Executing task|Task) \W*'?(\w+)")


def _seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def baseline() -> float:
    """Wall seconds of a cold `import tensorflow` in a fresh process."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, capture_output=True)
    return time.monotonic() - started


def run_taxi(workdir: str) -> tuple[float, float, dict[str, float], str]:
    """Runs the pipeline; returns wall seconds, CPU seconds, per-task wall seconds, log."""
    cpu_before = _children_cpu()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tfkfp.cli", "run", str(REPO / "pipelines" / "taxi"), "--local"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"taxi run failed:\n{proc.stderr[-3000:]}")
    tasks, begun = {}, {}
    for line in re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr).splitlines():
        match = _TASK.match(line)
        if match and match.group(2) == "Executing task":
            begun[match.group(3)] = _seconds(match.group(1))
        elif match and match.group(3) in begun:
            tasks[match.group(3)] = _seconds(match.group(1)) - begun[match.group(3)]
    return wall, _children_cpu() - cpu_before, tasks, proc.stdout


def main() -> None:
    base = baseline()
    with tempfile.TemporaryDirectory(prefix="tfkfp-bench-") as workdir:
        wall, cpu, tasks, _ = run_taxi(workdir)
        pushed = list((Path(workdir) / "serving" / "taxi").iterdir())
    print(f"baseline: cold `import tensorflow`        {base:6.1f} s")
    print(
        f"taxi run --local (wall)                   {wall:6.1f} s  = {wall / base:5.1f} x baseline"
    )
    print(f"taxi run --local (CPU, all processes)     {cpu:6.1f} s  = {cpu / base:5.1f} x baseline")
    for task, seconds in tasks.items():
        print(
            f"  task {task:<12}                       {seconds:6.1f} s  = {seconds / base:5.1f} x baseline"
        )
    print(f"pushed versions: {len(pushed)}")


if __name__ == "__main__":
    main()
