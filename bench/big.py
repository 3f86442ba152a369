"""Every data stage at scale on one pod: wall, cores used, peak RSS of the process tree, rows/s.

ingest, statistics, transform, evaluator and infer on synthetic taxi rows (bench.synth), each in
a fresh process as its component body runs it, twice: pinned to one CPU (`sched_setaffinity`
before the stage starts, which containers/store/pod_limits.py reads as the pod's CPUs, so Beam stages
run one worker: a one-core pod) and with every CPU of the machine (the stages' default).

Per run: wall seconds, cores used (CPU seconds / wall), peak RSS of the stage's process tree
(VmRSS summed over the process and its descendants, sampled every 0.2 s from /proc: Beam's
worker processes count) and rows/s. Data are generated under a temporary folder and removed;
15M rows (`--sizes 15000000`) take about 2 GB of CSV and are for a quiet machine.

    python -m bench.big [--sizes 150000,1500000] [--stages ingest,statistics,...]
    python -m bench.big --transform-apply [--sizes 1500000]

`--transform-apply` compares transform's apply phase outside Beam (this checkout) with the stage
before it (`containers/transform.py` as a git revision has it, `--before main`: its whole
pipeline on Beam, over this checkout's other modules), each on 1 core and on every core, in one
run (bench/results/transform_apply.json): ratios, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import RESULTS, scale, synth, write_json

STAGES = ("ingest", "statistics", "transform", "evaluator", "infer")
SAMPLE_EVERY = 0.2


def _children() -> dict[int, list[int]]:
    """{parent pid: child pids} of every process /proc shows."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                # the command name may hold spaces and parentheses: fields follow the last ')'
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _tree(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(tree.get(p, []))
    return found


def _rss_and_cpu(pid: int) -> tuple[int, float]:
    """(VmRSS bytes, CPU seconds so far) of one process; zeros when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            rss = next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:")), 0)
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return rss, (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    except (OSError, IndexError, ValueError):
        return 0, 0.0


def measure(code: str, rows: int, one_cpu: bool, log: Path) -> dict:
    """Runs `code` in a fresh Python and measures its process tree.

    Args:
        code: The Python source to run (a stage call).
        rows: Rows the stage handles (for rows/s).
        one_cpu: Pin the process (and so its children) to one CPU.
        log: Where the process's stderr goes (kept for a failure's message).
    """
    cpus = {min(os.sched_getaffinity(0))}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if one_cpu else None,
        )
        started = time.perf_counter()
        peak, seen_cpu = 0, {}
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            rss = 0
            for p in _tree(proc.pid):
                p_rss, p_cpu = _rss_and_cpu(p)
                rss += p_rss
                seen_cpu[p] = max(seen_cpu.get(p, 0.0), p_cpu)
            peak = max(peak, rss)
            time.sleep(SAMPLE_EVERY)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark stage failed:\n{log.read_text()[-4000:]}")
    # wait4 counts the stage and the children it reaped; sampling also sees those it did not.
    cpu = max(usage.ru_utime + usage.ru_stime, sum(seen_cpu.values()))
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cores_used": round(cpu / wall, 2),
        "peak_rss_gb": round(peak / 1e9, 3),
        "rows_per_s": round(rows / wall),
    }


def _calls(rows: int, work: Path, model: str) -> dict[str, Callable[[Path], str]]:
    """{stage: function(out folder) -> code} on `rows` rows; ingest's output feeds the rest."""
    from tfkfp.pipelines.taxi.pipeline import EVAL_CONFIG

    csv = synth.generate(rows, work / f"taxi_{rows}.csv")
    examples, schema = work / f"examples_{rows}", work / f"schema_{rows}"
    return {
        "ingest": lambda out: scale._stage(
            "ingest", data_uri=str(csv), examples=str(out / "examples"), schema=str(out / "schema")
        ),
        "statistics": lambda out: scale._stage(
            "statistics",
            examples=str(examples),
            statistics=str(out / "statistics"),
            view=str(out / "view.html"),
        ),
        "transform": lambda out: scale._stage(
            "transform",
            examples=str(examples),
            schema=str(schema),
            module_file=scale.TAXI_MODULE,
            transform_graph=str(out / "graph"),
            transformed_examples=str(out / "examples"),
        ),
        "evaluator": lambda out: scale._stage(
            "evaluator",
            model=model,
            examples=str(examples),
            eval_config=EVAL_CONFIG,
            evaluation=str(out / "evaluation"),
            blessing=str(out / "blessing"),
            report=str(out / "report.md"),
            slice_chart=str(out / "slices.html"),
            schema=str(schema),
        ),
        "infer": lambda out: scale._stage(
            "infer",
            inference_result=str(out / "result"),
            predictions=str(out / "predictions"),
            model=model,
            examples=str(examples),
        ),
    }


