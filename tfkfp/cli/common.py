"""What every command group shares: the usage error and the runtime check."""

from __future__ import annotations

import importlib
import importlib.util

VERBOSE_HELP = (
    "stream every task's output (TensorFlow's start-up messages, kfp's executor input) as it "
    "comes; by default one line per stage, the full output in the run folder's logs/"
)


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


# What the stages import when they run in this process (kfp.local's SubprocessRunner).
RUNTIME_MODULES = ("tensorflow", "tensorflow_transform", "tensorflow_model_analysis", "apache_beam")


def require_runtime(command: str) -> None:
    """Fails in one line when the TensorFlow stack (the `runtime` extra) is not installed.

    Only looks the modules up (no import): TensorFlow alone takes seconds to import.
    """
    missing = [m for m in RUNTIME_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"{command}: runs the stages in this environment, which lacks {', '.join(missing)}; "
            "install them with: pip install 'tfkfp[runtime]'"
        )
