"""Multi-node training on loopback: 1, 2 and 4 trainer processes with TF_CONFIG derived from
the JobSet pod environment (tfkfp.containers.cluster_config), the pods' DNS names swapped for
127.0.0.1 ports.

steps/s is the chief's `run_fn_seconds` difference between two step counts (so process start,
module loading and export cancel out), on the demo penguins module. Every process shares this
machine's cores: on 2 cores more workers cannot be faster, and the numbers show the cost of
the collective all-reduce plus the contention, not the scaling of a real cluster. The
launcher's own overhead (submit to first step) needs a cluster: not measured here.

Run with `.venv/bin/python -m bench.multi_node` (writes bench/results/multi_node.json).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
MODULE = "tfkfp.pipelines.penguins.module"
STEPS = (50, 3050)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prepare(work: Path) -> tuple[str, str, str]:
    from tfkfp.containers import ingest, transform

    csv = REPO / "pipelines" / "penguins" / "data" / "penguins.csv"
    ingest.run(str(csv), str(work / "examples"), str(work / "schema"))
    transform.run(
        str(work / "examples"), str(work / "schema"), MODULE, str(work / "graph"), str(work / "t")
    )
    return str(work / "t"), str(work / "schema"), str(work / "graph")


def _job(work: Path, data: tuple[str, str, str], workers: int, steps: int) -> dict:
    from tfkfp.containers import cluster_config

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
    loopback = {h: f"127.0.0.1:{_port()}" for h in configs[0]["cluster"]["worker"]}
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
            "import json,sys\nfrom tfkfp.containers import trainer\n"
            "from tfkfp.containers.runtime import entrypoint\n"
            "print(json.dumps(entrypoint(trainer.run, **json.loads(sys.argv[1]))))\n"
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
    infos = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(stderr[-3000:])
        infos.append(json.loads(stdout.strip().splitlines()[-1]))
    return infos[0]  # the chief's


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfkfp-bench-mn-") as tmp:
        work = Path(tmp)
        data = _prepare(work)
        for workers in (1, 2, 4):
            short, long = (_job(work, data, workers, s)["run_fn_seconds"] for s in STEPS)
            rate = (STEPS[1] - STEPS[0]) / (long - short)
            rows.append(
                {"workers": workers, "steps_per_s": round(rate, 1), "run_fn_seconds": [short, long]}
            )
            print(f"{workers} worker(s): {rate:.1f} steps/s", flush=True)
    base = rows[0]["steps_per_s"]
    for row in rows:
        row["vs_1_worker"] = round(row["steps_per_s"] / base, 2)
    write_json(RESULTS / "multi_node.json", {"cores": os.cpu_count(), "steps": STEPS, "rows": rows})
    for row in rows:
        print(f"{row['workers']} worker(s): {row['vs_1_worker']}x of 1 worker's steps/s")


if __name__ == "__main__":
    main()
