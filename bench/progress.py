"""Cost of the local progress display: `tfkfp demo` with it and without, alternating.

"With" is what a user gets on a terminal (rich's live display, task output to log files);
"without" is the same run with kfp.local's own output (the display's hooks not installed).
Both run on a pseudo-terminal, each in a fresh folder, so both do the same work (a first
push). The trainer's per-epoch log lines are stage logging and run in both. Target: the ratio
of medians at most 1.02.

On a loaded shared machine wall times of whole demos vary by more than 2% from run to run, so
the display's own cost is measured too: the CPU time of the `tfkfp` process (where the display
runs; the stages are its children) with it minus without it, as a share of the wall time.
"""

from __future__ import annotations

import argparse
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench import RESULTS, alternating, write_json

RUN = (
    "import atexit, os, sys, time\n"
    "atexit.register(lambda: open(os.environ['CPU_FILE'], 'w').write(str(time.process_time())))\n"
    "from tfkfp.cli import main\nsys.exit(main(['demo']))\n"
)
SIDES = {
    "with": RUN,
    "without": (
        "import contextlib\nfrom tfkfp import local\n"
        "local._shown = lambda display: contextlib.nullcontext()\n" + RUN
    ),
}


def demo_seconds(code: str) -> tuple[float, float]:
    """Wall time and the tfkfp process's own CPU time of one demo, output on a pseudo-terminal."""
    leader, follower = pty.openpty()

    def drain() -> None:
        while True:
            try:
                if not os.read(leader, 65536):
                    return
            except OSError:
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with tempfile.TemporaryDirectory(prefix="tfkfp-bench-progress-") as cwd:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            cwd=cwd,
            env={
                **os.environ,
                "COLUMNS": "120",
                "TERM": "xterm-256color",
                "CPU_FILE": os.path.join(cwd, "cpu"),
            },
        )
        seconds = time.perf_counter() - started
        cpu = float(open(os.path.join(cwd, "cpu")).read()) if proc.returncode == 0 else 0.0
    os.close(follower)
    reader.join(timeout=5)
    os.close(leader)
    if proc.returncode != 0:
        raise RuntimeError(f"demo failed (exit {proc.returncode})")
    return seconds, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2, help="demos of each kind")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {"with": [], "without": []}
    cpu: dict[str, list[float]] = {"with": [], "without": []}
    for rep, side in alternating("with", "without", args.reps):
        wall, own = demo_seconds(SIDES[side])
        times[side].append(round(wall, 2))
        cpu[side].append(round(own, 3))
        print(
            f"progress bench: round {rep + 1}, {side} display: {wall:.1f} s, "
            f"tfkfp process CPU {own:.2f} s",
            flush=True,
        )
    median = statistics.median
    ratio = median(times["with"]) / median(times["without"])
    share = (median(cpu["with"]) - median(cpu["without"])) / median(times["with"])
    result = {
        **{f"{k}_s": v for k, v in times.items()},
        **{f"{k}_cpu_s": v for k, v in cpu.items()},
        "reps": args.reps,
        "ratio": ratio,
        "display_cpu_share": share,
        "target": 1.02,
    }
    write_json(RESULTS / "progress.json", result)
    print(
        f"progress display: {ratio:.3f}x the demo's wall time without it; its own CPU "
        f"{share:.2%} of the wall time (target <= 2%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