def main(sizes: list[int], stages: list[str] | None = None) -> dict:
    stages = list(stages or STAGES)
    work = Path(tempfile.mkdtemp(prefix="tfkfp-bench-big-"))
    results: dict = {"sizes": sizes, "cpus": len(os.sched_getaffinity(0)), "runs": []}
    try:
        model = ""
        if {"evaluator", "infer"} & set(stages):
            model = scale.train_model(scale.prepare(min(min(sizes), 15_000), work), work)
        for rows in sizes:
            calls = _calls(rows, work, model)
            from tfkfp.containers import ingest

            ingest.run(
                str(work / f"taxi_{rows}.csv"),
                str(work / f"examples_{rows}"),
                str(work / f"schema_{rows}"),
            )
            for stage in stages:
                for one_cpu in (True, False):
                    out = work / f"out_{stage}_{rows}_{int(one_cpu)}"
                    out.mkdir()
                    entry = {"stage": stage, "rows": rows, "cores": 1 if one_cpu else "all"}
                    entry |= measure(calls[stage](out), rows, one_cpu, work / "stage.log")
                    shutil.rmtree(out, ignore_errors=True)
                    results["runs"].append(entry)
                    print(
                        f"{stage:10s} {rows:>10,} rows, {entry['cores']!s:>3} core(s): "
                        f"{entry['wall_s']:7.1f} s wall, {entry['cores_used']:.2f} cores used, "
                        f"peak RSS {entry['peak_rss_gb']:.2f} GB, {entry['rows_per_s']:,} rows/s",
                        flush=True,
                    )
            shutil.rmtree(work / f"examples_{rows}", ignore_errors=True)
            (work / f"taxi_{rows}.csv").unlink(missing_ok=True)
        write_json(RESULTS / "big.json", results)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def transform_apply(rows: int, before: str = "main", cores: str = "both") -> dict:
    """transform before (the revision's stage) vs after (this checkout), 1 core vs every core.

    Args:
        rows: Synthetic taxi rows (bench.synth), ingested once.
        before: The git revision whose containers/transform.py is the baseline.
        cores: "both", or "1" for the one-core pair alone (transform_apply_1core.json).
    """
    from bench import REPO

    work = Path(tempfile.mkdtemp(prefix="tfkfp-bench-apply-"))
    try:
        revision = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", before],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        baseline = work / "transform_before.py"
        baseline.write_text(
            subprocess.run(
                ["git", "-C", str(REPO), "show", f"{before}:containers/transform.py"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        csv = synth.generate(rows, work / "taxi.csv")
        examples, schema = work / "examples", work / "schema"
        from tfkfp.containers import ingest

        ingest.run(str(csv), str(examples), str(schema))
        csv.unlink()
        results: dict = {
            "rows": rows,
            "cpus": len(os.sched_getaffinity(0)),
            "before": f"{before} ({revision})",
            "load_average_start": _load_average(),
            "runs": [],
        }

        def code(side: str, out: Path) -> str:
            kwargs = {
                "examples": str(examples),
                "schema": str(schema),
                "module_file": scale.TAXI_MODULE,
                "transform_graph": str(out / "graph"),
                "transformed_examples": str(out / "examples"),
            }
            load = (
                "import importlib.util as u;"
                f"s = u.spec_from_file_location('tfkfp_transform_before', {str(baseline)!r});"
                "import sys; stage = sys.modules[s.name] = u.module_from_spec(s);"
                "s.loader.exec_module(stage);"
                if side == "before"
                else "from tfkfp.containers import transform as stage;"
            )
            return (
                f"{load} from tfkfp.containers.runtime import entrypoint;"
                f"entrypoint(stage.run, **{kwargs!r})"
            )

        # Every core first (the pod's default), then one; the sides alternate which goes first.
        name = "transform_apply.json" if cores == "both" else "transform_apply_1core.json"
        for one_cpu in (False, True) if cores == "both" else (True,):
            for side in ("before", "after") if not one_cpu else ("after", "before"):
                out = work / f"out_{side}_{int(one_cpu)}"
                out.mkdir()
                entry = {"side": side, "cores": 1 if one_cpu else "all"}
                entry |= measure(code(side, out), rows, one_cpu, work / "stage.log")
                shutil.rmtree(out, ignore_errors=True)
                results["runs"].append(entry)
                # A run stopped part-way keeps the pairs it measured.
                write_json(RESULTS / name, results)
                print(
                    f"transform {side:6s} {rows:>10,} rows, {entry['cores']!s:>3} core(s): "
                    f"{entry['wall_s']:7.1f} s wall, {entry['cores_used']:.2f} cores used, "
                    f"peak RSS {entry['peak_rss_gb']:.2f} GB",
                    flush=True,
                )
        results["load_average_end"] = _load_average()
        results["ratios"] = _ratios(results["runs"])
        write_json(RESULTS / name, results)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ratios(runs: list[dict]) -> dict:
    by = {(r["side"], r["cores"]): r for r in runs}
    if ("after", "all") not in by:
        return {
            "after_vs_before_wall_1_core": round(
                by["after", 1]["wall_s"] / by["before", 1]["wall_s"], 3
            ),
            "after_vs_before_cpu_1_core": round(
                by["after", 1]["cpu_s"] / by["before", 1]["cpu_s"], 3
            ),
        }
    return {
        "after_vs_before_cpu_1_core": round(by["after", 1]["cpu_s"] / by["before", 1]["cpu_s"], 3),
        "after_vs_before_cpu_all_cores": round(
            by["after", "all"]["cpu_s"] / by["before", "all"]["cpu_s"], 3
        ),
        "after_vs_before_wall_1_core": round(
            by["after", 1]["wall_s"] / by["before", 1]["wall_s"], 3
        ),
        "after_vs_before_wall_all_cores": round(
            by["after", "all"]["wall_s"] / by["before", "all"]["wall_s"], 3
        ),
        "after_all_cores_vs_1_core_speedup": round(
            by["after", 1]["wall_s"] / by["after", "all"]["wall_s"], 3
        ),
        "before_all_cores_vs_1_core_speedup": round(
            by["before", 1]["wall_s"] / by["before", "all"]["wall_s"], 3
        ),
        "after_vs_before_peak_rss_1_core": round(
            by["after", 1]["peak_rss_gb"] / by["before", 1]["peak_rss_gb"], 3
        ),
        "after_vs_before_peak_rss_all_cores": round(
            by["after", "all"]["peak_rss_gb"] / by["before", "all"]["peak_rss_gb"], 3
        ),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="150000,1500000")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--transform-apply", action="store_true")
    parser.add_argument("--before", default="main")
    parser.add_argument("--cores", choices=("both", "1"), default="both")
    args = parser.parse_args()
    if args.transform_apply:
        for size in args.sizes.split(","):
            transform_apply(int(size), args.before, args.cores)
    else:
        main([int(s) for s in args.sizes.split(",")], args.stages.split(","))
