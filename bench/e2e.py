"""End-to-end local pipeline time per stage, and the share spent starting, importing and exiting.

Runs `tfkfp run <pipeline> --local` (kfp.local SubprocessRunner, as `make demo` does) and reads
the run folder's `logs/tasks.jsonl` (when each task ran) and the stages' event records in the task
logs (containers/events.py: when a stage first and last reported). A stage's start is the time
from its task's start to its first report (the first task also waits for the warm worker's
imports, tfkfp.warm); for a stage that reports nothing, its import cost measured in a fresh
interpreter, minus a bare interpreter's start.

    python -m bench.e2e penguins taxi
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import RESULTS, write_json
from tfkfp.containers import events

REPO = Path(__file__).resolve().parent.parent


def stage_imports(task: str) -> str:
    """What a task imports before its work: its stage module and the libraries it declares."""
    import importlib

    stage = task.replace("-", "_")  # kfp's task names use dashes
    try:
        module = importlib.import_module(f"tfkfp.containers.{stage}")
    except ImportError:  # a task that runs no tfkfp stage
        return "pass"
    return "; ".join([f"import {module.__name__}"] + [f"import {lib}" for lib in module.LIBRARIES])


def parse_run(logs: Path) -> dict[str, dict[str, float]]:
    """Per task: start/end (the display's tasks.jsonl) and first/last stage event, Unix seconds."""
    marks: dict[str, dict[str, float]] = {}
    tasks = logs / "tasks.jsonl"
    for line in tasks.read_text().splitlines() if tasks.exists() else []:
        task = json.loads(line)
        marks[task["task"]] = {"start": task["started"], "end": task["started"] + task["seconds"]}
    for name, mark in marks.items():
        log = logs / f"{name}.log"
        times = [
            record["time"]
            for line in (log.read_text(errors="replace").splitlines() if log.exists() else [])
            if (record := events.parse(line)) is not None
        ]
        if times:
            mark["first"], mark["last"] = min(times), max(times)
    return marks


@functools.cache
def import_seconds(code: str, repeat: int = 2) -> float:
    """Best-of-`repeat` cold import time of `code` beyond a bare interpreter's start.

    Cached: every pipeline's tasks import the same things.
    """

    def best(snippet: str) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", snippet], check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        return min(times)

    return best(f"import kfp.dsl.executor_main; {code}") - best("pass")


def run_pipeline(
    name: str, params: dict[str, str], flags: tuple[str, ...] = ()
) -> tuple[float, dict[str, dict[str, float]]]:
    """Runs the pipeline through the CLI; returns wall seconds and each task's marks."""
    args = [sys.executable, "-m", "tfkfp.cli", "run", name, "--local", *flags]
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    with tempfile.TemporaryDirectory(prefix="tfkfp-bench-") as root:
        args += ["--pipeline-root", root]
        started = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        (logs,) = Path(root).glob("*/logs")
        return elapsed, parse_run(logs)


def measure(name: str, params: dict[str, str]) -> dict:
    """End-to-end and per-stage times of one pipeline run."""
    elapsed, marks = run_pipeline(name, params)
    stages = []
    # The tasks as they ran (a pipeline's own set: skipped branches are absent).
    for stage in sorted(marks, key=lambda task: marks[task].get("start", 0.0)):
        m = marks[stage]
        if "start" not in m or "end" not in m:
            continue
        total = m["end"] - m["start"]
        # Task start to the stage's first report, as measured; tasks forked from the warm worker
        # (tfkfp.warm) import nothing. A stage that reported nothing: its cold import estimate.
        if "first" in m:
            imports = max(0.0, m["first"] - m["start"])
        else:
            imports = max(0.0, import_seconds(stage_imports(stage)))
        exit_s = m["end"] - m.get("last", m["end"])
        stages.append(
            {
                "stage": stage,
                "seconds": round(total, 2),
                "start_and_imports": round(min(imports, total), 2),
                "exit": round(exit_s, 2),
                "work": round(max(0.0, total - imports - exit_s), 2),
            }
        )
    overhead = sum(s["start_and_imports"] + s["exit"] for s in stages)
    return {
        "pipeline": name,
        "seconds": round(elapsed, 2),
        "stages": stages,
        "start_import_exit_share": round(overhead / elapsed, 3),
    }


def pipeline_params(name: str, workdir: Path) -> dict[str, str]:
    """The arguments the benchmark gives each bundled pipeline."""
    from importlib import resources

    data = resources.files(f"tfkfp.pipelines.{name}") / "data"
    csv = next(p for p in data.iterdir() if p.name.endswith(".csv"))
    return {"data_uri": str(csv), "push_destination": str(workdir / "serving" / name)}


def main(names: list[str]) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix="tfkfp-bench-serving-") as workdir:
        for name in names:
            result = measure(name, pipeline_params(name, Path(workdir)))
            results.append(result)
            print(f"\n{name}: {result['seconds']:.1f} s end to end")
            print("| stage | s | start+imports | exit | work |\n|---|---|---|---|---|")
            for s in result["stages"]:
                print(
                    f"| {s['stage']} | {s['seconds']:.1f} | {s['start_and_imports']:.1f} "
                    f"| {s['exit']:.1f} | {s['work']:.1f} |"
                )
            print(
                f"share in process start, imports and exit: {result['start_import_exit_share']:.0%}"
            )
    write_json(RESULTS / "e2e.json", results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:] or ["penguins"])
