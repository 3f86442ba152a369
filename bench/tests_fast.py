"""`make test-fast`: the fast tier of pytest, its wall time and test count kept in tests.json.

Usage: python -m bench.tests_fast [pytest args...]. Runs `pytest -m "not slow and not pipeline"`
with the given arguments; when every test passed, records the wall time, the number of tests,
the machine's cores and load (the machine is shared, so a time means little without them) and
the commit into bench/results/tests.json, and regenerates bench/results/tests.md, the table the
docs embed. A failed run records nothing: its time would not be the tier's.
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bench import REPO, RESULTS, write_json

MARKERS = "not slow and not pipeline"
TESTS_JSON = RESULTS / "tests.json"
TESTS_MD = RESULTS / "tests.md"
# pytest-xdist workers: one per core, at most four (more only add start-up and memory)
WORKERS = min(os.cpu_count() or 1, 4)


def _counts(junit: Path) -> dict[str, int]:
    """Tests, failures, errors and skips from pytest's JUnit XML (xdist merges its workers')."""
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    keys = ("tests", "failures", "errors", "skipped")
    return {k: sum(int(s.get(k, 0)) for s in suites) for k in keys}


def _commit() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 60:.1f} min"


def render(data: dict) -> str:
    """The docs' table (bench/results/tests.md) from tests.json."""
    fast = data.get("make_test_fast", {})
    how = [fast.get("when", "")]
    if fast.get("workers"):
        how.append(f"{fast['workers']} workers on {fast.get('cores')} cores")
    if fast.get("load_before") is not None:
        how.append(
            f"load average {fast['load_before']} at the start, {fast['load_after']} at the end"
        )
    if fast.get("commit"):
        how.append(f"commit {fast['commit']}")
    full_tests = data.get("parallel_pass_tests", 0) + data.get("serial_pass_tests", 0)
    rows = [
        "| tier | wall time | tests | target | measured |",
        "| --- | --- | --- | --- | --- |",
        f"| `make test-fast` | {_minutes(fast.get('wall_s'))} | {fast.get('tests', '')} | "
        f"{_minutes(data.get('make_test_fast_target_s'))} | {'; '.join(filter(None, how))} |",
        f"| `make test` | {_minutes(data.get('make_test_total_s'))} | {full_tests or ''} | "
        f"{_minutes(data.get('target_s'))} | {data.get('measured', '')} |",
    ]
    return "\n".join(rows) + "\n"


def record(wall_s: float, counts: dict[str, int], load_before: float, commit: str) -> None:
    data = json.loads(TESTS_JSON.read_text()) if TESTS_JSON.is_file() else {}
    # the flat keys of the hand-recorded runs before this script, superseded by the object
    for old in ("make_test_fast_s", "make_test_fast_tests"):
        data.pop(old, None)
    data["make_test_fast"] = {
        "wall_s": round(wall_s, 1),
        "tests": counts["tests"],
        "skipped": counts["skipped"],
        "workers": WORKERS,
        "cores": os.cpu_count(),
        "load_before": round(load_before, 1),
        "load_after": round(os.getloadavg()[0], 1),
        "commit": commit,
        "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "make test-fast (bench/tests_fast.py)",
    }
    data.setdefault("make_test_fast_target_s", 180)
    write_json(TESTS_JSON, data)
    TESTS_MD.write_text(render(data))


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="tfkfp-test-fast-") as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-m", MARKERS, "-n", str(WORKERS)]
        cmd += [f"--junitxml={junit}", *argv]
        load_before, commit = os.getloadavg()[0], _commit()
        started = time.perf_counter()
        code = subprocess.call(cmd, cwd=REPO)
        wall_s = time.perf_counter() - started
        if code != 0 or not junit.is_file():
            print(f"test-fast: pytest exited {code}; {TESTS_JSON.name} left as it was")
            return code or 1
        counts = _counts(junit)
    record(wall_s, counts, load_before, commit)
    print(
        f"test-fast: {counts['tests']} tests in {wall_s:.0f} s "
        f"(load average {load_before:.1f} at the start); recorded in bench/results/{TESTS_JSON.name}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
