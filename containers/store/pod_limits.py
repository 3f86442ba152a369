"""How many local workers this pod can run: its CPU and memory limits, read from its cgroup.

Kubernetes puts a container's `resources.limits` in its cgroup: `cpu.max` and `memory.max` on
cgroup v2, `cpu.cfs_quota_us`/`cpu.cfs_period_us` and `memory.limit_in_bytes` on v1. The CPU
count is the quota, then the CPU affinity (`sched_getaffinity`, which cpusets and `taskset`
narrow); never `os.cpu_count()`, which is the node's (Beam's `direct_num_workers=0` means that
too: one process per node core, tfx#1376). Each worker is a process that loads TensorFlow and
the stage's libraries, so the memory limit bounds the count as well.

Every reader takes `root` (the cgroup mount) and `self_cgroup` (this process's cgroup list) so
tests give a file tree of their own. Imports nothing heavy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from tfkfp.containers.runtime import InputError, log

CGROUP_ROOT = "/sys/fs/cgroup"
SELF_CGROUP = "/proc/self/cgroup"
# One Beam worker process: importing TensorFlow, tf.Transform, TFMA and Beam takes most of a
# GB of RSS here (bench/scale.py measures whole stages); the rest is bundles in flight.
WORKER_BYTES = 3 << 29  # 1.5 GiB
# A worker process costs seconds to start (TensorFlow imports) and most of a GB: below this many
# rows per worker the extra processes cost more than they save. Transform here, 2 workers vs 1
# (bench/results/transform_workers.json): slower at 150k rows, faster at 1.5M; even near 500k.
ROWS_PER_WORKER = 250_000
# v1 writes "no limit" as a huge page-aligned number rather than "max".
_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class Limits:
    """The pod's limits as found; None where none is set or none could be read."""

    cpus: float | None  # quota / period, or the affinity's CPU count
    memory: int | None  # bytes
    source: str  # where the CPU figure came from, for the log line


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _own_paths(self_cgroup: str) -> dict[str, str]:
    """{controller: this process's cgroup path} from /proc/self/cgroup ("" for v2)."""
    paths: dict[str, str] = {}
    for line in (_read(self_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]
    return paths


def _candidates(root: str, controller: str, own: str | None, name: str) -> list[str]:
    """Where a controller's file may be: this process's own cgroup first, then the mount's top
    (inside a container with a cgroup namespace the top is the container's own)."""
    base = os.path.join(root, controller) if controller else root
    found = [os.path.join(base, own.lstrip("/"), name)] if own and own != "/" else []
    return [*found, os.path.join(base, name)]


def _first(paths: list[str]) -> str | None:
    for path in paths:
        text = _read(path)
        if text is not None:
            return text
    return None


def _cpu_quota(root: str, own: dict[str, str]) -> tuple[float | None, bool]:
    """(CPUs by quota or None when unlimited, whether any cgroup CPU file was found)."""
    text = _first(_candidates(root, "", own.get(""), "cpu.max"))
    if text is not None:  # v2: "<quota> <period>" or "max <period>"
        quota, _, period = text.partition(" ")
        if quota == "max":
            return None, True
        try:
            return int(quota) / int(period or 100_000), True
        except (ValueError, ZeroDivisionError):
            return None, False
    for controller in ("cpu", "cpu,cpuacct"):
        own_path = own.get("cpu")
        quota = _first(_candidates(root, controller, own_path, "cpu.cfs_quota_us"))
        period = _first(_candidates(root, controller, own_path, "cpu.cfs_period_us"))
        if quota is not None and period is not None:
            try:
                q, p = int(quota), int(period)
            except ValueError:
                return None, False
            return (q / p if q > 0 and p > 0 else None), True
    return None, False


def _memory(root: str, own: dict[str, str]) -> tuple[int | None, bool]:
    """(memory limit in bytes or None when unlimited, whether any cgroup memory file was found)."""
    text = _first(_candidates(root, "", own.get(""), "memory.max"))
    if text is None:
        text = _first(_candidates(root, "memory", own.get("memory"), "memory.limit_in_bytes"))
    if text is None:
        return None, False
    if text == "max":
        return None, True
    try:
        value = int(text)
    except ValueError:
        return None, False
    return (value if value < _UNLIMITED else None), True


def _affinity() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return None


def limits(root: str | None = None, self_cgroup: str | None = None) -> Limits:
    """The pod's CPU and memory limits from its cgroup (v2, else v1) and CPU affinity.

    Args:
        root: The cgroup mount, CGROUP_ROOT if None (tests pass a file tree of their own).
        self_cgroup: This process's cgroup list, SELF_CGROUP if None.
    """
    root = root or CGROUP_ROOT
    own = _own_paths(self_cgroup or SELF_CGROUP)
    quota, cpu_found = _cpu_quota(root, own)
    memory, _ = _memory(root, own)
    affinity = _affinity()
    if quota is not None:
        cpus = min(quota, affinity) if affinity else quota
        return Limits(cpus, memory, "cgroup CPU quota" if cpus == quota else "CPU affinity")
    if not cpu_found:
        return Limits(None, memory, "no cgroup CPU information")
    return Limits(affinity, memory, "CPU affinity (no cgroup CPU quota)")


def workers(
    per_worker: int = WORKER_BYTES,
    root: str | None = None,
    self_cgroup: str | None = None,
    what: str = "beam_pipeline_args",
    rows: int | None = None,
) -> int:
    """Local workers for this pod: its whole CPUs, as many as its memory limit holds.

    Args:
        per_worker: Estimated bytes one worker process takes.
        rows: Rows the stage will read, when known: one worker per ROWS_PER_WORKER at most.
        root: The cgroup mount, CGROUP_ROOT if None.
        self_cgroup: This process's cgroup list, SELF_CGROUP if None.
        what: The input the error names.

    Raises:
        InputError: when the memory limit is below one worker's estimate.
    """
    found = limits(root, self_cgroup)
    if found.cpus is None:
        log.info("pod: %s; running 1 worker", found.source)
        count = 1
    elif found.cpus < 1:
        log.info("pod: CPU limit %.2f (below 1, %s); running 1 worker", found.cpus, found.source)
        count = 1
    else:
        count = max(1, math.floor(found.cpus + 1e-9))
    if found.memory is not None:
        # One share for the stage's own process, which keeps the pipeline and its results.
        fits = found.memory // per_worker
        if fits < 1:
            raise InputError(
                f"{what}: the pod's memory limit {found.memory / 2**30:.2f} GiB is below one "
                f"worker's estimate {per_worker / 2**30:.2f} GiB; raise the task's memory limit "
                "(set_memory_limit) or pass --direct_num_workers=1 to run regardless"
            )
        fits = max(1, fits - 1) if count > 1 else 1
        if fits < count:
            log.info(
                "pod: memory limit %.2f GiB holds %d worker(s) of %.2f GiB (of %d CPUs)",
                found.memory / 2**30,
                fits,
                per_worker / 2**30,
                count,
            )
            count = int(fits)
    if rows is not None and count > 1 and rows < count * ROWS_PER_WORKER:
        by_rows = max(1, rows // ROWS_PER_WORKER)
        log.info(
            "pod: %d rows: %d worker(s) (one per %d rows at most)", rows, by_rows, ROWS_PER_WORKER
        )
        count = by_rows
    return count
