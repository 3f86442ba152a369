"""A pipeline of two quick stages that report like tfkfp's (no TensorFlow): progress-display tests.

`ingest` prints TensorFlow-like start-up chatter and reads in three steps; `trainer` trains for
three epochs and fails on request, so the display's failure path runs too.
"""

from kfp import dsl


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def ingest(rows: int) -> int:
    import sys
    import time

    print("I0000 00:00:1.0 port.cc:153] oneDNN custom operations are on.", file=sys.stderr)
    print("E0000 00:00:1.0 cuda_platform.cc:52] failed call to cuInit: CUDA error", file=sys.stderr)
    from tfkfp.containers import events
    from tfkfp.containers.runtime import setup_logging

    setup_logging()
    events.PROGRESS_EVERY = 0.0  # a report per file
    progress = events.Progress(
        "ingest",
        "read {files}/{files_total} files, {done_mb:.1f}/{total_mb:.1f} MB, {rows} rows",
        total=3_000_000,
        files_total=3,
        detail="{rows:,} rows",
    )
    for _ in range(3):
        progress.add(1_000_000, files=1, rows=rows // 3)
        time.sleep(0.6)
    counts = {"train": rows * 2 // 3, "eval": rows // 3}
    events.result(
        "ingest",
        "wrote train=%d, eval=%d",
        *counts.values(),
        summary="rows " + events.figures(counts),
        rows=counts,
    )
    return rows


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def trainer(rows: int, fail: bool) -> float:
    import time

    from tfkfp.containers import events
    from tfkfp.containers.runtime import setup_logging

    setup_logging()
    loss = 1.0
    for epoch in range(1, 4):
        time.sleep(0.6)
        loss /= 2
        figures = {"loss": loss, "accuracy": 1 - loss}
        events.progress(
            "trainer",
            "epoch %d/3: loss=%.4f, accuracy=%.3f",
            epoch,
            loss,
            1 - loss,
            completed=epoch,
            total=3,
            detail=f"epoch {epoch}/3  {events.figures(figures)}",
            summary=events.figures(figures),
        )
    if fail:
        raise ValueError("trainer gave up on purpose (the test's failing stage)")
    return loss


@dsl.pipeline(name="progress-demo")
def progress_demo(rows: int = 300, fail: bool = False):
    data = ingest(rows=rows)
    trainer(rows=data.output, fail=fail)
