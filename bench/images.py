"""Image sizes and per-stage cold starts of the tfkfp images: `python -m bench.images`.

Sizes: uncompressed (the engine's image size) and compressed (`docker save | gzip`, level 6,
deflated in parallel blocks the way pigz does). A compressed size is a function of the image's
content, so it is reused from the previous results while the image ID is unchanged
(`--recompress` measures it again).
Cold start: from the container start request to the stage's first log line, each stage run
once in a fresh container of the CPU image on the penguin data (the trainer also in the GPU
image when it is built). Prints a Markdown table and writes bench/results/images.json.
Build the images first: `tfkfp images build` and `tfkfp images build --gpu`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import zlib
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

from tfkfp import images

log = logging.getLogger("tfkfp.bench")

RESULTS = Path(__file__).resolve().parent / "results" / "images.json"
CPU_TARGET_BYTES = 2.5e9
TFX_IMAGE_BYTES = 12.3e9  # tensorflow/tfx 1.15.1, uncompressed (tensorflow/tfx issue 6921)
PUSHER_TARGET_S = 3.0


# pigz's method: independent 4 MiB deflate blocks, each primed with the 32 KiB before it, so
# the cores share the work and the size stays within 0.01% of one `gzip -6` stream.
BLOCK = 1 << 22
WINDOW = 1 << 15
GZIP_FRAMING = 18  # gzip header and trailer bytes


def _deflated_len(block: bytes, primer: bytes) -> int:
    packer = (
        zlib.compressobj(6, zlib.DEFLATED, -15, zdict=primer)
        if primer
        else zlib.compressobj(6, zlib.DEFLATED, -15)
    )
    return len(packer.compress(block)) + len(packer.flush(zlib.Z_SYNC_FLUSH))


def gzip_size(chunks: Iterable[bytes], label: str = "", workers: int | None = None) -> int:
    """Bytes `gzip -6` would make of the streamed `chunks`, nothing written.

    zlib releases the GIL while it compresses, so threads use every core.
    """
    workers = workers or os.cpu_count() or 1
    total, buffer, primer = GZIP_FRAMING, bytearray(), b""
    pending: deque[Future[int]] = deque()
    streamed = 0
    with ThreadPoolExecutor(workers) as pool:

        def submit(block: bytes) -> None:
            nonlocal primer, total
            pending.append(pool.submit(_deflated_len, block, primer))
            primer = block[-WINDOW:]
            while len(pending) > 2 * workers:  # bounded memory: a few blocks in flight
                total += pending.popleft().result()

        for chunk in chunks:
            buffer += chunk
            streamed += len(chunk)
            while len(buffer) >= BLOCK:
                submit(bytes(buffer[:BLOCK]))
                del buffer[:BLOCK]
            if streamed % (1 << 30) < len(chunk):
                log.info("bench: %s: %.1f GB read", label, streamed / 1e9)
        if buffer:
            submit(bytes(buffer))
        total += sum(f.result() for f in pending)
    return total


def image_sizes(
    client: Any, tag: str, previous: list[dict[str, Any]], recompress: bool = False
) -> dict[str, Any]:
    """Uncompressed and gzip sizes of `tag`; the gzip size is reused while its image ID holds."""
    image = client.images.get(tag)
    before = next((s for s in previous if s.get("image_id") == image.id), None)
    if before and not recompress:
        log.info("bench: %s unchanged (%s): gzip size from the last run", tag, image.id[:19])
        compressed = before["compressed_bytes"]
    else:
        log.info("bench: docker save %s | gzip", tag)
        compressed = gzip_size(client.api.get_image(tag, chunk_size=1 << 20), tag)
    return {
        "image": tag,
        "image_id": image.id,
        "uncompressed_bytes": image.attrs["Size"],
        "compressed_bytes": compressed,
    }


def _stage_args(work: Path, data: str) -> dict[str, dict[str, Any]]:
    from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG

    w = str(work)
    module = "tfkfp.pipelines.penguins.module"
    return {
        "ingest": {"data_uri": data, "examples_dir": f"{w}/examples", "schema_dir": f"{w}/schema"},
        "transform": {
            "examples_dir": f"{w}/examples",
            "schema_dir": f"{w}/schema",
            "module_file": module,
            "transform_graph_dir": f"{w}/graph",
            "transformed_examples_dir": f"{w}/transformed",
        },
        "trainer": {
            "examples_dir": f"{w}/transformed",
            "schema_dir": f"{w}/schema",
            "module_file": module,
            "model_dir": f"{w}/model",
            "model_run_dir": f"{w}/model_run",
            "transform_graph_dir": f"{w}/graph",
            "train_steps": 200,
            "eval_steps": 10,
        },
        "evaluator": {
            "model_dir": f"{w}/model",
            "examples_dir": f"{w}/examples",
            "eval_config": EVAL_CONFIG,
            "evaluation_dir": f"{w}/evaluation",
            "blessing_dir": f"{w}/blessing",
            "schema_dir": f"{w}/schema",
        },
        "pusher": {
            "model_dir": f"{w}/model",
            "blessing_dir": f"{w}/blessing",
            "destination": f"{w}/serving",
        },
    }


def cold_starts(client: Any, cpu_tag: str, gpu_tag: str | None) -> list[dict[str, Any]]:
    """Runs the five stages in turn, each in a fresh container; the trainer again on GPU."""
    rows = []
    work = Path(tempfile.mkdtemp(prefix="tfkfp-bench-images-"))
    try:
        # The containers run as a non-root user: the shared work folder must be writable.
        os.chmod(work, 0o777)
        data = work / "penguins.csv"
        shutil.copy(
            str(resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv"), data
        )
        plan = [(cpu_tag, stage, kwargs) for stage, kwargs in _stage_args(work, str(data)).items()]
        if gpu_tag:
            gpu_args = dict(_stage_args(work, str(data))["trainer"], model_dir=f"{work}/model_gpu")
            plan.append((gpu_tag, "trainer", gpu_args))
        for tag, stage, kwargs in plan:
            log.info("bench: %s in %s", stage, tag)
            result = images.run_stage(client, tag, stage, kwargs, mounts=[str(work)])
            if result.exit_code != 0:
                raise RuntimeError(f"{stage} failed in {tag}:\n{result.logs[-3000:]}")
            rows.append(
                {
                    "image": tag,
                    "stage": stage,
                    "cold_start_s": result.cold_start_s,
                    "total_s": result.seconds,
                }
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def report(sizes: list[dict[str, Any]], starts: list[dict[str, Any]]) -> str:
    """The results as Markdown tables, with the ratios to the targets and to TFX's image."""
    out = [
        "| image | uncompressed | compressed (gzip) | vs. 2.5 GB target | vs. TFX 12.3 GB |",
        "|---|---|---|---|---|",
    ]
    for s in sizes:
        out.append(
            f"| {s['image']} | {_gb(s['uncompressed_bytes'])} | "
            f"{_gb(s['compressed_bytes'])} | "
            f"{s['uncompressed_bytes'] / CPU_TARGET_BYTES:.2f}x | "
            f"{s['uncompressed_bytes'] / TFX_IMAGE_BYTES:.2f}x |"
        )
    out += [
        "",
        "| stage | image | cold start (start -> first log line) | whole run |",
        "|---|---|---|---|",
    ]
    for r in starts:
        first = "n/a" if r["cold_start_s"] is None else f"{r['cold_start_s']:.2f} s"
        out.append(f"| {r['stage']} | {r['image']} | {first} | {r['total_s']:.1f} s |")
    pusher = next((r for r in starts if r["stage"] == "pusher"), None)
    if pusher and pusher["cold_start_s"] is not None:
        ratio = pusher["cold_start_s"] / PUSHER_TARGET_S
        out += [
            "",
            f"pusher cold start {pusher['cold_start_s']:.2f} s = {ratio:.2f}x the "
            f"{PUSHER_TARGET_S:.0f} s target",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.images", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--cpu-tag", default=images.default_tag(gpu=False))
    parser.add_argument("--gpu-tag", default=images.default_tag(gpu=True))
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU image")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument(
        "--recompress", action="store_true", help="measure gzip sizes even for unchanged images"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import docker

    client = images.connect(timeout=3600)
    tags = [args.cpu_tag] + ([] if args.no_gpu else [args.gpu_tag])
    present = []
    for tag in tags:
        try:
            client.images.get(tag)
            present.append(tag)
        except docker.errors.ImageNotFound:
            if tag == args.cpu_tag:
                print(
                    f"bench.images: no image {tag}; build it with `tfkfp images build`",
                    file=sys.stderr,
                )
                return 2
            log.info("bench: no %s, skipping it (tfkfp images build --gpu)", tag)
    output = Path(args.output)
    previous = json.loads(output.read_text())["sizes"] if output.is_file() else []
    sizes = [image_sizes(client, tag, previous, args.recompress) for tag in present]
    gpu_tag = args.gpu_tag if args.gpu_tag in present else None
    starts = cold_starts(client, args.cpu_tag, gpu_tag)
    print(report(sizes, starts))
    output.parent.mkdir(parents=True, exist_ok=True)
    targets = {
        "cpu_uncompressed_bytes": CPU_TARGET_BYTES,
        "pusher_cold_start_s": PUSHER_TARGET_S,
        "tfx_image_bytes": TFX_IMAGE_BYTES,
    }
    results = {"sizes": sizes, "cold_starts": starts, "targets": targets}
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
