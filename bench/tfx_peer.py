"""tfkfp against TFX 1.16 on the same pipeline, alternating whole runs: `python -m bench.tfx_peer`.

Equal work on both sides: the same CSV, the same module file (pipelines/<name>/module.py), the
same train/eval steps and EvalConfig (read from tfkfp's pipeline), the same train/eval split
fraction, and the same steps: ingest, statistics, schema, validation, Transform, Trainer,
Evaluator (baseline: the latest blessed model, none on a fresh root) and Pusher. tfkfp runs as
`tfkfp run <name> --local`; TFX as LocalDagRunner in its own Python 3.10 venv (TFX 1.16 installs
on 3.10 only), pinned by bench/tfx/constraints.txt and created on first use in .venv-tfx/
(about 6 minutes). Each run is a fresh process with a fresh pipeline root and push folder,
timed from outside; the sides alternate which goes first. A run counts only if its model was
blessed and pushed. Writes bench/results/tfx_peer.json: every pair, min and median ratios.

    python -m bench.tfx_peer [--pairs 3] [penguins taxi]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import inspect
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import import_module, resources
from pathlib import Path

from bench import REPO, RESULTS, alternating, write_json

log = logging.getLogger("tfkfp.bench")

TFX_DIR = Path(__file__).resolve().parent / "tfx"
CONSTRAINTS = TFX_DIR / "constraints.txt"
REQUIREMENTS = ["tfx==1.16.0", "apache-beam[gcp]==2.60.0"]
VENV = Path(os.environ.get("TFKFP_TFX_VENV", REPO / ".venv-tfx"))
# tfkfp's ingest default: this fraction of the hash buckets goes to train.
TRAIN_FRACTION = 0.75
TARGET_MIN = 0.25
TARGET_MEDIAN = 0.30


def find_python310() -> str | None:
    """A Python 3.10 interpreter: $TFKFP_PYTHON310, python3.10 on PATH, or pyenv's."""
    candidates = [os.environ.get("TFKFP_PYTHON310"), shutil.which("python3.10")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python")))
    return next((c for c in candidates if c and _is_python310(c)), None)


def _is_python310(python: str) -> bool:
    # pyenv's `python3.10` shim is on PATH even when another version is selected; it then exits 127.
    try:
        found = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return False
    return found.stdout.strip() == "True"


def tfx_python(python310: str) -> str:
    """The TFX venv's interpreter, creating or refreshing the venv when the pins changed."""
    stamp = VENV / ".tfkfp-tfx-installed"
    want = hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest()
    python = str(VENV / "bin" / "python")
    if stamp.is_file() and stamp.read_text() == want:
        return python
    log.info("bench: installing TFX 1.16 into %s (about 6 minutes)", VENV)
    if not os.access(python, os.X_OK):
        subprocess.run([python310, "-m", "venv", str(VENV)], check=True)
    # Python 3.10's bundled pip (23.0) resolves TFX's dependencies far more slowly.
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "pip>=25"],
        check=True,
    )
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + ["-c", str(CONSTRAINTS), *REQUIREMENTS],
        check=True,
    )
    stamp.write_text(want)
    return python


def workload(name: str) -> dict:
    """What both sides get: data, module file, steps and EvalConfig, from tfkfp's pipeline."""
    pipeline = import_module(f"tfkfp.pipelines.{name}.pipeline")
    defaults = inspect.signature(getattr(pipeline, name).pipeline_func).parameters
    folder = resources.files(f"tfkfp.pipelines.{name}")
    csv = next(p for p in (folder / "data").iterdir() if p.name.endswith(".csv"))
    return {
        "name": name,
        "csv": str(csv),
        "module_file": str(folder / "module.py"),
        "module_name": defaults["module_file"].default,
        "train_steps": defaults["train_steps"].default,
        "eval_steps": defaults["eval_steps"].default,
        "train_fraction": TRAIN_FRACTION,
        "eval_config": pipeline.EVAL_CONFIG,
    }


