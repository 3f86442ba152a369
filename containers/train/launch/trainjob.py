"""The TrainJob backend: Kubeflow Trainer v2 on tfkfp's ClusterTrainingRuntime (plainML)."""

from __future__ import annotations

from functools import partial
from typing import Any

from tfkfp.containers.runtime import log
from tfkfp.containers.train.launch import kube, pods

RUNTIME = "tfkfp-tensorflow"  # the ClusterTrainingRuntime in tfkfp/manifests/trainingruntime.yaml
CRD = {
    "group": "trainer.kubeflow.org",
    "version": "v1alpha1",
    "plural": "trainjobs",
    "kind": "TrainJob",
    "install": "kubectl apply --server-side -k 'https://github.com/kubeflow/trainer.git/"
    "manifests/overlays/manager?ref=v2.3.0-rc.3' && kubectl apply -f "
    "$(python -c 'import tfkfp,os;print(os.path.dirname(tfkfp.__file__))')"
    "/manifests/trainingruntime.yaml",
    "done": ("Complete",),
}


def trainjob_manifest(
    name: str,
    image: str,
    workers: int,
    command: list[str],
    gpus: int = 0,
    inherit: pods.Inherited | None = None,
) -> dict[str, Any]:
    """A TrainJob on tfkfp's ClusterTrainingRuntime (plainML), the task's settings as a
    runtime patch (Trainer v2's runtimePatches; it has no envFrom: those are logged)."""
    meta: dict[str, Any] = {}
    patch_pod: dict[str, Any] = {}
    container: dict[str, Any] = {
        "name": "node",
        "env": [{"name": "TFKFP_WORKERS", "value": str(workers)}],
    }
    pods.apply(inherit or pods.inherited(None), gpus, meta, patch_pod, container)
    # the trainer's own fields carry env and resources; the patch's container the rest
    trainer: dict[str, Any] = {
        "image": image,
        "command": command,
        "numNodes": workers,
        "env": container.pop("env"),
    }
    if container.get("resources"):
        trainer["resourcesPerNode"] = container.pop("resources")
    if container.pop("envFrom", None):
        log.warning(
            "launcher: a TrainJob's pods cannot take the task's envFrom (Trainer v2's runtime "
            "patches have none); list those variables under env, or use backend=jobset"
        )
    patch_pod["containers"] = [container]
    patch = {
        "manager": "tfkfp.launcher",
        "trainingRuntimeSpec": {
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {
                            "name": "node",
                            "template": {
                                "spec": {"template": {"metadata": meta, "spec": patch_pod}}
                            },
                        }
                    ]
                }
            }
        },
    }
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "tfkfp"}},
        "spec": {
            "runtimeRef": {
                "name": RUNTIME,
                "kind": "ClusterTrainingRuntime",
                "apiGroup": "trainer.kubeflow.org",
            },
            "trainer": trainer,
            "runtimePatches": [patch],
        },
    }


job = partial(kube.job, CRD, trainjob_manifest)
