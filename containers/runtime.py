"""The process contract every stage shares: logging, input errors, the entrypoint, Keras flavour.

Imports nothing of the project and nothing heavy (the pusher must start without TensorFlow),
so any module may import it. Outputs are published by containers/store/publish.py, Beam options and
locations live in containers/store/beam.py.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("tfkfp")

T = TypeVar("T")

KERAS_FLAVOURS = ("tf_keras", "keras3")


class _CurrentStderr(logging.StreamHandler):
    """Writes to the `sys.stderr` of the moment, not the one at set-up.

    A stream kept from set-up may since have been closed or replaced (a redirect, a test's
    capture); logging would then print its own traceback in place of the record.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class InputError(ValueError):
    """Bad user input: reported as one line naming the input, exit code 2."""


def setup_logging(level: int = logging.INFO) -> None:
    """Configures stdlib logging once per process (the stage entrypoint calls it)."""
    root = logging.getLogger()
    if getattr(root, "_tfkfp_configured", False):
        return
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[_CurrentStderr()],
        force=True,
    )
    # TF's C++ INFO chatter drowns our progress lines; warnings and errors stay.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    root._tfkfp_configured = True  # type: ignore[attr-defined]


def entrypoint(stage: Callable[..., T], /, **kwargs: Any) -> T:
    """Runs a stage as a process entrypoint: logging on, input errors as one line and exit 2.

    Component bodies call this so a KFP task prints `error: <input>: <what was expected>`
    instead of a traceback for bad input; real failures keep their traceback.
    """
    setup_logging()
    try:
        result = stage(**kwargs)
    except InputError as err:
        one_line = " ".join(str(err).splitlines())  # a library's message may span lines
        print(f"error: {one_line}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except Exception as err:
        # Raised in the user's module (preprocessing_fn, run_fn, tuner_fn): its traceback in
        # the log, then one line naming the function and the module's line. Looked up, not
        # imported: only a stage that loaded a module file can have failed in one.
        user_module = sys.modules.get("tfkfp.containers.model.user_module")
        try:
            line = user_module.failure_line(err) if user_module is not None else None
        except Exception:  # describing it must never hide the failure itself
            line = None
        if line is None:
            raise
        log.error("the module file's code failed:", exc_info=True)
        print(f"error: {' '.join(line.splitlines())}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    if os.environ.get("_KFP_RUNTIME") == "true" and sys.argv[0].endswith("executor_main.py"):
        atexit.register(_exit_without_teardown)
    return result


def _exit_without_teardown() -> None:
    """Ends a successful KFP task without tearing down TF/Beam/TFMA (1.5-3 s per stage).

    Registered only after the stage succeeded inside KFP's executor, so it runs first at exit,
    after the executor wrote its outputs. An unhandled exception (sys.last_value) keeps the
    normal exit path and its non-zero code.
    """
    if getattr(sys, "last_value", None) is not None:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def without_nulls(value: Any) -> Any:
    """`value` with every None left out of its dicts and lists, for KFP artifact metadata.

    KFP's backend launcher converts artifact metadata to protobuf Values and has no case for
    null: the task fails when it records the artifact (kfp.local accepts it).
    """
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [without_nulls(v) for v in value if v is not None]
    return value


def metric_name(*parts: str) -> str:
    """A metric's name as KFP's Metrics artifact and MLflow (KFP 2.17 logs them there) both
    take it: parts joined by '/', characters MLflow refuses (`=`, `;`, ...) as '_'."""
    import re

    return re.sub(r"[^\w.\- /:]", "_", "/".join(p for p in parts if p))


def select_keras(flavour: str = "tf_keras") -> None:
    """Chooses tf.keras's flavour before TensorFlow is imported in this process.

    tf.Transform sets TF_USE_LEGACY_KERAS=1 when it is unset, so the choice is always made
    explicitly here rather than left to import order.
    """
    if flavour not in KERAS_FLAVOURS:
        raise InputError(f"keras: expected one of {', '.join(KERAS_FLAVOURS)}, got {flavour!r}")
    wanted = "1" if flavour == "tf_keras" else "0"
    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS", "0") != wanted:
        raise RuntimeError(
            f"Keras flavour {flavour!r} requested after TensorFlow was imported with the other one; "
            "run the stage in a fresh process"
        )
    os.environ["TF_USE_LEGACY_KERAS"] = wanted
