"""Ingest from object storage vs from a local file, on the same synthetic taxi CSV, in one run.

The S3-compatible server (moto) and the GCS emulator run on loopback, each in its own process,
as in the tests. Each ingest runs in a fresh process (the stage's own imports); the three
sources take turns going first, and the best of each counts. Printed: seconds per source and
the ratio to the local file (target <= 1.30).

    python -m bench.storage [--rows 1500000] [--reps 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench import RESULTS, synth, write_json

SOURCES = ("local", "s3", "gs")
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _server(args: list[str], log_path: Path):
    """Starts a loopback server process; yields its URL once it answers HTTP."""
    port = _port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args, str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(url + "/", timeout=1).read()
                    break
                except urllib.error.HTTPError:
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{args[0]} did not start, see {log_path}") from None
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _ingest(uri: str, out: Path, env: dict) -> float:
    shutil.rmtree(out, ignore_errors=True)
    code = (
        "from tfkfp.containers import ingest; from tfkfp.containers.runtime import entrypoint;"
        f"entrypoint(ingest.run, data_uri={uri!r}, examples={str(out / 'ex')!r}, "
        f"schema={str(out / 'schema')!r})"
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ingest from {uri} failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - started


def main(rows: int = 1_500_000, reps: int = 2, results: Path = RESULTS) -> dict:
    from google.cloud import storage as gcs

    from tfkfp.containers.store import storage

    work = Path(tempfile.mkdtemp(prefix="tfkfp-bench-storage-"))
    try:
        csv = synth.generate(rows, work / f"taxi_{rows}.csv")
        with ExitStack() as stack:
            s3_url = stack.enter_context(
                _server(["moto.server", "-H", "127.0.0.1", "-p"], work / "moto.log")
            )
            gcs_url = stack.enter_context(
                _server(
                    ["gcp_storage_emulator", "start", "--host", "127.0.0.1", "--in-memory",
                     "-q", "--port"],
                    work / "gcs.log",
                )
            )  # fmt: skip
            env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_url, "STORAGE_EMULATOR_HOST": gcs_url}
            os.environ.update(env)
            import boto3

            boto3.client("s3", endpoint_url=s3_url).create_bucket(Bucket="bench")
            gcs.Client().create_bucket("bench")
            uris = {
                "local": str(csv),
                "s3": f"s3://bench/{csv.name}",
                "gs": f"gs://bench/{csv.name}",
            }
            for side in ("s3", "gs"):
                storage.upload(str(csv), uris[side], "bench")
            best = dict.fromkeys(SOURCES, float("inf"))
            for rep in range(reps):
                order = SOURCES[rep % 3 :] + SOURCES[: rep % 3]
                for side in order:
                    seconds = _ingest(uris[side], work / "out", env)
                    best[side] = min(best[side], seconds)
                    print(f"ingest {rows:,} rows from {side}: {seconds:.1f} s", flush=True)
        result = {
            "rows": rows,
            "csv_bytes": csv.stat().st_size,
            "best_of": reps,
            **{f"{side}_s": round(best[side], 2) for side in SOURCES},
            "s3_ratio": round(best["s3"] / best["local"], 3),
            "gs_ratio": round(best["gs"] / best["local"], 3),
        }
        print(
            f"ingest {rows:,} rows: local {best['local']:.1f} s, S3 server {best['s3']:.1f} s "
            f"({result['s3_ratio']:.2f}x), GCS emulator {best['gs']:.1f} s "
            f"({result['gs_ratio']:.2f}x); target <= 1.30x"
        )
        write_json(results / "storage.json", result)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    args = parser.parse_args()
    main(args.rows, args.reps, Path(tempfile.mkdtemp()) if args.no_save else RESULTS)
