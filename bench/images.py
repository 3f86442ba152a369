"""Image sizes and per-stage cold starts of the tfkfp images: `python -m bench.images`.

Sizes: uncompressed (the engine's image size) and compressed: each layer as a tarball gzipped at
level 6, summed, as a registry stores the image (deflated in parallel blocks the way pigz does).
Layers are content-addressed, so a layer's size is reused from the previous results while its
diff ID is unchanged (`--recompress` measures every layer again).
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
import tarfile
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
# Process start to a stage's first log line: its libraries load after its inputs are checked.
COLD_START_TARGET_S = 2.0
COLD_START_TARGETS_S = {"transform": 3.5, "evaluator": 3.5}


def cold_start_target(stage: str) -> float:
    """The cold start target of a stage, in seconds."""
    return COLD_START_TARGETS_S.get(stage, COLD_START_TARGET_S)


# pigz's method: independent 4 MiB deflate blocks, each primed with the 32 KiB before it, so
# the cores share the work and the size stays within 0.1% of one `gzip -6` stream.
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


class GzipCounter:
    """A write-only sink that counts the bytes `gzip -6` would make of what it is given.

    zlib releases the GIL while it compresses, so its threads use every core.
    """

    def __init__(self, workers: int | None = None):
        self._workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self._workers)
        self._pending: deque[Future[int]] = deque()
        self._buffer = bytearray()
        self._primer = b""
        self.size = GZIP_FRAMING
        self.read = 0

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.read += len(data)
        while len(self._buffer) >= BLOCK:
            self._submit(bytes(self._buffer[:BLOCK]))
            del self._buffer[:BLOCK]
        return len(data)

    def _submit(self, block: bytes) -> None:
        self._pending.append(self._pool.submit(_deflated_len, block, self._primer))
        self._primer = block[-WINDOW:]
        while len(self._pending) > 2 * self._workers:  # bounded memory: a few blocks in flight
            self.size += self._pending.popleft().result()

    def close(self) -> int:
        """Compresses the rest; returns the gzip size."""
        if self._buffer:
            self._submit(bytes(self._buffer))
            self._buffer = bytearray()
        while self._pending:
            self.size += self._pending.popleft().result()
        self._pool.shutdown()
        return self.size


def gzip_size(chunks: Iterable[bytes], workers: int | None = None) -> int:
    """Bytes `gzip -6` would make of the streamed `chunks`, nothing written."""
    counter = GzipCounter(workers)
    for chunk in chunks:
        counter.write(chunk)
    return counter.close()


def _layer_dirs(attrs: dict[str, Any]) -> list[Path] | None:
    """The image's overlay2 layer folders, base first, or None when they cannot be read here."""
    driver = attrs.get("GraphDriver") or {}
    data = driver.get("Data") or {}
    if driver.get("Name") != "overlay2" or "UpperDir" not in data:
        return None
    lower = [Path(d) for d in reversed(data.get("LowerDir", "").split(":")) if d]
    dirs = [*lower, Path(data["UpperDir"])]
    readable = all(os.access(d, os.R_OK | os.X_OK) for d in dirs)
    return dirs if readable and len(dirs) == len(attrs["RootFS"]["Layers"]) else None


def layer_gzip_size(folder: Path) -> int:
    """Bytes of the folder as a gzipped layer tarball, the form a registry stores."""
    counter = GzipCounter()
    with tarfile.open(fileobj=counter, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(folder)):
            tar.add(folder / entry, arcname=entry)
    return counter.close()


def compressed_size(client: Any, tag: str, known: dict[str, int]) -> tuple[int, str]:
    """The gzip size of `tag` and how it was measured.

    Per layer when the engine's layer folders are readable (as a registry stores the image): a
    layer is content-addressed by its diff ID, so `known` sizes from earlier runs are reused and
    only new layers, usually just the source layer, are compressed. Otherwise the whole
    `docker save` archive is compressed.
    """
    attrs = client.images.get(tag).attrs
    dirs = _layer_dirs(attrs)
    if dirs is None:
        log.info("bench: %s: layer folders unreadable; docker save | gzip", tag)
        return gzip_size(client.api.get_image(tag, chunk_size=1 << 20)), "docker save | gzip"
    total = 0
    for i, (diff_id, folder) in enumerate(zip(attrs["RootFS"]["Layers"], dirs, strict=True)):
        if diff_id not in known:
            known[diff_id] = layer_gzip_size(folder)
            how = "compressed"
        else:
            how = "known from an earlier run"
        log.info(
            "bench: %s layer %d/%d %s: %.3f GB gzip (%s)",
            tag, i + 1, len(dirs), diff_id[7:19], known[diff_id] / 1e9, how,
        )  # fmt: skip
        total += known[diff_id]
    return total, "sum of gzipped layers"


