"""Transform and evaluator at 15k, 150k and 1.5M taxi-like rows: overhead, linearity, Beam workers.

For each size both sides run in a fresh process: the tfkfp stage (what its component body runs)
and the library called directly (bench.direct). Printed per size: rows/s, the overhead ratio
(target <= 1.10) and the marginal cost per row between successive sizes, whose spread shows linear
scaling (target within 20%). Runs shorter than a minute are measured twice, alternating which
side goes first, and the best of each side counts. At the largest size, Beam's DirectRunner with
two processes is compared with one. The examples manifest check each stage makes before reading
(sizes and CRC32C, containers/store/examples.py) is timed at every size as a share of the stage.

    python -m bench.scale [--sizes 15000,150000,1500000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench import RESULTS, alternating, synth, write_json

TAXI_MODULE = "tfkfp.pipelines.taxi.module"
# The library called directly runs one process: so does the stage it is compared with. The
# stage's default (no args) is a worker per CPU of the pod (containers/store/pod_limits.py).
ONE_WORKER = ["--direct_num_workers=1"]
ALL_CORES: list[str] = []


def _timed(code: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - started


def _stage(stage: str, **kwargs) -> str:
    return (
        f"from tfkfp.containers import {stage}; from tfkfp.containers.runtime import entrypoint;"
        f"entrypoint({stage}.run, **{kwargs!r})"
    )


def _direct(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench.direct", *args], check=True, capture_output=True)
    return time.perf_counter() - started


def prepare(rows: int, work: Path) -> dict:
    """Synthetic CSV of `rows` rows, ingested into raw examples and a schema."""
    from tfkfp.containers import ingest

    csv = synth.generate(rows, work / f"taxi_{rows}.csv")
    out = work / f"ingest_{rows}"
    if not (out / "examples").exists():
        ingest.run(str(csv), str(out / "examples"), str(out / "schema"))
    return {"examples": str(out / "examples"), "schema": str(out / "schema")}


def transform_stage(data: dict, work: Path, beam_args: list[str]) -> float:
    """Seconds of the tfkfp transform stage on `data`."""
    out = Path(tempfile.mkdtemp(dir=work))
    try:
        return _timed(
            _stage(
                "transform",
                examples=data["examples"],
                schema=data["schema"],
                module_file=TAXI_MODULE,
                transform_graph=str(out / "graph"),
                transformed_examples=str(out / "examples"),
                beam_pipeline_args=beam_args,
            )
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)


def transform_direct(data: dict, work: Path) -> float:
    """Seconds of the same tf.Transform call made directly."""
    out = Path(tempfile.mkdtemp(dir=work))
    try:
        return _direct("transform", data["examples"], data["schema"], TAXI_MODULE, str(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def train_model(data: dict, work: Path) -> str:
    """A taxi model to evaluate (trained once, on the smallest size)."""
    out = work / "model"
    if (out / "saved_model.pb").exists():
        return str(out)
    graph, examples = work / "train_graph", work / "train_examples"
    _timed(
        _stage(
            "transform",
            examples=data["examples"],
            schema=data["schema"],
            module_file=TAXI_MODULE,
            transform_graph=str(graph),
            transformed_examples=str(examples),
        )
    )
    _timed(
        _stage(
            "trainer",
            examples=str(examples),
            schema=data["schema"],
            module_file=TAXI_MODULE,
            model=str(out),
            model_run=str(work / "model_run"),
            curves=str(work / "curves.html"),
            transform_graph=str(graph),
            train_steps=200,
            eval_steps=10,
        )
    )
    return str(out)


def evaluator_stage(model: str, data: dict, work: Path) -> float:
    """Seconds of the tfkfp evaluator stage on the eval split of `data`."""
    from tfkfp.pipelines.taxi.pipeline import EVAL_CONFIG

    out = Path(tempfile.mkdtemp(dir=work))
    try:
        return _timed(
            _stage(
                "evaluator",
                model=model,
                examples=data["examples"],
                eval_config=EVAL_CONFIG,
                evaluation=str(out / "evaluation"),
                blessing=str(out / "blessing"),
                report=str(out / "report.md"),
                slice_chart=str(out / "slices.html"),
                schema=data["schema"],
                beam_pipeline_args=ONE_WORKER,
            )
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)


def evaluator_direct(model: str, data: dict, work: Path) -> float:
    """Seconds of the same TFMA run made directly."""
    from tfkfp.pipelines.taxi.pipeline import EVAL_CONFIG

    out = Path(tempfile.mkdtemp(dir=work))
    try:
        return _direct("evaluate", model, data["examples"], json.dumps(EVAL_CONFIG), str(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def verify_seconds(examples: str, splits: list[str], reps: int = 3) -> float:
    """Best-of-`reps` seconds of the manifest check a stage makes before reading `splits`.

    Measured in this process on files just written or read (page cache warm, as in the stage,
    which reads them right after): sizes plus one CRC32C pass over the compressed bytes.
    """
    from tfkfp.containers.store import examples as manifest

    times = []
    for _ in range(reps):
        started = time.perf_counter()
        if not manifest.verify(examples, splits):
            raise RuntimeError(f"benchmark data {examples} has no {manifest.MANIFEST}")
        times.append(time.perf_counter() - started)
    return min(times)


def best_pair(
    stage: Callable[[], float], direct: Callable[[], float], reps: int
) -> tuple[float, float]:
    """Best-of-`reps` seconds of each side, alternating which runs first."""
    runs = {"stage": stage, "direct": direct}
    times: dict[str, list[float]] = {"stage": [], "direct": []}
    for _, side in alternating("stage", "direct", reps):
        times[side].append(runs[side]())
    return min(times["stage"]), min(times["direct"])


def repetitions(rows: int) -> int:
    """Short runs are repeated: a shared machine's noise is a large part of a 15-second run."""
    return 2 if rows < 1_000_000 else 1


