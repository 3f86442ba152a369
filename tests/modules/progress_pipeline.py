"""A pipeline of two quick stages that log like tfkfp's (no TensorFlow): progress-display tests.

`ingest` prints TensorFlow-like start-up chatter and reads in three steps; `trainer` trains for
three epochs and fails on request, so the display's failure path runs too.
"""

from kfp import dsl


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def ingest(rows: int) -> int:
    import logging
    import sys
    import time

    print("I0000 00:00:1.0 port.cc:153] oneDNN custom operations are on.", file=sys.stderr)
    print("E0000 00:00:1.0 cuda_platform.cc:52] failed call to cuInit: CUDA error", file=sys.stderr)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("tfkfp")
    for i in range(1, 4):
        log.info("ingest: read %d/3 files, %.1f/3.0 MB, %d rows", i, float(i), i * rows // 3)
        time.sleep(0.6)
    log.info("ingest: wrote train=%d, eval=%d", rows * 2 // 3, rows // 3)
    return rows


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def trainer(rows: int, fail: bool) -> float:
    import logging
    import time

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("tfkfp")
    loss = 1.0
    for epoch in range(1, 4):
        time.sleep(0.6)
        loss /= 2
        log.info("trainer: epoch %d/3: loss=%.4f, accuracy=%.3f", epoch, loss, 1 - loss)
    if fail:
        raise ValueError("trainer gave up on purpose (the test's failing stage)")
    return loss


@dsl.pipeline(name="progress-demo")
def progress_demo(rows: int = 300, fail: bool = False):
    data = ingest(rows=rows)
    trainer(rows=data.output, fail=fail)
