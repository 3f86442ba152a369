"""infer against calling Beam's RunInference directly, on synthetic taxi examples.

Targets (issue 23): infer <= 1.10x of a plain Beam job (read, RunInference with the same
TensorFlow model handler, write the outputs) on the same examples and model, at 15k, 150k and
1.5M rows, with linear cost (marginal cost per row between sizes within 1.2x). Both run in a
fresh process, so start-up and imports count on both sides; best of `reps`. Then infra_validate
on the demo model (<= 10 s): its wall time in a fresh process, and its share of a local penguins
pipeline run (`tfkfp run penguins --local`, read from the run's task log).

    python -m bench.infer [--sizes 15000,150000,1500000] [--reps 3] [--no-demo]
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

SIZES = "15000,150000,1500000"

DIRECT = """
import os, pickle, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from tfkfp.containers.infer import _Handler
from tfkfp.containers.store.beam import beam_options

model, examples, out = sys.argv[1:4]
handler = _Handler.make(model, "serving_default", "examples", 0)
with beam.Pipeline(options=beam_options([])) as p:
    reads = [p | f"Read{s}" >> beam.io.ReadFromTFRecord(f"{examples}/Split-{s}/*.gz")
             for s in ("train", "eval")]
    (reads | beam.Flatten()
     | RunInference(handler)
     | beam.Map(lambda r: pickle.dumps((r.example, {k: v.tolist() for k, v in r.inference.items()})))
     | beam.io.WriteToTFRecord(os.path.join(out, "results"), file_name_suffix=".gz", num_shards=1))
"""


def _model(path: Path) -> str:
    """A small real model over two taxi features (serialized tf.Examples in, a score out)."""
    code = f"""
import os
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf

class Fare(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable([[0.3], [0.01]])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        spec = {{
            "trip_miles": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
            "trip_seconds": tf.io.FixedLenFeature([1], tf.int64, default_value=[0]),
        }}
        f = tf.io.parse_example(examples, spec)
        x = tf.concat([f["trip_miles"], tf.cast(f["trip_seconds"], tf.float32)], axis=1)
        return {{"score": tf.sigmoid(tf.matmul(x, self.w))}}

m = Fare()
tf.saved_model.save(m, {str(path)!r}, signatures={{"serving_default": m.serve}})
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return str(path)


def _timed(args: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:2]} failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - started


def _stage(stage: str, **kwargs) -> list[str]:
    return [
        "-c",
        f"from tfkfp.containers import {stage}; from tfkfp.containers.runtime import entrypoint;"
        f"entrypoint({stage}.run, **{kwargs!r})",
    ]


def measure(rows: int, work: Path, reps: int) -> dict:
    from tfkfp.containers import ingest

    csv = synth.generate(rows, work / f"taxi_{rows}.csv")
    examples = work / f"examples_{rows}"
    ingest.run(str(csv), str(examples), str(work / f"schema_{rows}"))
    csv.unlink()
    model = str(work / "model") if (work / "model").is_dir() else _model(work / "model")
    infer_s, direct_s = [], []
    for rep in range(reps):  # alternating, so drift on a shared machine hits both
        out = work / f"infer_{rows}_{rep}"
        infer_s.append(
            _timed(
                _stage(
                    "infer",
                    inference_result=str(out / "result"),
                    predictions=str(out / "predictions"),
                    model=model,
                    examples=str(examples),
                    # one process, as RunInference called directly (all cores: bench.big)
                    beam_pipeline_args=["--direct_num_workers=1"],
                )
            )
        )
        direct = work / f"direct_{rows}_{rep}"
        direct.mkdir()
        direct_s.append(_timed(["-c", DIRECT, model, str(examples), str(direct)]))
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(direct, ignore_errors=True)
    shutil.rmtree(examples, ignore_errors=True)
    return {
        "rows": rows,
        "infer_s": round(min(infer_s), 2),
        "direct_s": round(min(direct_s), 2),
        "ratio": round(min(infer_s) / min(direct_s), 3),
    }


def demo(work: Path, reps: int) -> dict:
    """infra_validate on the demo (penguins) model: wall time alone, share of the pipeline."""
    from bench import e2e
    from tfkfp.containers import ingest

    params = e2e.pipeline_params("penguins", work)
    pipeline_s, marks = e2e.run_pipeline("penguins", params)
    # the task's name as kfp.local gives it (infra-validate)
    (task,) = [m for name, m in marks.items() if name.startswith("infra")]
    task_s = task["end"] - task["start"]
    (model,) = sorted(Path(params["push_destination"]).iterdir())
    examples = work / "penguin_examples"
    ingest.run(params["data_uri"], str(examples), str(work / "penguin_schema"))
    alone = [
        _timed(
            _stage(
                "infra_validate",
                model=str(model),
                examples=str(examples),
                blessing=str(work / f"infra_{rep}"),
            )
        )
        for rep in range(reps)
    ]
    return {
        "infra_validate_s": round(min(alone), 2),
        "infra_validate_task_s": round(task_s, 2),
        "pipeline_s": round(pipeline_s, 2),
        "share_of_pipeline": round(task_s / pipeline_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=SIZES)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-demo", action="store_true", help="skip infra_validate's figures")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tfkfp-bench-infer-"))
    try:
        # two alternating pairs at 1.5M rows (minutes each): one pair swung 1.06x-1.17x here
        results = [
            measure(int(n), work, args.reps if int(n) < 1_000_000 else min(args.reps, 2))
            for n in args.sizes.split(",")
        ]
        infra = None if args.no_demo else demo(work, args.reps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print(
            f"infer {r['rows']} rows: {r['infer_s']} s vs RunInference directly "
            f"{r['direct_s']} s ({r['ratio']}x, target <= 1.10x)"
        )
    out: dict = {"results": results}
    if len(results) > 1:
        out["linearity"] = _linearity([r["rows"] for r in results], [r["infer_s"] for r in results])
        print(
            f"infer marginal cost: {out['linearity']['marginal_us_per_row']} us/row, spread "
            f"{out['linearity']['spread']:.2f}x (target <= 1.20x)"
        )
    if infra:
        out["infra_validate"] = infra
        print(
            f"infra_validate on the demo model: {infra['infra_validate_s']} s (target <= 10 s); "
            f"its task {infra['infra_validate_task_s']} s of the {infra['pipeline_s']} s "
            f"penguins pipeline ({infra['share_of_pipeline']:.0%})"
        )
    write_json(RESULTS / "infer.json", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