def _linearity(rows: list[int], seconds: list[float]) -> dict:
    """Marginal cost per row between successive sizes; equal costs mean linear scaling.

    The fixed cost (start-up, imports, graph building) cancels out of each difference.
    """
    points = list(zip(rows, seconds, strict=True))
    per_row = [(t2 - t1) / (n2 - n1) * 1e6 for (n1, t1), (n2, t2) in itertools.pairwise(points)]
    fixed = seconds[0] - rows[0] * per_row[0] / 1e6 if per_row else 0.0
    spread = max(per_row) / min(per_row) if per_row and min(per_row) > 0 else float("nan")
    return {
        "marginal_us_per_row": [round(x, 2) for x in per_row],
        "spread": round(spread, 3),
        "fixed_s": round(fixed, 2),
    }


def main(sizes: list[int]) -> dict:
    work = Path(tempfile.mkdtemp(prefix="tfkfp-bench-scale-"))
    try:
        results: dict = {"sizes": sizes, "transform": [], "evaluator": []}
        model = train_model(prepare(min(sizes), work), work)
        for rows in sizes:
            data = prepare(rows, work)
            reps = repetitions(rows)
            t_stage, t_direct = best_pair(
                partial(transform_stage, data, work, ONE_WORKER),
                partial(transform_direct, data, work),
                reps,
            )
            e_stage, e_direct = best_pair(
                partial(evaluator_stage, model, data, work),
                partial(evaluator_direct, model, data, work),
                reps,
            )
            verify = {
                "transform": verify_seconds(data["examples"], ["train", "eval"]),
                "evaluator": verify_seconds(data["examples"], ["eval"]),
            }
            for name, stage, direct in (
                ("transform", t_stage, t_direct),
                ("evaluator", e_stage, e_direct),
            ):
                entry = {
                    "verify_s": round(verify[name], 4),
                    "verify_share": round(verify[name] / stage, 6),
                    "rows": rows,
                    "best_of": reps,
                    "stage_s": round(stage, 2),
                    "direct_s": round(direct, 2),
                    "overhead": round(stage / direct, 3),
                    "rows_per_s": round(rows / stage),
                }
                results[name].append(entry)
                print(
                    f"{name:9s} {rows:>9,} rows: tfkfp {stage:6.1f} s, direct {direct:6.1f} s, "
                    f"overhead {stage / direct:.3f}x (target <= 1.10), {rows / stage:,.0f} rows/s, "
                    f"manifest check {verify[name]:.3f} s = {verify[name] / stage:.3%} "
                    "(target <= 3%)"
                )
        for name in ("transform", "evaluator"):
            entries = results[name]
            lin = _linearity([e["rows"] for e in entries], [e["stage_s"] for e in entries])
            results[f"{name}_linearity"] = lin
            print(
                f"{name}: marginal cost per row between sizes {lin['marginal_us_per_row']} us, "
                f"spread {lin['spread']:.2f}x (target <= 1.20), fixed cost {lin['fixed_s']:.1f} s"
            )
        # One worker: the largest size's run is the baseline; the default is a worker per CPU.
        one = results["transform"][-1]["stage_s"]
        two = transform_stage(prepare(max(sizes), work), work, ALL_CORES)
        results["beam_multi_process"] = {
            "rows": max(sizes),
            "one_worker_s": round(one, 2),
            "two_processes_s": round(two, 2),
            "speedup": round(one / two, 3),
        }
        print(f"transform {max(sizes):,} rows, all cores vs 1 worker: {one / two:.2f}x speed-up")
        write_json(RESULTS / "scale.json", results)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="15000,150000,1500000")
    args = parser.parse_args()
    main([int(s) for s in args.sizes.split(",")])
