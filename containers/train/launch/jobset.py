"""The JobSet backend: tfkfp/manifests/jobset.yaml with this job's pods."""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

from tfkfp.containers.train.launch import kube, pods
from tfkfp.containers.train.launch.manifests import manifest

CRD = {
    "group": "jobset.x-k8s.io",
    "version": "v1alpha2",
    "plural": "jobsets",
    "kind": "JobSet",
    "install": "kubectl apply --server-side -f https://github.com/kubernetes-sigs/jobset/"
    "releases/download/v0.12.0/manifests.yaml",
    "done": ("Completed",),
}


def jobset_manifest(
    name: str,
    image: str,
    workers: int,
    command: list[str],
    gpus: int = 0,
    inherit: pods.Inherited | None = None,
) -> dict[str, Any]:
    """The shipped JobSet with this job's name, image, command, pod count, GPUs per pod and
    the task's settings (`pods.inherited`; restricted security and no Istio sidecar alone)."""
    inherit = inherit or pods.inherited(None)
    js = copy.deepcopy(manifest("jobset.yaml"))
    js["metadata"]["name"] = name
    job = js["spec"]["replicatedJobs"][0]["template"]["spec"]
    job["parallelism"] = job["completions"] = workers
    template = job["template"]
    container = template["spec"]["containers"][0]
    container["image"] = image
    container["command"] = command
    for env in container["env"]:
        if env["name"] == "TFKFP_WORKERS":
            env["value"] = str(workers)
    pods.apply(inherit, gpus, template.setdefault("metadata", {}), template["spec"], container)
    return js


job = partial(kube.job, CRD, jobset_manifest)
