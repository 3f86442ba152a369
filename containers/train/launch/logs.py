"""The chief's log, copied into the launcher task's log as the pod writes it (Kubernetes)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

# The chief of a JobSet (a TrainJob runs one too): job 0's pod of completion index 0.
CHIEF_SELECTOR = "batch.kubernetes.io/job-completion-index=0,jobset.sigs.k8s.io/job-index=0"


def print_lines(chunks: Iterable[bytes], stop: threading.Event, prefix: str = "[chief] ") -> None:
    """Prints whole lines of a byte stream (a chunk can end inside a line) until it ends."""
    pending = b""
    for chunk in chunks:
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            print(f"{prefix}{line.decode(errors='replace').rstrip()}", flush=True)
        if stop.is_set():
            break
    if pending.strip():
        print(f"{prefix}{pending.decode(errors='replace').rstrip()}", flush=True)


def follow_chief(
    core: Any,
    namespace: str,
    pods: Callable[[str], list],
    stop: threading.Event,
    ended: threading.Event,
    connect_timeout: float,
) -> None:
    """Copies the chief pod's log lines until the pod ends.

    Args:
        core: A kubernetes CoreV1Api.
        namespace: The job's namespace.
        pods: The job's pods matching an extra label selector.
        stop: Set when the launcher stops waiting.
        ended: Set when the job ended (a streamer still looking for the chief gives up).
        connect_timeout: Seconds to connect; a followed log may stay silent as the chief does.
    """
    while True:  # one last look once the job ended: its chief may have just appeared
        done = stop.is_set() or ended.is_set()
        found = [p for p in pods(CHIEF_SELECTOR) if p.status and p.status.phase != "Pending"]
        if found:
            break
        if done:
            return
        ended.wait(2.0)
    resp = core.read_namespaced_pod_log(
        found[0].metadata.name,
        namespace,
        follow=True,
        _preload_content=False,
        _request_timeout=(connect_timeout, None),
    )
    print_lines(resp.stream(), stop)
