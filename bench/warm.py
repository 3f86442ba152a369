"""End to end (`tfkfp run --local`) against one warm process calling the same stage run()s.

The baseline is the least a local run can cost: one interpreter imports everything once, then
calls fingerprint, ingest, statistics, validate, transform, trainer, evaluator and pusher's
`run()` in sequence with the arguments the pipeline gives them. The local run adds kfp.local's
orchestration and one forked process per task (tfkfp.warm). Target: <= 1.5x. Pairs alternate
which side goes first; both are whole fresh processes.

    python -m bench.warm penguins taxi [--reps 2] [--cold]
"""

from __future__ import annotations

import argparse
import json
import statistics as stats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import REPO, RESULTS, alternating, write_json
from bench.e2e import pipeline_params, run_pipeline

TARGET = 1.5


def in_one_process(name: str, data_uri: str, destination: str, workdir: str) -> float:
    """The pipeline's stages called in sequence in this process; returns seconds from start."""
    started = time.perf_counter()
    import importlib
    import os
    import sys

    from tfkfp.containers import (
        evaluator,
        fingerprint,
        ingest,
        pusher,
        statistics,
        trainer,
        transform,
        validate,
    )
    from tfkfp.containers.runtime import setup_logging

    setup_logging()
    last = [started]

    def done(stage: str) -> None:  # per-stage seconds, on stderr for the benchmark's record
        now = time.perf_counter()
        print(f"bench.warm: {stage} {now - last[0]:.2f} s", file=sys.stderr, flush=True)
        last[0] = now

    done("imports")
    pipeline = importlib.import_module(f"tfkfp.pipelines.{name}.pipeline")
    func = getattr(pipeline, name).pipeline_func
    defaults = {
        k: v.default
        for k, v in __import__("inspect").signature(func).parameters.items()
        if v.default is not v.empty
    }
    out = {k: os.path.join(workdir, k) for k in ("examples", "schema", "stats", "graph", "tex")}
    fingerprint.run(data_uri)
    done("fingerprint")
    ingest.run(data_uri, out["examples"], out["schema"])
    done("ingest")
    statistics.run(out["examples"], out["stats"], os.path.join(workdir, "stats.html"))
    done("statistics")
    checked = validate.run(
        out["stats"],
        out["schema"],
        os.path.join(workdir, "anomalies"),
        os.path.join(workdir, "anomalies.md"),
    )
    assert checked.valid, checked
    done("validate")
    transform.run(out["examples"], out["schema"], defaults["module_file"], out["graph"], out["tex"])
    done("transform")
    model = os.path.join(workdir, "model")
    trainer.run(
        out["tex"],
        out["schema"],
        defaults["module_file"],
        model,
        os.path.join(workdir, "model_run"),
        os.path.join(workdir, "curves.html"),
        transform_graph=out["graph"],
        train_steps=defaults["train_steps"],
        eval_steps=defaults["eval_steps"],
        keras=defaults.get("keras", "tf_keras"),
    )
    done("trainer")
    result = evaluator.run(
        model,
        out["examples"],
        defaults["eval_config"],
        os.path.join(workdir, "evaluation"),
        os.path.join(workdir, "blessing"),
        os.path.join(workdir, "report.md"),
        os.path.join(workdir, "slices.html"),
        schema=out["schema"],
        # penguins compares with the newest push, taxi has no baseline
        baseline_from=destination if name == "penguins" else "",
    )
    assert result.blessed, result.reason
    done("evaluator")
    pusher.run(model, os.path.join(workdir, "blessing"), destination)
    done("pusher")
    return time.perf_counter() - started


def one_process(name: str, params: dict[str, str]) -> float:
    """Wall seconds of a fresh interpreter running `in_one_process` (imports included)."""
    code = (
        "import sys, tempfile; from bench.warm import in_one_process; "
        "w = tempfile.mkdtemp(prefix='tfkfp-warm-'); "
        f"in_one_process({name!r}, {params['data_uri']!r}, {params['push_destination']!r}, w)"
    )
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"one process, {name}, failed:\n{proc.stderr[-3000:]}")
    print(" ".join(ln[12:] for ln in proc.stderr.splitlines() if ln.startswith("bench.warm: ")))
    return elapsed


def local_run(name: str, params: dict[str, str], cold: bool = False) -> float:
    elapsed, _ = run_pipeline(name, params, ("--cold",) if cold else ())
    return elapsed


def main(names: list[str], reps: int = 2, cold: bool = False) -> list[dict]:
    results = []
    for name in names:
        times: dict[str, list[float]] = {"local": [], "one process": []}
        if cold:
            times["local, cold"] = []
        with tempfile.TemporaryDirectory(prefix="tfkfp-bench-warm-") as workdir:
            for _, side in alternating("local", "one process", reps):
                # A destination per side: each compares against its own previous push.
                params = pipeline_params(name, Path(workdir) / side.replace(" ", "_"))
                if side == "local":
                    times[side].append(local_run(name, params))
                else:
                    times[side].append(one_process(name, params))
                print(f"{name}: {side} {times[side][-1]:.1f} s", flush=True)
            if cold:
                for _ in range(reps):
                    params = pipeline_params(name, Path(workdir) / "cold")
                    times["local, cold"].append(local_run(name, params, cold=True))
                    print(f"{name}: local, cold {times['local, cold'][-1]:.1f} s", flush=True)
        local, baseline = stats.median(times["local"]), stats.median(times["one process"])
        row = {
            "pipeline": name,
            "seconds": {k: [round(t, 1) for t in v] for k, v in times.items()},
            "ratio_median": round(local / baseline, 3),
            "ratio_min": round(min(times["local"]) / min(times["one process"]), 3),
            "target": TARGET,
        }
        if cold:
            row["cold_over_warm_median"] = round(stats.median(times["local, cold"]) / local, 3)
        results.append(row)
        print(json.dumps(row))
    print("\n| pipeline | local (median s) | one process (median s) | ratio | target |")
    print("|---|---|---|---|---|")
    for r in results:
        s = r["seconds"]
        print(
            f"| {r['pipeline']} | {stats.median(s['local']):.1f} | "
            f"{stats.median(s['one process']):.1f} | {r['ratio_median']:.2f}x | "
            f"<= {TARGET}x |"
        )
    write_json(RESULTS / "warm.json", results)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=["penguins", "taxi"])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="also time kfp.local's own runner")
    args = parser.parse_args()
    main(args.names, args.reps, args.cold)
