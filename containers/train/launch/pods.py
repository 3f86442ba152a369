"""What every launched worker pod takes from the task: its own pod, and KFP's TaskConfig.

The task's pod carries what kfp-kubernetes set on the task (service account, secrets as env,
volumes, node selector, tolerations, ...); a KFP TaskConfig passthrough (kfp 2.15+,
`dsl.TaskConfig`) carries what the pipeline set on the task for the workload it launches
(resources, env, volumes and mounts, node selector, tolerations, affinity). Both are read;
where the TaskConfig has a field, its value wins (by name for env and volumes, by mount path
for mounts); what it has no field for (service account, image pull secrets, envFrom, labels,
annotations, security context) comes from the pod alone. Workers are Pod Security
"restricted" unless the task's pod says otherwise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

# Pod Security "restricted": what a launched pod gets unless the task's pod says otherwise.
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Labels and annotations that belong to the task's own pod, its workflow or its sidecar: a
# worker carrying Argo's would be taken for a step of the run by Argo's controller.
NOT_INHERITED = (
    "workflows.argoproj.io/",
    "batch.kubernetes.io/",
    "controller-uid",
    "job-name",
    "pod-template-hash",
    "kubectl.kubernetes.io/",
    "kubernetes.io/",
    "sidecar.istio.io/status",
    "istio.io/",
    "security.istio.io/",
    "service.istio.io/",
    "prometheus.io/",
)
OWN_ENV = ("TF_CONFIG", "TFKFP_WORKERS")  # the launcher sets them for each job
_POD_KEYS = ("serviceAccountName", "nodeSelector", "tolerations", "affinity", "imagePullSecrets")


@dataclass
class TaskConfig:
    """KFP's TaskConfig (kfp.dsl.TaskConfig, the fields KFP's driver fills): Kubernetes JSON.

    None: the task declared no such passthrough, or the pipeline set nothing for it.
    """

    affinity: dict[str, Any] | None = None
    tolerations: list[dict[str, Any]] | None = None
    node_selector: dict[str, str] | None = None
    env: list[dict[str, Any]] | None = None
    volumes: list[dict[str, Any]] | None = None
    volume_mounts: list[dict[str, Any]] | None = None
    resources: dict[str, Any] | None = None

    @classmethod
    def of(cls, value: Any) -> TaskConfig:
        """From kfp's dsl.TaskConfig (or any object with its fields), a dict of them, or None."""
        if value is None:
            return cls()
        names = [f.name for f in fields(cls)]
        if isinstance(value, dict):
            return cls(**{n: copy.deepcopy(value.get(n)) for n in names})
        return cls(**{n: copy.deepcopy(getattr(value, n, None)) for n in names})

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def declared(self) -> list[str]:
        """The fields that carry a value."""
        return [f.name for f in fields(self) if getattr(self, f.name)]


@dataclass
class Inherited:
    """The settings every worker gets (camelCase, as the API's JSON)."""

    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    pod: dict[str, Any] = field(default_factory=dict)  # serviceAccountName, volumes, ...
    container: dict[str, Any] = field(default_factory=dict)  # env, envFrom, mounts, ...


def _by(key: str, ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict]:
    """`ours` first, then those of `theirs` whose `key` none of ours has."""
    seen = {x.get(key) for x in ours}
    return copy.deepcopy(ours) + [copy.deepcopy(x) for x in theirs if x.get(key) not in seen]


def inherited(task_pod: dict[str, Any] | None, task_config: TaskConfig | None = None) -> Inherited:
    """What workers take from the task's pod (None: not in a pod) and its TaskConfig.

    Env and envFrom keep their secret and config map references (never resolved here); the
    service account token volume is left to each pod's own admission.
    """
    task_pod, config = task_pod or {}, task_config or TaskConfig()
    meta, spec = task_pod.get("metadata") or {}, task_pod.get("spec") or {}

    def kept(values: dict[str, str] | None) -> dict[str, str]:
        return {k: v for k, v in (values or {}).items() if not k.startswith(NOT_INHERITED)}

    containers = spec.get("containers") or [{}]
    main = next((c for c in containers if c.get("name") == "main"), containers[0])
    dropped = {
        v["name"] for v in spec.get("volumes") or [] if v["name"].startswith("kube-api-access")
    }
    pod: dict[str, Any] = {key: copy.deepcopy(spec[key]) for key in _POD_KEYS if spec.get(key)}
    for key, value in (
        ("nodeSelector", config.node_selector),
        ("tolerations", config.tolerations),
        ("affinity", config.affinity),
    ):
        if value:
            pod[key] = copy.deepcopy(value)
    own_volumes = [v for v in spec.get("volumes") or [] if v["name"] not in dropped]
    volumes = _by("name", config.volumes or [], own_volumes)
    if volumes:
        pod["volumes"] = volumes
    pod["securityContext"] = {**RESTRICTED_POD, **(spec.get("securityContext") or {})}
    container: dict[str, Any] = {
        "securityContext": {**RESTRICTED_CONTAINER, **(main.get("securityContext") or {})}
    }
    env = [
        e for e in _by("name", config.env or [], main.get("env") or []) if e["name"] not in OWN_ENV
    ]
    if env:
        container["env"] = env
    if main.get("envFrom"):
        container["envFrom"] = copy.deepcopy(main["envFrom"])
    own_mounts = [m for m in main.get("volumeMounts") or [] if m["name"] not in dropped]
    mounts = _by("mountPath", config.volume_mounts or [], own_mounts)
    if mounts:
        container["volumeMounts"] = mounts
    resources = config.resources or main.get("resources")
    if resources:
        container["resources"] = copy.deepcopy(resources)
    labels = {**kept(meta.get("labels")), "sidecar.istio.io/inject": "false"}
    return Inherited(labels, kept(meta.get("annotations")), pod, container)


def with_gpus(resources: dict[str, Any] | None, gpus: int) -> dict[str, Any]:
    """The task's resources with the GPU limit the launch asks for (requests follow limits)."""
    merged = copy.deepcopy(resources or {})
    if gpus:
        merged.setdefault("limits", {})["nvidia.com/gpu"] = gpus
        if "nvidia.com/gpu" in merged.get("requests", {}):
            merged["requests"]["nvidia.com/gpu"] = gpus
    return merged


def apply(
    inherit: Inherited,
    gpus: int,
    meta: dict[str, Any],
    spec: dict[str, Any],
    container: dict[str, Any],
) -> None:
    """Puts the inherited settings and the GPUs into one pod template, in place.

    The template's own labels, annotations and env win; the pod spec and the container take
    the inherited keys; resources are the inherited ones with the GPU limit.
    """
    meta["labels"] = {**inherit.labels, **(meta.get("labels") or {})}
    if inherit.annotations:
        meta["annotations"] = {**inherit.annotations, **(meta.get("annotations") or {})}
    spec.update(copy.deepcopy(inherit.pod))
    extra = copy.deepcopy(inherit.container)
    ours = container.get("env") or []
    names = {e["name"] for e in ours}
    env = ours + [e for e in extra.pop("env", []) if e["name"] not in names]
    if env:
        container["env"] = env
    resources = with_gpus(extra.pop("resources", None), gpus)
    container.update(extra)
    if resources:
        container["resources"] = resources
