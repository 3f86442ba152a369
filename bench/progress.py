"""Cost of the local progress display: `tfkfp demo` with it and without, alternating.

"With" is what a user gets on a terminal (rich's live display, task output to log files);
"without" is the same run with kfp.local's own output (the display's hooks not installed).
Both run on a pseudo-terminal, each in a fresh folder, so both do the same work (a first
push). The trainer's per-epoch log lines are stage logging and run in both. Target: the ratio
of medians at most 1.02.
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

RUN = "import sys\nfrom tfkfp.cli import main\nsys.exit(main(['demo']))\n"
SIDES = {
    "with": RUN,
    "without": (
        "import contextlib\nfrom tfkfp import local\n"
        "local._shown = lambda display: contextlib.nullcontext()\n" + RUN
    ),
}


def demo_seconds(code: str) -> float:
    """Wall time of one demo in a fresh process and folder, its output on a pseudo-terminal."""
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
            env={**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"},
        )
        seconds = time.perf_counter() - started
    os.close(follower)
    reader.join(timeout=5)
    os.close(leader)
    if proc.returncode != 0:
        raise RuntimeError(f"demo failed (exit {proc.returncode})")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2, help="demos of each kind")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {"with": [], "without": []}
    for rep, side in alternating("with", "without", args.reps):
        times[side].append(round(demo_seconds(SIDES[side]), 2))
        print(f"progress bench: round {rep + 1}, {side} display: {times[side][-1]:.1f} s")
    ratio = statistics.median(times["with"]) / statistics.median(times["without"])
    result = {**{f"{k}_s": v for k, v in times.items()}, "reps": args.reps, "ratio": ratio}
    result["target"] = 1.02
    write_json(RESULTS / "progress.json", result)
    print(f"progress display: {ratio:.3f}x the demo's wall time without it (target <= 1.02)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
