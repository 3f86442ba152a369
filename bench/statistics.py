"""The statistics stage against ingest on the same synthetic taxi data, at 15k/150k/1.5M rows.

Targets (issue 17): statistics cost <= 0.5x of ingest's time on the same data, and are linear in
rows (marginal cost per row between successive sizes within 20%). Both stages run in a fresh
process each, as their component bodies do, so start-up and imports count on both sides.
Runs under 1M rows are repeated (best of 5).

    python -m bench.statistics [--sizes 15000,150000,1500000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import RESULTS, synth, write_json
from bench.scale import _linearity


def _timed(stage: str, **kwargs) -> float:
    code = (
        f"from tfkfp.containers import {stage}; from tfkfp.containers.runtime import entrypoint;"
        f"entrypoint({stage}.run, **{kwargs!r})"
    )
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - started


def _best(reps: int, stage: str, **kwargs) -> float:
    return min(_timed(stage, **kwargs) for _ in range(reps))


def measure(rows: int, work: Path) -> dict:
    csv = synth.generate(rows, work / f"taxi_{rows}.csv")
    out = work / f"run_{rows}"
    shutil.rmtree(out, ignore_errors=True)
    # Short runs are noisy on a shared machine: the best of 5 under 1M rows, else one run.
    reps = 5 if rows < 1_000_000 else 1
    ingest_s = _best(
        reps,
        "ingest",
        data_uri=str(csv),
        examples=str(out / "examples"),
        schema=str(out / "schema"),
    )
    statistics_s = _best(
        reps,
        "statistics",
        examples=str(out / "examples"),
        statistics=str(out / "statistics"),
        view=str(out / "view.html"),
    )
    validate_s = _timed(
        "validate",
        statistics=str(out / "statistics"),
        schema=str(out / "schema"),
        anomalies=str(out / "anomalies"),
        report=str(out / "report.md"),
    )
    shutil.rmtree(out, ignore_errors=True)
    result = {
        "rows": rows,
        "ingest_s": round(ingest_s, 2),
        "statistics_s": round(statistics_s, 2),
        "validate_s": round(validate_s, 2),
        "ratio": round(statistics_s / ingest_s, 3),
    }
    print(
        f"{rows:>10,} rows: ingest {ingest_s:7.1f} s, statistics {statistics_s:6.1f} s "
        f"({result['ratio']:.2f}x of ingest, target <= 0.5x), validate {validate_s:.1f} s",
        flush=True,
    )
    return result


def main(sizes: list[int]) -> dict:
    work = Path(tempfile.mkdtemp(prefix="tfkfp-bench-stats-"))
    try:
        entries = [measure(n, work) for n in sizes]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    linearity = _linearity([e["rows"] for e in entries], [e["statistics_s"] for e in entries])
    print(
        "statistics marginal cost per row: "
        f"{' / '.join(f'{x:.2f}' for x in linearity['marginal_us_per_row'])} us, "
        f"spread {linearity['spread']:.2f}x (target <= 1.20x)"
    )
    result = {"sizes": entries, "linearity": linearity}
    write_json(RESULTS / "statistics.json", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="15000,150000,1500000")
    args = parser.parse_args()
    main([int(x) for x in args.sizes.split(",")])
