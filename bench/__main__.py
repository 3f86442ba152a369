"""`make bench`: every benchmark, then one table, JSON and chart in bench/results/."""

import logging
import sys
import time
from collections.abc import Callable

from bench import (
    RESULTS,
    big,
    cold_start,
    e2e,
    images,
    infer,
    multi_node,
    progress,
    report,
    scale,
    statistics,
    storage,
    tfx_peer,
    trainer,
    tuner,
    warm,
    write_json,
)
from tfkfp import images as tfkfp_images
from tfkfp.containers.runtime import InputError

SIZES = [15_000, 150_000, 1_500_000]


def preflight() -> None:
    """Fails in seconds, not after 25 minutes, when the image benchmark cannot run."""
    client = tfkfp_images.connect()
    tag = tfkfp_images.default_tag(gpu=False)
    if not client.images.list(name=tag):
        raise InputError(f"image {tag}: not built; run `make images` before `make bench`")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        preflight()
    except InputError as err:
        sys.exit(f"make bench: {err}")
    sections: dict[str, float] = {}
    started = time.perf_counter()
    steps: list[tuple[str, Callable[[], object]]] = [
        # TFX 1.16 beside tfkfp, 3 alternating pairs per pipeline (about 15 min here; the
        # first run installs TFX into .venv-tfx, about 6 min more); skipped without Python 3.10.
        ("against TFX", lambda: tfx_peer.main(["--pairs", "3"])),
        ("end to end", lambda: e2e.main(["penguins", "taxi"])),
        # Two pairs per pipeline (about 8 min): local run vs one warm process, <= 1.5x.
        ("warm vs one process", lambda: warm.main(["penguins", "taxi"])),
        ("cold starts (local process)", lambda: cold_start.main([])),
        ("scale", lambda: scale.main(SIZES)),
        # ingest, statistics, transform, evaluator, infer at 150k and 1.5M rows, one CPU vs all:
        # wall, cores used, peak RSS of the process tree (15M rows: `python -m bench.big`).
        ("at scale, one core vs all", lambda: big.main(SIZES[1:])),
        ("trainer", lambda: trainer.main([])),
        ("tuner", lambda: tuner.main([])),
        # 1, 2 and 4 trainer processes on loopback, and the launcher's own overhead (about 15 min)
        ("multi-node (loopback)", lambda: multi_node.main([])),
        ("statistics", lambda: statistics.main(SIZES)),
        # infer vs RunInference at each size, then infra_validate on the demo model.
        ("infer", lambda: infer.main(["--sizes", ",".join(map(str, SIZES))])),
        # One run per source (about 3 x 45 s): the 1.3x target has a wide margin here.
        ("storage", lambda: storage.main(SIZES[-1], reps=1)),
        ("images", lambda: images.main([])),
        # Two demos of each kind (about 2.5 min): with and without the progress display.
        ("progress display", lambda: progress.main([])),
    ]
    for name, step in steps:
        began = time.perf_counter()
        outcome = step()
        if isinstance(outcome, int) and outcome != 0:  # the command-style ones return a code
            sys.exit(f"make bench: the {name} benchmark failed (exit {outcome})")
        sections[name] = round(time.perf_counter() - began, 1)
        logging.info("bench: %s took %.0f s", name, sections[name])
    write_json(
        RESULTS / "run.json",
        {"sections_s": sections, "total_s": round(time.perf_counter() - started, 1)},
    )
    report.main()


if __name__ == "__main__":
    main()
