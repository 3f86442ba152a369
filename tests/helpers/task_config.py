"""KFP's TaskConfig as a launching component receives it from the KFP backend.

KFP's driver passes the task's settings as a struct input parameter (camelCase Kubernetes
JSON: resources, env, volumes, volumeMounts, nodeSelector, tolerations, affinity); kfp's own
executor turns it into a `dsl.TaskConfig`. No KFP backend runs here, so `received` hands the
struct to kfp's executor (kfp.dsl.executor.Executor), which builds the object exactly as it
does in a task's container.
"""

# no `from __future__ import annotations`: kfp reads the real annotation of `component`

import tempfile
from pathlib import Path
from typing import Any

from kfp import dsl
from kfp.dsl.executor import Executor

# What a pipeline might set on a trainer task: resources, env, a PVC, scheduling.
STRUCT: dict[str, Any] = {
    "resources": {
        "limits": {"cpu": "8", "memory": "32Gi"},
        "requests": {"cpu": "6", "memory": "24Gi"},
    },
    "env": [
        {"name": "AWS_ENDPOINT_URL", "value": "http://minio.kubeflow:9000"},
        {"name": "TFKFP_LOG", "value": "debug"},
        {"name": "TF_CONFIG", "value": "{}"},  # the launcher's own: never passed on
    ],
    "volumes": [
        {"name": "data", "persistentVolumeClaim": {"claimName": "big-data"}},
        {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
    ],
    "volumeMounts": [
        {"name": "data", "mountPath": "/data", "readOnly": True},
        {"name": "cache", "mountPath": "/cache"},
    ],
    "nodeSelector": {"pool": "training"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    ],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {
                        "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]
                    },
                }
            ]
        }
    },
}


def received(struct: "dict[str, Any] | None" = None) -> dsl.TaskConfig:
    """The dsl.TaskConfig kfp's executor gives a component for this struct (None: none sent)."""
    got: list[dsl.TaskConfig] = []

    def component(task_config: dsl.TaskConfig):
        got.append(task_config)

    with tempfile.TemporaryDirectory() as tmp:
        params = {} if struct is None else {"task_config": struct}
        executor_input = {
            "inputs": {"parameterValues": params},
            "outputs": {"outputFile": str(Path(tmp) / "executor_output.json")},
        }
        Executor(executor_input, component).execute()
    return got[0]
