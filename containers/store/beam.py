"""Beam for the stages that run it (transform, evaluator): options, runners, artifact locations.

Imports Beam only inside functions: the module is cheap to import.
"""

from __future__ import annotations

from tfkfp.containers.runtime import InputError, log

# Beam 2.77's DirectRunner first tries the Prism runner, which it downloads from GitHub: seconds
# lost per stage offline, and a different runner than the one tested where it succeeds. Naming
# the in-process runner it falls back to keeps --direct_num_workers/--direct_running_mode working.
IN_PROCESS_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def beam_options(
    beam_pipeline_args: list[str] | None, per_worker: int | None = None, rows: int | None = None
):
    """Beam PipelineOptions from user args; an unusable runner fails before any work.

    The in-process runner gets as many worker processes as the pod's CPU and memory limits
    allow (containers/store/pod_limits.py) unless the args name `--direct_num_workers` themselves.

    Args:
        beam_pipeline_args: The user's Beam args.
        per_worker: Estimated bytes of one worker process (pod_limits.WORKER_BYTES if None).
        rows: Rows the stage reads, when known (small data runs fewer workers).
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.runners.runner import create_runner

    args = list(beam_pipeline_args or [])
    if not any("pipeline_type_check" in arg for arg in args):
        # Construction-time checks of the stages' own, fixed transforms: they never fail, and cost
        # tens of thousands of `inspect.signature` calls per pipeline (seconds on small data).
        args.append("--no_pipeline_type_check")
    options = PipelineOptions(args)
    runner = options.view_as(StandardOptions).runner
    if not runner or runner == "DirectRunner":
        return PipelineOptions(
            [*args, *_local_workers(args, per_worker, rows), f"--runner={IN_PROCESS_RUNNER}"]
        )
    if runner in LOCAL_RUNNERS or runner == IN_PROCESS_RUNNER:
        return PipelineOptions([*args, *_local_workers(args, per_worker, rows)])
    try:
        create_runner(runner)
    except (ValueError, ImportError) as err:
        raise InputError(f"beam_pipeline_args: runner {runner!r} is not usable ({err})") from None
    return options


def _local_workers(args: list[str], per_worker: int | None, rows: int | None) -> list[str]:
    """The worker args the pod's limits give the in-process runner; none when the user set them."""
    from tfkfp.containers.store import pod_limits

    given = [a for a in args if a.startswith("--direct_num_workers")]
    if given:
        log.info("beam_pipeline_args: %s given; the pod's own worker count is not used", given[0])
        return []
    count = pod_limits.workers(per_worker or pod_limits.WORKER_BYTES, rows=rows)
    if count == 1:
        return []
    log.info("beam: %d worker processes (the pod's CPU and memory limits)", count)
    extra = [f"--direct_num_workers={count}"]
    if not any(a.startswith("--direct_running_mode") for a in args):
        # Threads share one GIL; processes are what use the pod's cores.
        extra.append("--direct_running_mode=multi_processing")
    return extra


# Runners whose workers are this process or its children on this machine: they read the pod's
# local paths. Any other runner (Dataflow, Flink, Spark, the portable runner) has workers
# elsewhere, which only see what the artifacts' URIs name.
LOCAL_RUNNERS = frozenset(
    {None, "", "DirectRunner", "FnApiRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"}
)
KFP_MOUNTS = ("/gcs/", "/minio/", "/s3/")


def runs_remotely(options) -> bool:
    """Whether the Beam options name a runner whose workers cannot read this pod's files."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    return runner not in LOCAL_RUNNERS and runner != IN_PROCESS_RUNNER


def beam_location(path: str, uri: str | None, what: str) -> str:
    """The location remote Beam workers use for an artifact: its URI, checked.

    A KFP pod sees artifacts at local paths (`/gcs/...`, `/minio/...`, downloaded or mounted);
    remote workers see only the store the URI names. TensorFlow on the workers (tf.Transform,
    TFMA) reads `gs://` and shared filesystems, but TensorFlow 2.21 has no `s3://` filesystem.

    Args:
        path: The artifact's pod-local path.
        uri: The artifact's URI (`artifact.uri`), empty when unknown.
        what: Input name for the error message.

    Raises:
        InputError: when the artifact has only a pod-local path, or a store the workers' TensorFlow
            cannot read.
    """
    if not uri or uri.rstrip("/") == path.rstrip("/") or uri.startswith(KFP_MOUNTS):
        raise InputError(
            f"{what}: a remote Beam runner's workers cannot read the pod-local path "
            f"{uri or path}; expected the artifact at a gs:// URI (a pipeline root on GCS) "
            "or on a filesystem shared with the workers"
        )
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme and scheme != "gs":
        raise InputError(
            f"{what}: {uri}: TensorFlow on the Beam workers reads gs:// and shared filesystems "
            f"only (TensorFlow 2.21 has no {scheme}:// filesystem); use a gs:// pipeline root "
            "or the in-process runner"
        )
    return uri
