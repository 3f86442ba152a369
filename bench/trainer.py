"""Trainer benchmarks on the Chicago taxi sample, each against a baseline measured in the same run.

(a) overhead: the same `run_fn` (bench/taxi_module.py) called directly with a hand-built FnArgs,
    vs through `trainer.run` (module loading, strategy, staging, export check). Each run is a
    fresh process, as a KFP task is; the two kinds alternate so machine load hits both alike.
(b) input throughput: examples/s of `fn_args.data_accessor.tf_dataset_factory` vs a hand-tuned
    tf.data reader (parallel interleave, batch-then-parallel-parse, prefetch) over the same files.

Run with `.venv/bin/python -m bench.trainer` (about 5 minutes on 2 cores). Prints the ratios and
writes bench/results/trainer.json. Targets: overhead <= 1.05x, throughput >= 0.9x.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TAXI_CSV = Path(os.environ.get("TFKFP_TAXI_CSV", "/work/shared/data/chicago_taxi.csv"))
TAXI_MODULE = BENCH / "taxi_module.py"
RESULTS = BENCH / "results"
WORK = RESULTS / "tmp" / "trainer"
LABEL = "big_tipper"

log = logging.getLogger("bench.trainer")


def prepare(fresh: bool) -> dict[str, str]:
    """Ingests and transforms the taxi CSV once (reused by later runs unless `fresh`)."""
    paths = {
        "examples": str(WORK / "examples"),
        "schema": str(WORK / "schema"),
        "graph": str(WORK / "transform_graph"),
        "transformed": str(WORK / "transformed_examples"),
    }
    if fresh:
        shutil.rmtree(WORK, ignore_errors=True)
    if all(os.path.isdir(p) for p in paths.values()):
        log.info("reusing prepared taxi data in %s", WORK)
        return paths
    from tfkfp.containers import ingest, transform

    log.info("ingesting %s", TAXI_CSV)
    ingest.run(str(TAXI_CSV), paths["examples"], paths["schema"])
    log.info("transforming with %s (Beam DirectRunner)", TAXI_MODULE.name)
    transform.run(
        paths["examples"], paths["schema"], str(TAXI_MODULE), paths["graph"], paths["transformed"]
    )
    return paths


# One training job in a fresh process; prints its own elapsed time (imports included, since
# a direct call pays them too) as the last stdout line.
_JOB = """
import json, os, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
start = time.perf_counter()
mode, paths, out, module, train_steps, eval_steps = json.loads(sys.argv[1])
if mode == "direct":
    import importlib.util
    from tfkfp.containers.fn_args import FnArgs, make_data_accessor
    spec = importlib.util.spec_from_file_location("taxi_module", module)
    user = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user)
    os.makedirs(out + "/work")
    user.run_fn(FnArgs(
        working_dir=out + "/work",
        train_files=[paths["transformed"] + "/Split-train/*.gz"],
        eval_files=[paths["transformed"] + "/Split-eval/*.gz"],
        train_steps=train_steps,
        eval_steps=eval_steps,
        schema_path=paths["schema"] + "/schema.pbtxt",
        transform_graph_path=paths["graph"],
        data_accessor=make_data_accessor(),
        serving_model_dir=out + "/model",
        model_run_dir=out + "/model_run",
    ))
else:
    from tfkfp.containers import trainer
    from tfkfp.containers.runtime import entrypoint
    entrypoint(
        trainer.run,
        examples_dir=paths["transformed"],
        schema_dir=paths["schema"],
        module_file=module,
        model_dir=out + "/model",
        model_run_dir=out + "/model_run",
        transform_graph_dir=paths["graph"],
        train_steps=train_steps,
        eval_steps=eval_steps,
    )
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def _job(mode: str, paths: dict[str, str], rep: int, train_steps: int, eval_steps: int) -> float:
    out = WORK / "jobs" / f"{mode}-{rep}"
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = json.dumps([mode, paths, str(out), str(TAXI_MODULE), train_steps, eval_steps])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-c", _JOB, argv], capture_output=True, text=True, env=env, cwd=REPO
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} job failed:\n{proc.stderr[-3000:]}")
    if not (out / "model" / "saved_model.pb").is_file():
        raise RuntimeError(f"{mode} job wrote no model to {out / 'model'}")
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def bench_overhead(paths: dict[str, str], reps: int, train_steps: int, eval_steps: int) -> dict:
    times: dict[str, list[float]] = {"direct": [], "trainer": []}
    for rep in range(reps):
        # Alternate which goes first so a load change on the shared machine hits both.
        order = ("direct", "trainer") if rep % 2 == 0 else ("trainer", "direct")
        for mode in order:
            seconds = _job(mode, paths, rep, train_steps, eval_steps)
            times[mode].append(seconds)
            log.info("overhead rep %d/%d: %s %.1f s", rep + 1, reps, mode, seconds)
    direct, through = statistics.median(times["direct"]), statistics.median(times["trainer"])
    return {
        "direct_seconds": times["direct"],
        "trainer_seconds": times["trainer"],
        "direct_median": direct,
        "trainer_median": through,
        "ratio": through / direct,
        "target": "<= 1.05",
        "train_steps": train_steps,
        "eval_steps": eval_steps,
    }