def tfx_csv(src: str, folder: Path) -> Path:
    """A copy of `src` for CsvExampleGen, which reads folders and types `NA` cells as strings.

    tfkfp's ingest reads `NA` as missing; TFX only empty cells, so `NA` becomes empty here.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lines = Path(src).read_text().splitlines()
    body = [",".join("" if cell == "NA" else cell for cell in line.split(",")) for line in lines]
    (folder / "data.csv").write_text("\n".join(body) + "\n")
    return folder


def run_tfkfp(work: dict, root: Path) -> dict:
    """One `tfkfp run --local`: wall seconds, blessed and pushed."""
    push = root / "serving"
    args = [sys.executable, "-m", "tfkfp.cli", "run", work["name"], "--local"]
    args += ["--pipeline-root", str(root / "pipeline")]
    args += ["--param", f"data_uri={work['csv']}", "--param", f"push_destination={push}"]
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=root)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"tfkfp {work['name']} failed:\n{proc.stderr[-3000:]}")
    blessed = glob.glob(str(root / "pipeline" / "**" / "BLESSED"), recursive=True)
    pushed = glob.glob(str(push / "*" / "PUSHED.json"))
    return {"seconds": seconds, "blessed": bool(blessed), "pushed": bool(pushed)}


def run_tfx(python: str, work: dict, root: Path) -> dict:
    """One TFX LocalDagRunner run in a fresh process: wall seconds, blessed and pushed."""
    args = {
        **{k: work[k] for k in ("name", "module_file", "train_steps", "eval_steps")},
        **{k: work[k] for k in ("train_fraction", "eval_config")},
        "data_dir": str(tfx_csv(work["csv"], root / "data")),
        "root": str(root),
        "push_destination": str(root / "serving"),
    }
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "1"}
    for leaked in ("PYTHONPATH", "VIRTUAL_ENV", "TF_USE_LEGACY_KERAS", "TF_CONFIG"):
        env.pop(leaked, None)
    started = time.perf_counter()
    proc = subprocess.run(
        [python, str(TFX_DIR / "pipeline.py"), json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"TFX {work['name']} failed:\n{proc.stderr[-3000:]}")
    inner = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"seconds": seconds, "blessed": inner["blessed"], "pushed": bool(inner["pushed"])}


def run_one_process(work: dict, root: Path) -> dict:
    """tfkfp's stage `run()`s in sequence in one fresh interpreter: the least its stages cost.

    No orchestration, no task processes, every import paid once: what the stages' libraries
    themselves need for this work. Its ratio to TFX bounds what any local runner could reach.
    """
    from bench.warm import one_process

    params = {"data_uri": work["csv"], "push_destination": str(root / "serving")}
    seconds = one_process(work["name"], params)
    pushed = glob.glob(str(root / "serving" / "*" / "PUSHED.json"))
    return {"seconds": seconds, "blessed": bool(pushed), "pushed": bool(pushed)}


def summarize(pairs: list[dict]) -> dict:
    """Per pair tfkfp/TFX; min and median of those ratios, medians of each side's seconds.

    A pair in which either side was not both blessed and pushed did not do the work: it is kept
    in the record but left out of the ratios.
    """
    complete = [
        p
        for p in pairs
        if all(p[side]["blessed"] and p[side]["pushed"] for side in ("tfkfp", "tfx"))
    ]
    ratios = [p["tfkfp"]["seconds"] / p["tfx"]["seconds"] for p in complete]
    if not ratios:
        return {"pairs_complete": 0, "ratio_min": None, "ratio_median": None}
    floors = [
        p["one process"]["seconds"] / p["tfx"]["seconds"] for p in complete if "one process" in p
    ]
    return {
        "floor_ratios": [round(r, 3) for r in floors],
        "floor_ratio_min": round(min(floors), 3) if floors else None,
        "pairs_complete": len(complete),
        "ratios": [round(r, 3) for r in ratios],
        "ratio_min": round(min(ratios), 3),
        "ratio_median": round(statistics.median(ratios), 3),
        "tfkfp_median_s": round(statistics.median(p["tfkfp"]["seconds"] for p in complete), 1),
        "tfx_median_s": round(statistics.median(p["tfx"]["seconds"] for p in complete), 1),
    }


def measure(python: str, name: str, reps: int) -> dict:
    """`reps` alternating pairs of whole runs of one pipeline."""
    work = workload(name)
    pairs: list[dict] = [{} for _ in range(reps)]
    for rep, side in alternating("tfkfp", "tfx", reps):
        with tempfile.TemporaryDirectory(prefix=f"tfkfp-peer-{side}-") as tmp:
            root = Path(tmp)
            run = run_tfkfp(work, root) if side == "tfkfp" else run_tfx(python, work, root)
        run["seconds"] = round(run["seconds"], 2)
        run["first"] = not pairs[rep]
        pairs[rep][side] = run
        log.info("bench: %s pair %d %s: %.1f s %s", name, rep + 1, side, run["seconds"], run)
        if len(pairs[rep]) == 2:  # the round's floor, beside its pair
            with tempfile.TemporaryDirectory(prefix="tfkfp-peer-one-") as tmp:
                floor = run_one_process(work, Path(tmp))
            floor["seconds"] = round(floor["seconds"], 2)
            pairs[rep]["one process"] = floor
            log.info("bench: %s pair %d one process: %.1f s", name, rep + 1, floor["seconds"])
    return {
        "pipeline": name,
        "train_steps": work["train_steps"],
        "eval_steps": work["eval_steps"],
        "module_file": f"pipelines/{name}/module.py",
        "pairs": pairs,
        **summarize(pairs),
    }


def report(results: list[dict]) -> str:
    """Markdown: one row per pair and one per dataset with min and median ratios."""
    out = [
        "| pipeline | pair | tfkfp | TFX | tfkfp / TFX | one process | one process / TFX |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for i, p in enumerate(r["pairs"], 1):
            t, x = p["tfkfp"], p["tfx"]
            done = all(s["blessed"] and s["pushed"] for s in (t, x))
            ratio = f"{t['seconds'] / x['seconds']:.2f}×" if done else "not blessed+pushed"
            one = p.get("one process")
            floor = f"{one['seconds']:.1f} s | {one['seconds'] / x['seconds']:.2f}×" if one else "|"
            out.append(
                f"| {r['pipeline']} | {i} | {t['seconds']:.1f} s | {x['seconds']:.1f} s | {ratio} "
                f"| {floor} |"
            )
    out += [
        "",
        "| pipeline | min ratio | median ratio | target | floor (one process / TFX, min) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if r["ratio_min"] is None:
            out.append(f"| {r['pipeline']} | n/a | n/a | | |")
            continue
        floor = "n/a" if r.get("floor_ratio_min") is None else f"{r['floor_ratio_min']:.2f}×"
        out.append(
            f"| {r['pipeline']} | {r['ratio_min']:.2f}× | {r['ratio_median']:.2f}× | "
            f"≤ {TARGET_MIN}× min, ≤ {TARGET_MEDIAN}× median | {floor} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tfx_peer", description=__doc__)
    parser.add_argument("pipelines", nargs="*", default=["penguins", "taxi"])
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    python310 = find_python310()
    if python310 is None:
        print("bench.tfx_peer: skipped: no Python 3.10 (TFX 1.16 installs on 3.10 only)")
        return 0
    python = tfx_python(python310)
    results = [measure(python, name, args.pairs) for name in args.pipelines]
    print(report(results))
    write_json(
        RESULTS / "tfx_peer.json",
        {"targets": {"min": TARGET_MIN, "median": TARGET_MEDIAN}, "pipelines": results},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
