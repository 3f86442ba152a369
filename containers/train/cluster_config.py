"""TF_CONFIG derived inside a pod of a JobSet or a Kubeflow Trainer v2 TrainJob.

Neither JobSet nor Trainer v2's plainML runtime sets TF_CONFIG (kubeflow/trainer#2699). What a
pod of theirs has (read in kubernetes-sigs/jobset 08dfbdf and kubeflow/trainer 8c0f505):

- `JOB_COMPLETION_INDEX`: set by Kubernetes in every pod of an Indexed Job (JobSet defaults
  its Jobs to Indexed); the pod's index in its Job.
- JobSet's pod annotations `jobset.sigs.k8s.io/jobset-name`, `.../replicatedjob-name`,
  `.../job-index` and `.../replicatedjob-replicas`, which our manifests (tfkfp/manifests/)
  pass to the container through the downward API as `JOBSET_NAME`, `REPLICATED_JOB_NAME`,
  `JOB_INDEX` and `REPLICATED_JOB_REPLICAS` (the names JobSet's own examples use).
- Stable hostnames `<jobset>-<replicatedJob>-<jobIndex>-<podIndex>.<subdomain>`
  (placement.GenPodName); the subdomain is the JobSet's name unless `spec.network.subdomain`
  says otherwise (GetSubdomain). A TrainJob is a JobSet of the same name whose replicated job
  `node` has one Job of `numNodes` pods (Trainer's torch and jax plugins address
  `<trainjob>-node-0-0.<trainjob>`).

The pods per Job (the Job's parallelism) reach no annotation, so the launcher sets
`TFKFP_WORKERS` (a TrainJob passes it through `spec.trainer.env`, which plainML upserts into
the `node` container). Every pod is a `worker`; worker 0 is the chief (TensorFlow's rule when a
cluster has no `chief` task), so one pod template serves every index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from tfkfp.containers.runtime import InputError

PORT = 2222  # TensorFlow's customary gRPC port (TFJob's default)
# What our manifests set; JOB_COMPLETION_INDEX comes from Kubernetes itself.
REQUIRED = ("JOBSET_NAME", "REPLICATED_JOB_NAME", "JOB_INDEX", "JOB_COMPLETION_INDEX")


def _int(env: Mapping[str, str], name: str, default: int | None = None, least: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            raise InputError(f"{name}: expected an integer in the pod's environment, got none")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name}: expected an integer, got {raw!r}") from None
    if value < least:
        raise InputError(f"{name}: expected {least} or more, got {value}")
    return value


def derive(env: Mapping[str, str]) -> dict[str, Any] | None:
    """TF_CONFIG (as a dict) for this pod, or None when the env is not a JobSet pod's.

    Args:
        env: The pod's environment (os.environ).

    Returns:
        {"cluster": {"worker": [host:port, ...]}, "task": {"type": "worker", "index": i}}.
    """
    if not all(env.get(name) for name in REQUIRED):
        return None
    jobset, rjob = env["JOBSET_NAME"], env["REPLICATED_JOB_NAME"]
    pods = _int(env, "TFKFP_WORKERS", least=1)
    jobs = _int(env, "REPLICATED_JOB_REPLICAS", default=1, least=1)
    job_index = _int(env, "JOB_INDEX")
    pod_index = _int(env, "JOB_COMPLETION_INDEX")
    port = _int(env, "TFKFP_PORT", default=PORT, least=1)
    subdomain = env.get("JOBSET_SUBDOMAIN") or jobset
    if job_index >= jobs or pod_index >= pods:
        raise InputError(
            f"JOB_INDEX/JOB_COMPLETION_INDEX: pod {job_index}-{pod_index} is outside "
            f"{jobs} job(s) of TFKFP_WORKERS={pods} pod(s)"
        )
    hosts = [
        f"{jobset}-{rjob}-{j}-{p}.{subdomain}:{port}" for j in range(jobs) for p in range(pods)
    ]
    return {
        "cluster": {"worker": hosts},
        "task": {"type": "worker", "index": job_index * pods + pod_index},
    }


def ensure_tf_config(env: os._Environ | dict[str, str] | None = None) -> bool:
    """Sets TF_CONFIG from the JobSet env when it is unset; True when it did.

    A TF_CONFIG already set (Vertex AI, TFJob, a user) always wins.
    """
    env = os.environ if env is None else env
    if env.get("TF_CONFIG", "").strip():
        return False
    config = derive(env)
    if config is None:
        return False
    env["TF_CONFIG"] = json.dumps(config)
    return True
