"""Multi-node trainer and tuner: the KFP task launches a JobSet, a TrainJob or a Vertex CustomJob.

With `workers > 1` the trainer's (or tuner's) KFP task is a launcher: `launch` builds the job
(from the manifests shipped in tfkfp/manifests/, or Vertex worker pools), submits it (the
`kubernetes` client, or Vertex AI's REST API through google-auth), streams the chief's log
lines (Kubernetes), waits, and fails with the job's own reason in one line. Each backend is a
module behind one interface (`Backend`: submit, state, cancel, the failed worker's line, the
chief's log; a `job(...)` that builds it): `jobset`, `trainjob`, `vertex`; `kube` is what the
two Kubernetes ones share, `pods` what their pods take from the task's pod and KFP TaskConfig,
`logs` the chief's log, `worker` what each pod runs
(`python -m tfkfp.containers.train.launch worker <stage> <json>`). The launcher pod never
needs the data.

The job's name is derived from the model artifact's URI, so a retried task finds the job of
its earlier attempt and deletes it before submitting again: no two jobs write one artifact.
SIGTERM (a cancelled run) deletes the job too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from tfkfp.containers import events
from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.train.launch import jobset, trainjob, vertex, worker
from tfkfp.containers.train.launch.backend import (
    API_TIMEOUT_ENV,
    BACKENDS,
    Backend,
    JobFailed,
    api_timeout,
    run_job,
)
from tfkfp.containers.train.launch.manifests import job_name
from tfkfp.containers.train.launch.pods import TaskConfig

__all__ = [
    "API_TIMEOUT_ENV",
    "BACKENDS",
    "Backend",
    "ChiefResult",
    "JobFailed",
    "LaunchResult",
    "TaskConfig",
    "api_timeout",
    "check",
    "launch",
    "run_job",
]

# Each Kubernetes backend's custom resource (the tests check them against the vendored CRDs).
CRDS = {"jobset": jobset.CRD, "trainjob": trainjob.CRD}
# backend -> its job(name, command, workers, gpus, image, namespace, api_client, task_config)
_JOBS = {"jobset": jobset.job, "trainjob": trainjob.job, "vertex": vertex.job}

R = TypeVar("R", bound="ChiefResult")


class ChiefResult(Protocol):
    """A stage's run() result as the chief writes it and the launcher reads it back."""

    def to_json(self) -> str: ...

    @classmethod
    def from_json(cls: type[R], text: str) -> R: ...


T = TypeVar("T")


@dataclass
class LaunchResult(Generic[T]):
    """A multi-node job that ran: what the component records, and the chief's run() result."""

    workers: int
    backend: str
    job: str
    result: T  # the chief's run() result, as the stage's own dataclass

    def job_metadata(self) -> dict[str, Any]:
        """The job's facts (not the chief's result), for artifact metadata."""
        return {"workers": self.workers, "backend": self.backend, "job": self.job}


def check(workers: int, backend: str, gpus_per_node: int = 0, task_config: Any = None) -> None:
    """Fails on a worker count below 1, an unknown backend, a negative GPU count, or a KFP
    TaskConfig carrying values that a launch on Vertex could not apply.

    The stages call it first, with `workers=1` too: a wrong value is refused the same way
    whether or not this task would have launched anything (a TaskConfig with one worker
    applies to the task's own pod, so it is refused only for a launch).
    """
    if workers < 1:
        raise InputError(f"workers: expected 1 or more nodes, got {workers}")
    if backend not in BACKENDS:
        raise InputError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if gpus_per_node < 0:
        raise InputError(f"gpus_per_node: expected 0 or more, got {gpus_per_node}")
    if workers > 1 and backend == "vertex":
        vertex.check_task_config(TaskConfig.of(task_config))


def launch(
    stage: str,
    workers: int,
    backend: str,
    kwargs: dict[str, Any],
    result_type: type[R],
    gpus_per_node: int = 0,
    image: str | None = None,
    namespace: str | None = None,
    api_client=None,
    task_config: Any = None,
) -> LaunchResult[R]:
    """Submits `stage` on `workers` nodes and waits for the chief's outputs.

    Args:
        stage: trainer or tuner.
        workers: Nodes (pods, replicas), each running the stage; worker 0 is the chief.
        backend: jobset, trainjob or vertex.
        kwargs: The stage's run() arguments, artifacts as object-store URIs.
        result_type: The stage's result dataclass (`from_json` reads what the chief wrote).
        gpus_per_node: GPUs of each node (nvidia.com/gpu limit; Vertex accelerator count).
        image: The workers' image (default: this pod's; on Vertex, TFKFP_IMAGE's).
        namespace: Where the job runs (default: this pod's namespace; not for Vertex).
        api_client: A kubernetes ApiClient (default: the in-cluster configuration), or for
            vertex an authorized requests session (default: google-auth's credentials).
        task_config: KFP's TaskConfig for this task (kfp.dsl.TaskConfig, or a dict of its
            fields): applied to every worker pod over what it takes from the task's pod.

    Returns:
        The job, and the chief's run() result.
    """
    from tfkfp.containers.store import storage

    check(workers, backend, gpus_per_node, task_config)
    outputs = worker.OUTPUTS[stage]
    for key in outputs:
        if storage.local_path(storage.check(kwargs[key], key)) is not None:
            raise InputError(
                f"{key}: workers > 1 write it from their own pods, so it must be on an object "
                f"store (gs://, s3://, minio://), got the local path {kwargs[key]}"
            )
    name = job_name(stage, kwargs[outputs[0]])
    command = worker.command(stage, kwargs)
    make = _JOBS[backend]
    job: Backend = make(
        name,
        command,
        workers,
        gpus_per_node,
        image,
        namespace,
        api_client,
        TaskConfig.of(task_config),
    )
    result_uri = worker.result_uri(stage, kwargs)
    written = [(kwargs[key], key) for key in outputs] + [(result_uri, "")]
    for uri, key in written:  # nothing of an earlier attempt may pass for this one's
        worker.clear(uri, key)
    try:
        message = run_job(job)
        chief = result_type.from_json(storage.read_text(result_uri, "the chief's result"))
    except BaseException as failure:
        for uri, key in written:  # a failed or cancelled job publishes nothing
            try:
                worker.clear(uri, key)
            except Exception as err:
                log.warning("%s: could not remove a partial output: %s", key or uri, err)
        if isinstance(failure, JobFailed):  # the job's reason, one line, no traceback
            print(f"error: {failure}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        raise
    result = LaunchResult(workers=workers, backend=backend, job=name, result=chief)
    events.result(
        stage,
        "%s %s succeeded: %s",
        backend,
        name,
        message,
        summary=f"{workers} workers ({backend} {name})",
        workers=workers,
        backend=backend,
        job=name,
    )
    return result