def _hand_tuned(tf, files: list[str], feature_spec: dict, batch_size: int, epochs: int):
    autotune = tf.data.AUTOTUNE

    def parse(serialized):
        features = tf.io.parse_example(serialized, feature_spec)
        return features, features.pop(LABEL)

    files_ds = tf.data.Dataset.from_tensor_slices(files)
    records = files_ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP", buffer_size=1 << 20),
        cycle_length=max(1, min(len(files), 8)),
        num_parallel_calls=autotune,
        deterministic=False,
    )
    return (
        records.repeat(epochs)
        .batch(batch_size)
        .map(parse, num_parallel_calls=autotune, deterministic=False)
        .prefetch(autotune)
    )


def _examples_per_second(dataset) -> tuple[float, int]:
    start = time.perf_counter()
    n = 0
    for _, label in dataset:
        n += int(label.shape[0])
    return n / (time.perf_counter() - start), n


def bench_throughput(paths: dict[str, str], reps: int, epochs: int, batch_size: int) -> dict:
    import tensorflow as tf
    import tensorflow_transform as tft
    from tfkfp.containers.fn_args import make_data_accessor
    from tfkfp.containers.runtime import split_pattern
    from tfx_bsl.public import tfxio

    pattern = split_pattern(paths["transformed"], "train")
    files = sorted(tf.io.gfile.glob(pattern))
    tft_output = tft.TFTransformOutput(paths["graph"])
    schema = tft_output.transformed_metadata.schema
    feature_spec = tft_output.transformed_feature_spec()
    accessor = make_data_accessor()

    def ours():
        return accessor.tf_dataset_factory(
            [pattern],
            tfxio.TensorFlowDatasetOptions(
                batch_size=batch_size, label_key=LABEL, shuffle=False, num_epochs=epochs
            ),
            schema,
        )

    def baseline():
        return _hand_tuned(tf, files, feature_spec, batch_size, epochs)

    rates: dict[str, list[float]] = {"data_accessor": [], "hand_tuned": []}
    counts = {}
    for make in (ours, baseline):
        _examples_per_second(make().take(20))  # warm-up: graph tracing, file cache
    for rep in range(reps):
        pairs = [("data_accessor", ours), ("hand_tuned", baseline)]
        for name, make in pairs if rep % 2 == 0 else pairs[::-1]:
            rate, counts[name] = _examples_per_second(make())
            rates[name].append(rate)
            log.info("throughput rep %d/%d: %s %.0f examples/s", rep + 1, reps, name, rate)
    if counts["data_accessor"] != counts["hand_tuned"]:
        raise RuntimeError(f"the two readers saw different example counts: {counts}")
    ours_rate = statistics.median(rates["data_accessor"])
    base_rate = statistics.median(rates["hand_tuned"])
    return {
        "data_accessor_examples_per_s": rates["data_accessor"],
        "hand_tuned_examples_per_s": rates["hand_tuned"],
        "data_accessor_median": ours_rate,
        "hand_tuned_median": base_rate,
        "ratio": ours_rate / base_rate,
        "target": ">= 0.9",
        "examples_per_pass": counts["data_accessor"],
        "files": len(files),
        "batch_size": batch_size,
        "epochs": epochs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each measurement")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20, help="passes over the data in (b)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--fresh", action="store_true", help="redo ingest and transform")
    parser.add_argument("--only", choices=("overhead", "throughput"), default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not TAXI_CSV.is_file():
        print(f"error: taxi data not found at {TAXI_CSV} (set TFKFP_TAXI_CSV)", file=sys.stderr)
        return 2
    from tfkfp.containers.runtime import select_keras

    select_keras("tf_keras")  # this process runs ingest, transform and (b); all tf_keras
    paths = prepare(args.fresh)
    results: dict = {"data": str(TAXI_CSV), "reps": args.reps, "cpus": os.cpu_count()}
    if args.only in (None, "throughput"):
        results["throughput"] = bench_throughput(paths, args.reps, args.epochs, args.batch_size)
    if args.only in (None, "overhead"):
        results["overhead"] = bench_overhead(paths, args.reps, args.train_steps, args.eval_steps)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "trainer.json").write_text(json.dumps(results, indent=2) + "\n")
    if "overhead" in results:
        o = results["overhead"]
        print(
            f"trainer overhead: {o['ratio']:.3f}x (through trainer {o['trainer_median']:.1f} s "
            f"vs direct run_fn {o['direct_median']:.1f} s, median of {args.reps}; target <= 1.05x)"
        )
    if "throughput" in results:
        t = results["throughput"]
        print(
            f"input throughput: {t['ratio']:.3f}x (data_accessor {t['data_accessor_median']:.0f} "
            f"vs hand-tuned tf.data {t['hand_tuned_median']:.0f} examples/s; target >= 0.9x)"
        )
    print(f"results: {RESULTS / 'trainer.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
