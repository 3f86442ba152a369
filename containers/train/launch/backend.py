"""The Backend interface: one submitted job (submit, state, cancel, failed worker, chief's log).

`run_job` is what every backend shares: submit, cancel on SIGTERM (a cancelled run), wait.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from tfkfp.containers.runtime import InputError, log

BACKENDS = ("jobset", "trainjob", "vertex")

# Every call to a cluster's API (Kubernetes, Vertex AI, a token endpoint) waits this long at most.
API_TIMEOUT_ENV = "TFKFP_API_TIMEOUT"
API_TIMEOUT = 60.0


def api_timeout() -> float:
    """Seconds one API call may wait for its answer (TFKFP_API_TIMEOUT, default 60)."""
    text = os.environ.get(API_TIMEOUT_ENV, "")
    try:
        value = float(text) if text else API_TIMEOUT
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:  # NaN fails too
        raise InputError(f"{API_TIMEOUT_ENV}: expected seconds above 0, got {text!r}")
    return value


def unreachable(what: str, where: str, err: BaseException, timeout: float) -> InputError:
    """One line for an API that refused the connection or did not answer in time."""
    text = f"{type(err).__name__} {err}".lower()
    if "timed out" in text or "timeout" in text:
        return InputError(
            f"backend: {what} at {where} did not answer within {timeout:g} s "
            f"({API_TIMEOUT_ENV} sets the bound)"
        )
    reason = getattr(err, "reason", None) or err
    detail = " ".join(str(reason).split())[:200]
    return InputError(f"backend: cannot reach {what} at {where}: {detail}")


class JobFailed(RuntimeError):
    """The job ran and failed (not a user input error: exit 1)."""


class Backend:
    """One submitted job of some backend; `run_job` waits for it and cancels it on SIGTERM."""

    kind = "job"
    name = ""

    def submit(self) -> None:
        """Creates the job; an earlier attempt's job (same task) is cancelled first."""
        raise NotImplementedError

    def state(self) -> tuple[str, str]:
        """("running" | "succeeded" | "failed", the job's own message)."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stops the job (and its pods or replicas) and waits until it has."""
        raise NotImplementedError

    def failed_worker_line(self) -> str:
        """The failed worker's last error line, when the backend can tell."""
        return ""

    def stream_chief(self, stop: threading.Event) -> None:
        """Copies the chief's log lines into this task's log, when the backend can."""

    def answering(self) -> Any:
        """A context turning the backend's unreachable API into one line (default: none)."""
        import contextlib

        return contextlib.nullcontext()

    def wait(self, poll: float = 5.0) -> str:
        """Waits for the end; returns the success message or raises with the failure's."""
        stop = threading.Event()
        self.ended = threading.Event()  # a streamer still looking for the chief's pod gives up
        streamer = threading.Thread(target=self._stream_quietly, args=(stop,), daemon=True)
        streamer.start()
        try:
            while True:
                state, message = self.state()
                if state == "succeeded":
                    self.ended.set()
                    streamer.join(timeout=30)  # the chief's last lines, before we return
                    return message
                if state == "failed":
                    worker = self.failed_worker_line()
                    raise JobFailed(
                        f"{self.kind} {self.name} failed: {message}"
                        + (f"; {worker}" if worker else "")
                    )
                time.sleep(poll)
        finally:
            stop.set()

    def _stream_quietly(self, stop: threading.Event) -> None:
        try:
            self.stream_chief(stop)
        except Exception as err:  # the log copy is a convenience; the job's state decides
            log.warning("could not stream the chief's log: %s", err)


def run_job(job: Backend) -> str:
    """Submits the job, cancels it on SIGTERM (a cancelled run), waits for its end."""
    previous = signal.getsignal(signal.SIGTERM)

    def cancelled(signum, frame):
        log.info("cancelled: stopping %s %s", job.kind, job.name)
        job.cancel()
        raise SystemExit(143)

    # installed before the job exists: a cancel between submitting and waiting must delete it
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, cancelled)
    try:
        with job.answering():
            job.submit()
            return job.wait()
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
