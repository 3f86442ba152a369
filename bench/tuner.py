"""Tuner overhead: the tuner stage vs `tuner_fn` and `tuner.search` called directly, same data.

Both sides run the penguins_tuned module (RandomSearch, `--trials` trials of `--steps` steps)
on the same transformed penguins, each in a fresh process as a KFP task is, alternating so
machine load hits both alike. The direct side loads the module, builds FnArgs by hand, calls
`tuner_fn`, runs the search and writes the best config: what a user would script. The stage
adds module loading rules, the strategy, progress lines, the trials table and staged outputs.

Run with `.venv/bin/python -m bench.tuner` (about 4 minutes on 2 cores). Prints the ratio and
writes bench/results/tuner.json. Target: <= 1.05x (best of N; ratio of medians next to it).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
from pathlib import Path

from bench import RESULTS, alternating, timed_job, write_json

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PENGUINS_CSV = REPO / "pipelines" / "penguins" / "data" / "penguins.csv"
MODULE = REPO / "pipelines" / "penguins_tuned" / "module.py"
WORK = RESULTS / "tmp" / "tuner"

log = logging.getLogger("bench.tuner")


def prepare() -> dict[str, str]:
    """Ingests and transforms the penguins once (reused by later runs)."""
    paths = {
        "examples": str(WORK / "examples"),
        "schema": str(WORK / "schema"),
        "graph": str(WORK / "transform_graph"),
        "transformed": str(WORK / "transformed_examples"),
    }
    if all(os.path.isdir(p) for p in paths.values()):
        return paths
    from tfkfp.containers import ingest, transform

    ingest.run(str(PENGUINS_CSV), paths["examples"], paths["schema"])
    transform.run(
        paths["examples"], paths["schema"], str(MODULE), paths["graph"], paths["transformed"]
    )
    return paths


# One search in a fresh process; prints its elapsed time (imports included) as the last line.
_JOB = """
import json, os, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
start = time.perf_counter()
mode, paths, out, module, trials, steps = json.loads(sys.argv[1])
config = {"max_trials": trials}
if mode == "direct":
    import importlib.util
    from tfkfp.containers.train.fn_args import FnArgs, make_data_accessor
    from tfkfp.containers.train.hyperparameters import keras_tuner
    keras_tuner()  # KerasTuner on tf.keras (tf_keras), as the module's models are
    spec = importlib.util.spec_from_file_location("tuned_module", module)
    user = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user)
    os.makedirs(out + "/work")
    result = user.tuner_fn(FnArgs(
        working_dir=out + "/work",
        train_files=[paths["transformed"] + "/Split-train/*.gz"],
        eval_files=[paths["transformed"] + "/Split-eval/*.gz"],
        train_steps=steps,
        eval_steps=2,
        schema_path=paths["schema"] + "/schema.pbtxt",
        transform_graph_path=paths["graph"],
        data_accessor=make_data_accessor(),
        custom_config=config,
    ))
    began = time.perf_counter()
    result.tuner.search(**result.fit_kwargs)
    search_seconds = time.perf_counter() - began
    best = result.tuner.get_best_hyperparameters(1)[0].get_config()
    os.makedirs(out + "/best_hyperparameters")
    with open(out + "/best_hyperparameters/best_hyperparameters.txt", "w") as fh:
        json.dump(best, fh)
else:
    from tfkfp.containers import tuner
    from tfkfp.containers.runtime import entrypoint
    search_seconds = entrypoint(
        tuner.run,
        examples=paths["transformed"],
        schema=paths["schema"],
        module_file=module,
        best_hyperparameters=out + "/best_hyperparameters",
        trials=out + "/trials.md",
        trials_chart=out + "/trials.html",
        transform_graph=paths["graph"],
        train_steps=steps,
        eval_steps=2,
        custom_config=config,
    ).search_seconds
print(json.dumps({"seconds": time.perf_counter() - start, "search_seconds": search_seconds}))
"""


def _job(
    mode: str, paths: dict[str, str], rep: int, trials: int, steps: int
) -> tuple[float, float]:
    out = WORK / "jobs" / f"{mode}-{rep}"
    args = [mode, paths, str(out), str(MODULE), trials, steps]
    timing = timed_job(_JOB, args, out, "best_hyperparameters/best_hyperparameters.txt")
    return timing["seconds"], timing["search_seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="searches of each kind")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="training steps per trial")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from tfkfp.containers.runtime import select_keras

    select_keras("tf_keras")
    paths = prepare()
    times: dict[str, list[float]] = {"direct": [], "tuner": []}
    # Time outside the search in the same process: imports, module loading, tuner_fn and, for
    # the stage, its own work. Far less noisy than the totals on a shared machine.
    outside: dict[str, list[float]] = {"direct": [], "tuner": []}
    for rep, mode in alternating("direct", "tuner", args.reps):
        seconds, in_search = _job(mode, paths, rep, args.trials, args.steps)
        times[mode].append(seconds)
        outside[mode].append(seconds - in_search)
        log.info(
            "rep %d/%d: %s %.1f s (%.1f s outside the search)",
            rep + 1,
            args.reps,
            mode,
            seconds,
            seconds - in_search,
        )
    result = {
        "direct_outside_search_seconds": outside["direct"],
        "tuner_outside_search_seconds": outside["tuner"],
        "extra_outside_search_median": statistics.median(outside["tuner"])
        - statistics.median(outside["direct"]),
        "direct_seconds": times["direct"],
        "tuner_seconds": times["tuner"],
        "direct_best": min(times["direct"]),
        "tuner_best": min(times["tuner"]),
        # Best of N: the run least disturbed by other work on the shared machine.
        "ratio": min(times["tuner"]) / min(times["direct"]),
        "ratio_of_medians": statistics.median(times["tuner"]) / statistics.median(times["direct"]),
        "target": "<= 1.05",
        "reps": args.reps,
        "trials": args.trials,
        "steps_per_trial": args.steps,
    }
    write_json(RESULTS / "tuner.json", result)
    print(
        f"tuner overhead: {result['ratio']:.3f}x (stage {result['tuner_best']:.1f} s vs direct "
        f"tuner_fn + search {result['direct_best']:.1f} s, best of {args.reps}; ratio of medians "
        f"{result['ratio_of_medians']:.3f}x; target <= 1.05x); time outside the search, stage "
        f"minus direct: {result['extra_outside_search_median']:+.2f} s (medians)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