def stage_args(work: Path, data: str) -> dict[str, dict[str, Any]]:
    """Every stage's arguments in pipeline order, each reading the outputs of the ones before."""
    from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG

    w = str(work)
    module = "tfkfp.pipelines.penguins.module"
    return {
        "fingerprint": {"data_uri": data},
        "ingest": {"data_uri": data, "examples": f"{w}/examples", "schema": f"{w}/schema"},
        "statistics": {
            "examples": f"{w}/examples",
            "statistics": f"{w}/statistics",
            "view": f"{w}/statistics.html",
        },
        "validate": {
            "statistics": f"{w}/statistics",
            "schema": f"{w}/schema",
            "anomalies": f"{w}/anomalies",
            "report": f"{w}/anomalies.md",
        },
        "transform": {
            "examples": f"{w}/examples",
            "schema": f"{w}/schema",
            "module_file": module,
            "transform_graph": f"{w}/graph",
            "transformed_examples": f"{w}/transformed",
        },
        "trainer": {
            "examples": f"{w}/transformed",
            "schema": f"{w}/schema",
            "module_file": module,
            "model": f"{w}/model",
            "model_run": f"{w}/model_run",
            "curves": f"{w}/curves.html",
            "transform_graph": f"{w}/graph",
            "train_steps": 200,
            "eval_steps": 10,
        },
        "evaluator": {
            "model": f"{w}/model",
            "examples": f"{w}/examples",
            "eval_config": EVAL_CONFIG,
            "evaluation": f"{w}/evaluation",
            "blessing": f"{w}/blessing",
            "report": f"{w}/report.md",
            "slice_chart": f"{w}/slices.html",
            "schema": f"{w}/schema",
        },
        "pusher": {
            "model": f"{w}/model",
            "blessing": f"{w}/blessing",
            "destination": f"{w}/serving",
        },
    }


def cold_starts(client: Any, cpu_tag: str, gpu_tag: str | None) -> list[dict[str, Any]]:
    """Runs every stage in turn, each in a fresh container; the trainer again on GPU."""
    rows = []
    work = Path(tempfile.mkdtemp(prefix="tfkfp-bench-images-"))
    try:
        # The containers run as a non-root user: the shared work folder must be writable.
        os.chmod(work, 0o777)
        data = work / "penguins.csv"
        shutil.copy(
            str(resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv"), data
        )
        plan = [(cpu_tag, stage, kwargs) for stage, kwargs in stage_args(work, str(data)).items()]
        if gpu_tag:
            gpu_args = dict(stage_args(work, str(data))["trainer"], model=f"{work}/model_gpu")
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
        "| stage | image | cold start (start -> first log line) | target | whole run |",
        "|---|---|---|---|---|",
    ]
    for r in starts:
        first = "n/a" if r["cold_start_s"] is None else f"{r['cold_start_s']:.2f} s"
        target = f"≤ {cold_start_target(r['stage'])} s"
        out.append(f"| {r['stage']} | {r['image']} | {first} | {target} | {r['total_s']:.1f} s |")
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
    parser.add_argument("--recompress", action="store_true", help="compress every layer again")
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
    previous = json.loads(output.read_text()) if output.is_file() else {}
    known = {} if args.recompress else dict(previous.get("layer_gzip_bytes", {}))
    sizes = []
    for tag in present:
        compressed, method = compressed_size(client, tag, known)
        sizes.append(
            {
                "image": tag,
                "uncompressed_bytes": client.images.get(tag).attrs["Size"],
                "compressed_bytes": compressed,
                "compressed_as": method,
            }
        )
    gpu_tag = args.gpu_tag if args.gpu_tag in present else None
    starts = cold_starts(client, args.cpu_tag, gpu_tag)
    print(report(sizes, starts))
    output.parent.mkdir(parents=True, exist_ok=True)
    targets = {
        "cpu_uncompressed_bytes": CPU_TARGET_BYTES,
        "pusher_cold_start_s": PUSHER_TARGET_S,
        "cold_start_s": {s: cold_start_target(s) for s in stage_args(Path("/"), "")},
        "tfx_image_bytes": TFX_IMAGE_BYTES,
    }
    results = {
        "sizes": sizes,
        "cold_starts": starts,
        "targets": targets,
        # Only the layers of the images measured now, so replaced layers do not pile up.
        "layer_gzip_bytes": {
            d: known[d]
            for tag in present
            for d in client.images.get(tag).attrs["RootFS"]["Layers"]
            if d in known
        },
    }
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
