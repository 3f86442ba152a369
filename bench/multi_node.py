"""Multi-node training on loopback: 1, 2 and 4 trainer processes with TF_CONFIG derived from
the JobSet pod environment (tfkfp.containers.train.cluster_config), the pods' DNS names swapped for
127.0.0.1 ports.

steps/s is the chief's `run_fn_seconds` difference between two step counts (so process start,
module loading and export cancel out), on the demo penguins module. Every process shares this
machine's cores: on 2 cores more workers cannot be faster, and the numbers show the cost of
the collective all-reduce plus the contention, not the scaling of a real cluster. The
launcher's own overhead (submit to first step) needs a cluster: not measured here.

Run with `.venv/bin/python -m bench.multi_node` (writes bench/results/multi_node.json).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import write_json
from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
MODULE = "tfkfp.pipelines.penguins.module"
STEPS = (50, 3050)
SMALL_STEPS = (20, 420)
FIRST_STEP = ("trainer: step ", "trainer: epoch ")
OVERHEAD_STEPS = 600  # long enough for a `step` line (events.PROGRESS_EVERY)


def _prepare(work: Path) -> tuple[str, str, str]:
    from tfkfp.containers import ingest, transform

    csv = REPO / "pipelines" / "penguins" / "data" / "penguins.csv"
    ingest.run(str(csv), str(work / "examples"), str(work / "schema"))
    transform.run(
        str(work / "examples"), str(work / "schema"), MODULE, str(work / "graph"), str(work / "t")
    )
    return str(work / "t"), str(work / "schema"), str(work / "graph")


def _job(work: Path, data: tuple[str, str, str], workers: int, steps: int) -> dict:
    from tfkfp.containers.train import cluster_config

    examples, schema, graph = data
    pods = [
        {
            "JOBSET_NAME": "bench",
            "REPLICATED_JOB_NAME": "node",
            "JOB_INDEX": "0",
            "JOB_COMPLETION_INDEX": str(i),
            "TFKFP_WORKERS": str(workers),
        }
        for i in range(workers)
    ]
    configs = [cluster_config.derive(env) for env in pods]
    loopback = {h: f"127.0.0.1:{free_port()}" for h in configs[0]["cluster"]["worker"]}
    started = time.perf_counter()
    procs = []
    for i, config in enumerate(configs):
        config["cluster"]["worker"] = [loopback[h] for h in config["cluster"]["worker"]]
        out = work / f"w{workers}-s{steps}-{i}"
        args = dict(
            examples=examples,
            schema=schema,
            transform_graph=graph,
            module_file=MODULE,
            model=str(out / "model"),
            model_run=str(out / "run"),
            curves=str(out / "c.html"),
            train_steps=steps,
            eval_steps=1,
        )
        code = (
            "import dataclasses,json,sys\nfrom tfkfp.containers import trainer\n"
            "from tfkfp.containers.runtime import entrypoint\n"
            "result = entrypoint(trainer.run, **json.loads(sys.argv[1]))\n"
            "print(json.dumps(dataclasses.asdict(result)))\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
        env.update(TF_CPP_MIN_LOG_LEVEL="2")
        if workers > 1:
            env["TF_CONFIG"] = json.dumps(config)
        else:
            env.pop("TF_CONFIG", None)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code, json.dumps(args)],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    first: list[float] = []
    outputs: dict[int, tuple[str, str]] = {}

    def read(i: int, p: subprocess.Popen) -> None:  # every pipe drained at once: no stalls
        if i:
            outputs[i] = p.communicate(timeout=1800)
            return
        stdout = threading.Thread(target=lambda: outputs.setdefault(-1, (p.stdout.read(), "")))
        stdout.start()
        lines = []
        for line in p.stderr:  # the chief's log, as the launcher would stream it
            lines.append(line)
            if not first and any(marker in line for marker in FIRST_STEP):
                first.append(time.perf_counter() - started)
        stdout.join()
        p.wait()
        outputs[0] = (outputs[-1][0], "".join(lines))

    readers = [threading.Thread(target=read, args=(i, p)) for i, p in enumerate(procs)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    infos = []
    for i, p in enumerate(procs):
        stdout, stderr = outputs[i]
        if p.returncode != 0:
            raise RuntimeError(stderr[-3000:])
        infos.append(json.loads(stdout.strip().splitlines()[-1]))
    return {**infos[0], "first_step_s": first[0] if first else None}  # the chief's


class _FirstStep(io.TextIOBase):
    """stdout that notes when the first step line of the chief's streamed log arrives."""

    def __init__(self, out, started: float):
        self.out, self.started, self.seconds = out, started, None

    def write(self, text: str) -> int:
        if self.seconds is None and "[chief]" in text and any(m in text for m in FIRST_STEP):
            self.seconds = time.perf_counter() - self.started
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


def _through_launcher(work: Path, data: tuple[str, str, str], workers: int) -> float:
    """submit -> first step in the chief's streamed log, via launch.launch and the local API."""
    import boto3

    from tests.helpers.k8s_api import Cluster, serve
    from tests.helpers.servers import S3_CREDENTIALS, start_server
    from tfkfp.containers.store import storage
    from tfkfp.containers.train import launch
    from tfkfp.containers.trainer import TrainerResult

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc, moto_log = start_server(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        work / "moto.log",
        url,
    )
    try:
        os.environ.update(S3_CREDENTIALS, AWS_ENDPOINT_URL=url)
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="bench")
        examples, schema, graph = data
        kwargs = {
            "examples": "s3://bench/examples",
            "schema": "s3://bench/schema",
            "transform_graph": "s3://bench/graph",
            "module_file": MODULE,
            "model": "s3://bench/model",
            "model_run": "s3://bench/model_run",
            "curves": "s3://bench/curves.html",
            "train_steps": OVERHEAD_STEPS,
            "eval_steps": 1,
        }
        for key, local in (("examples", examples), ("schema", schema), ("transform_graph", graph)):
            storage.upload(local, kwargs[key], key)
        cluster = Cluster()
        cluster.local_pods = work / "pods"
        cluster.local_pods.mkdir()
        started = time.perf_counter()
        tee = _FirstStep(sys.stdout, started)
        with serve(cluster) as api_client:
            sys.stdout = tee
            try:
                launch.launch(
                    "trainer",
                    workers,
                    "jobset",
                    kwargs,
                    TrainerResult,
                    image="local",
                    api_client=api_client,
                )
            finally:
                sys.stdout = tee.out
        if tee.seconds is None:
            raise RuntimeError("no step line came through the chief's streamed log")
        return tee.seconds
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        moto_log.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.multi_node")
    parser.add_argument("--small", action="store_true", help="few steps (checks it works)")
    args = parser.parse_args(argv)
    steps = SMALL_STEPS if args.small else STEPS
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfkfp-bench-mn-") as tmp:
        work = Path(tmp)
        data = _prepare(work)
        for workers in (1, 2, 4):
            short, long = (_job(work, data, workers, s)["run_fn_seconds"] for s in steps)
            rate = (steps[1] - steps[0]) / (long - short)
            rows.append(
                {"workers": workers, "steps_per_s": round(rate, 1), "run_fn_seconds": [short, long]}
            )
            print(f"{workers} worker(s): {rate:.1f} steps/s", flush=True)
        # The launcher's overhead: the same 2-worker job, directly and through the launcher.
        direct = _job(work, data, 2, OVERHEAD_STEPS)["first_step_s"]
        launched = _through_launcher(work, data, 2)
    base = rows[0]["steps_per_s"]
    for row in rows:
        row["vs_1_worker"] = round(row["steps_per_s"] / base, 2)
    overhead = {
        "what": "submit -> first step line of the chief's log, 2 workers, minus the same job "
        "started directly; local API server and local pod processes: our overhead only, "
        "no cluster",
        "direct_first_step_s": round(direct, 2),
        "launcher_first_step_s": round(launched, 2),
        "launcher_overhead_s": round(launched - direct, 2),
    }
    write_json(
        RESULTS / "multi_node.json",
        {
            "cores": os.cpu_count(),
            "load_average": os.getloadavg(),
            "small": args.small,
            "steps": steps,
            "rows": rows,
            "launcher": overhead,
        },
    )
    for row in rows:
        print(f"{row['workers']} worker(s): {row['vs_1_worker']}x of 1 worker's steps/s")
    print(
        f"launcher overhead (our own, no cluster): {overhead['launcher_overhead_s']:.1f} s "
        f"({launched:.1f} s through the launcher vs {direct:.1f} s directly to the first step)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
