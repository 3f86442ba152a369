"""Multi-node trainer and tuner: the KFP task launches a JobSet, a TrainJob or a Vertex CustomJob.

With `workers > 1` the trainer's (or tuner's) KFP task is a launcher: it builds the job (from
the manifests shipped in tfkfp/manifests/, or Vertex worker pools), submits it (the
`kubernetes` client, or Vertex AI's REST API through google-auth), streams the chief's log
lines (Kubernetes), waits, and fails with the job's own reason in one line. Each backend is
one `Backend` (submit, state, cancel, the failed worker's line, the chief's log); the waiting,
cancelling on SIGTERM and publishing are shared. Every pod runs
`python -m tfkfp.containers.train.launcher worker <stage> <json>`: it reads its inputs from the
object store, derives TF_CONFIG (cluster_config), runs the stage, and the chief (worker 0)
writes the outputs to the artifacts' URIs through the storage layer. The launcher pod never
needs the data.

The job's name is derived from the model artifact's URI, so a retried task finds the job of
its earlier attempt and deletes it before submitting again: no two jobs write one artifact.
SIGTERM (a cancelled run) deletes the job too.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from tfkfp.containers import events
from tfkfp.containers.runtime import InputError, log


@dataclass
class LaunchResult:
    """A multi-node job that trained: what the component records as model metadata."""

    workers: int
    backend: str
    job: str
    result: dict[str, Any] = field(default_factory=dict)  # the chief's run() result


BACKENDS = ("jobset", "trainjob", "vertex")
RUNTIME = "tfkfp-tensorflow"  # the ClusterTrainingRuntime in tfkfp/manifests/trainingruntime.yaml
# What each backend's custom resource is, and how a user installs it when it is missing.
CRDS = {
    "jobset": {
        "group": "jobset.x-k8s.io",
        "version": "v1alpha2",
        "plural": "jobsets",
        "kind": "JobSet",
        "install": "kubectl apply --server-side -f https://github.com/kubernetes-sigs/jobset/"
        "releases/download/v0.12.0/manifests.yaml",
        "done": ("Completed",),
    },
    "trainjob": {
        "group": "trainer.kubeflow.org",
        "version": "v1alpha1",
        "plural": "trainjobs",
        "kind": "TrainJob",
        "install": "kubectl apply --server-side -k 'https://github.com/kubeflow/trainer.git/"
        "manifests/overlays/manager?ref=v2.3.0-rc.3' && kubectl apply -f "
        "$(python -c 'import tfkfp,os;print(os.path.dirname(tfkfp.__file__))')"
        "/manifests/trainingruntime.yaml",
        "done": ("Complete",),
    },
}


def check(workers: int, backend: str, gpus_per_node: int = 0) -> None:
    """Fails on a worker count below 1, an unknown backend or a negative GPU count.

    The stages call it first, with `workers=1` too: a wrong value is refused the same way
    whether or not this task would have launched anything.
    """
    if workers < 1:
        raise InputError(f"workers: expected 1 or more nodes, got {workers}")
    if backend not in BACKENDS:
        raise InputError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if gpus_per_node < 0:
        raise InputError(f"gpus_per_node: expected 0 or more, got {gpus_per_node}")


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


def _unreachable(what: str, where: str, err: BaseException, timeout: float) -> InputError:
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


KUBECONFIG_DEFAULT = "~/.kube/config"


def kubernetes_client():
    """An ApiClient for this task's cluster and the namespace the job goes to.

    In a pod: the in-cluster configuration (its service account). Elsewhere (a laptop, a CI
    runner): the kubeconfig (KUBECONFIG, else ~/.kube/config) and its current context's
    namespace. Neither: one line saying so. Each call waits TFKFP_API_TIMEOUT at most, and a
    read that timed out is not tried again (the bound in the message is the wait).
    """
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException
    from urllib3.util.retry import Retry

    configuration = client.Configuration()
    namespace = None
    kubeconfig = os.environ.get("KUBECONFIG") or KUBECONFIG_DEFAULT
    paths = [os.path.expanduser(p) for p in kubeconfig.split(os.pathsep) if p]
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
            namespace = _namespace()
        elif any(os.path.isfile(p) for p in paths):
            config.load_kube_config(kubeconfig, client_configuration=configuration)
            _, current = config.list_kube_config_contexts(kubeconfig)
            namespace = (current or {}).get("context", {}).get("namespace")
        else:
            raise InputError(
                "backend: no Kubernetes configuration found: not in a pod "
                "(KUBERNETES_SERVICE_HOST is unset) and no kubeconfig at "
                f"{kubeconfig} (KUBECONFIG); workers > 1 submit a job to a cluster"
            )
    except ConfigException as err:
        raise InputError(f"backend: the Kubernetes configuration is unusable: {err}") from None
    configuration.retries = Retry(total=3, read=0, backoff_factor=0.5)
    return client.ApiClient(configuration), namespace or os.environ.get(
        "TFKFP_NAMESPACE", "default"
    )


def manifest(name: str) -> dict[str, Any]:
    """A YAML manifest shipped in tfkfp/manifests/ (the first document)."""
    import yaml

    text = resources.files("tfkfp").joinpath("manifests", name).read_text()
    return next(yaml.safe_load_all(text))


def job_name(stage: str, model_uri: str) -> str:
    """The same name for every attempt of one task (its output URI): a DNS-1035 label."""
    return f"tfkfp-{stage}-{hashlib.sha256(model_uri.encode()).hexdigest()[:10]}"


def worker_command(stage: str, kwargs: dict[str, Any]) -> list[str]:
    """What every pod runs: the stage's run(**kwargs) with artifact URIs, chief publishing."""
    return ["python", "-m", "tfkfp.containers.train.launcher", "worker", stage, json.dumps(kwargs)]


def _gpu_resources(gpus: int) -> dict[str, Any]:
    return {"limits": {"nvidia.com/gpu": gpus}} if gpus else {}


# --- what every launched pod takes from the task's own pod (kfp-kubernetes settings) ---

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
_NOT_INHERITED = (
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
_OWN_ENV = ("TF_CONFIG", "TFKFP_WORKERS")  # the launcher sets them for each job


@dataclass
class Inherited:
    """The task pod's settings every worker gets (camelCase, as the API's JSON)."""

    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    pod: dict[str, Any] = field(default_factory=dict)  # serviceAccountName, volumes, ...
    container: dict[str, Any] = field(default_factory=dict)  # env, envFrom, mounts, ...


def inherited(task_pod: dict[str, Any] | None) -> Inherited:
    """What workers take from the task's pod (None: not in a pod), restricted by default.

    Env and envFrom keep their secret and config map references (never resolved here); the
    service account token volume is left to each pod's own admission.
    """
    task_pod = task_pod or {}
    meta, spec = task_pod.get("metadata") or {}, task_pod.get("spec") or {}

    def kept(values: dict[str, str] | None) -> dict[str, str]:
        return {k: v for k, v in (values or {}).items() if not k.startswith(_NOT_INHERITED)}

    containers = spec.get("containers") or [{}]
    main = next((c for c in containers if c.get("name") == "main"), containers[0])
    dropped = {
        v["name"] for v in spec.get("volumes") or [] if v["name"].startswith("kube-api-access")
    }
    pod: dict[str, Any] = {
        key: copy.deepcopy(spec[key])
        for key in (
            "serviceAccountName",
            "nodeSelector",
            "tolerations",
            "affinity",
            "imagePullSecrets",
        )
        if spec.get(key)
    }
    volumes = [v for v in spec.get("volumes") or [] if v["name"] not in dropped]
    if volumes:
        pod["volumes"] = copy.deepcopy(volumes)
    pod["securityContext"] = {**RESTRICTED_POD, **(spec.get("securityContext") or {})}
    container: dict[str, Any] = {
        "securityContext": {**RESTRICTED_CONTAINER, **(main.get("securityContext") or {})}
    }
    env = [e for e in main.get("env") or [] if e["name"] not in _OWN_ENV]
    if env:
        container["env"] = copy.deepcopy(env)
    if main.get("envFrom"):
        container["envFrom"] = copy.deepcopy(main["envFrom"])
    mounts = [m for m in main.get("volumeMounts") or [] if m["name"] not in dropped]
    if mounts:
        container["volumeMounts"] = copy.deepcopy(mounts)
    if main.get("resources"):
        container["resources"] = copy.deepcopy(main["resources"])
    labels = {**kept(meta.get("labels")), "sidecar.istio.io/inject": "false"}
    return Inherited(labels, kept(meta.get("annotations")), pod, container)


def _with_gpus(resources: dict[str, Any] | None, gpus: int) -> dict[str, Any]:
    """The task's resources with the GPU limit the launch asks for (requests follow limits)."""
    merged = copy.deepcopy(resources or {})
    if gpus:
        merged.setdefault("limits", {})["nvidia.com/gpu"] = gpus
        if "nvidia.com/gpu" in merged.get("requests", {}):
            merged["requests"]["nvidia.com/gpu"] = gpus
    return merged


def _merged_env(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {e["name"] for e in ours}
    return ours + [e for e in theirs if e["name"] not in names]


def jobset_manifest(
    name: str,
    image: str,
    workers: int,
    command: list[str],
    gpus: int = 0,
    inherit: Inherited | None = None,
) -> dict[str, Any]:
    """The shipped JobSet with this job's name, image, command, pod count, GPUs per pod and
    the task pod's settings (`inherited`; restricted security and no Istio sidecar alone)."""
    inherit = inherit or inherited(None)
    js = copy.deepcopy(manifest("jobset.yaml"))
    js["metadata"]["name"] = name
    job = js["spec"]["replicatedJobs"][0]["template"]["spec"]
    job["parallelism"] = job["completions"] = workers
    template = job["template"]
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**inherit.labels, **(meta.get("labels") or {})}
    if inherit.annotations:
        meta["annotations"] = {**inherit.annotations, **(meta.get("annotations") or {})}
    template["spec"].update(copy.deepcopy(inherit.pod))
    container = template["spec"]["containers"][0]
    container["image"] = image
    container["command"] = command
    for env in container["env"]:
        if env["name"] == "TFKFP_WORKERS":
            env["value"] = str(workers)
    extra = copy.deepcopy(inherit.container)
    container["env"] = _merged_env(container["env"], extra.pop("env", []))
    resources = _with_gpus(extra.pop("resources", None), gpus)
    container.update(extra)
    if resources:
        container["resources"] = resources
    return js


def trainjob_manifest(
    name: str,
    image: str,
    workers: int,
    command: list[str],
    gpus: int = 0,
    inherit: Inherited | None = None,
) -> dict[str, Any]:
    """A TrainJob on tfkfp's ClusterTrainingRuntime (plainML), the task pod's settings as a
    runtime patch (Trainer v2's runtimePatches; it has no envFrom: those are logged)."""
    inherit = inherit or inherited(None)
    extra = copy.deepcopy(inherit.container)
    trainer: dict[str, Any] = {
        "image": image,
        "command": command,
        "numNodes": workers,
        "env": _merged_env(
            [{"name": "TFKFP_WORKERS", "value": str(workers)}], extra.pop("env", [])
        ),
    }
    resources = _with_gpus(extra.pop("resources", None), gpus)
    if resources:
        trainer["resourcesPerNode"] = resources
    if extra.pop("envFrom", None):
        log.warning(
            "launcher: a TrainJob's pods cannot take the task's envFrom (Trainer v2's runtime "
            "patches have none); list those variables under env, or use backend=jobset"
        )
    patch_pod = {**copy.deepcopy(inherit.pod), "containers": [{"name": "node", **extra}]}
    patch_meta = {"labels": inherit.labels}
    if inherit.annotations:
        patch_meta["annotations"] = inherit.annotations
    patch = {
        "manager": "tfkfp.launcher",
        "trainingRuntimeSpec": {
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {
                            "name": "node",
                            "template": {
                                "spec": {"template": {"metadata": patch_meta, "spec": patch_pod}}
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


def vertex_worker_pool_specs(
    image: str,
    workers: int,
    command: list[str],
    machine_type: str = "n1-standard-4",
    accelerator_type: str = "ACCELERATOR_TYPE_UNSPECIFIED",
    accelerator_count: int = 0,
    boot_disk_type: str = "pd-ssd",
    boot_disk_size_gb: int = 100,
) -> list[dict[str, Any]]:
    """CustomJob worker_pool_specs as GCPC's create_custom_training_job_from_component makes
    them (kubeflow/pipelines 7b70c7b, preview/custom_job/utils.py): pool 0 is the chief (one
    replica), pool 1 the other workers. Vertex sets TF_CONFIG itself (cluster chief + worker).
    """
    pool: dict[str, Any] = {
        "machine_spec": {"machine_type": machine_type},
        "replica_count": 1,
        "container_spec": {"image_uri": image, "command": command, "args": [], "env": []},
        "disk_spec": {"boot_disk_type": boot_disk_type, "boot_disk_size_gb": boot_disk_size_gb},
    }
    if accelerator_count:
        pool["machine_spec"]["accelerator_type"] = accelerator_type
        pool["machine_spec"]["accelerator_count"] = accelerator_count
    pools = [pool]
    if workers > 1:
        rest = copy.deepcopy(pool)
        rest["replica_count"] = workers - 1
        pools.append(rest)
    return pools


# --- submit, watch, cancel (the kubernetes client) ---


def _namespace() -> str:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    if os.path.isfile(path):
        with open(path) as fh:
            return fh.read().strip()
    return os.environ.get("TFKFP_NAMESPACE", "default")


class Backend:
    """One submitted job of some backend; `launch` waits for it and cancels it on SIGTERM."""

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


class KubernetesJob(Backend):
    """One submitted JobSet or TrainJob, through the kubernetes client's API objects."""

    def __init__(self, backend: str, body: dict[str, Any], namespace: str, api_client=None):
        from kubernetes import client

        # (connect, read): the client ignores a plain float
        self.timeout = (api_timeout(), api_timeout())
        self.crd = CRDS[backend]
        self.kind = self.crd["kind"]
        self.body, self.namespace = body, namespace
        self.name = body["metadata"]["name"]
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self._args = (self.crd["group"], self.crd["version"], namespace, self.crd["plural"])

    def _missing_crd(self) -> InputError:
        crd = f"{self.crd['plural']}.{self.crd['group']}"
        return InputError(
            f"backend: the cluster has no {self.crd['kind']} CRD ({crd}); install it: "
            f"{self.crd['install']}"
        )

    def get(self) -> dict[str, Any] | None:
        from kubernetes.client.rest import ApiException

        try:
            return self.custom.get_namespaced_custom_object(
                *self._args, self.name, _request_timeout=self.timeout
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def cancel(self, wait: float = 60.0) -> None:
        """Deletes the job (its pods with it) and waits until it is gone."""
        from kubernetes.client.rest import ApiException

        try:
            self.custom.delete_namespaced_custom_object(
                *self._args,
                self.name,
                propagation_policy="Foreground",
                _request_timeout=self.timeout,
            )
        except ApiException as err:
            if err.status != 404:
                raise
            return
        deadline = time.monotonic() + wait
        while self.get() is not None and time.monotonic() < deadline:
            time.sleep(0.5)

    def submit(self) -> None:
        """Creates the job; an earlier attempt's job of the same name is deleted first."""
        from kubernetes.client.rest import ApiException

        try:
            earlier = self.get()
        except ApiException as err:
            if err.status == 404:
                raise self._missing_crd() from None
            raise
        if earlier is not None:
            log.info("%s %s: deleting an earlier attempt's job", self.crd["kind"], self.name)
            self.cancel()
        try:
            self.custom.create_namespaced_custom_object(
                *self._args, self.body, _request_timeout=self.timeout
            )
        except ApiException as err:
            if err.status == 404:
                raise self._missing_crd() from None
            raise
        log.info("%s %s submitted in namespace %s", self.crd["kind"], self.name, self.namespace)

    def state(self) -> tuple[str, str]:
        body = self.get()
        if body is None:
            return "failed", "the job was deleted"
        for cond in (body.get("status") or {}).get("conditions") or []:
            if cond.get("status") != "True":
                continue
            if cond.get("type") in self.crd["done"]:
                return "succeeded", cond.get("message", "")
            if cond.get("type") == "Failed":
                return "failed", cond.get("message") or cond.get("reason", "")
        return "running", ""

    def _pods(self, selector: str = "") -> list:
        label = f"jobset.sigs.k8s.io/jobset-name={self.name}"
        return self.core.list_namespaced_pod(
            self.namespace,
            label_selector=",".join(x for x in (label, selector) if x),
            _request_timeout=self.timeout,
        ).items

    def failed_worker_line(self) -> str:
        """The last `error:` line (else the last line) of a failed pod's log."""
        for pod in self._pods():
            if (pod.status and pod.status.phase) != "Failed":
                continue
            text = self.core.read_namespaced_pod_log(
                pod.metadata.name, self.namespace, tail_lines=50, _request_timeout=self.timeout
            )
            lines = [x for x in text.splitlines() if x.strip()]
            errors = [x for x in lines if x.startswith("error:")]
            if lines:
                return f"{pod.metadata.name}: {(errors or lines)[-1].strip()}"
        return ""

    def stream_chief(self, stop: threading.Event) -> None:
        """Copies the chief pod's log lines into this task's log until the pod ends."""
        chief = "batch.kubernetes.io/job-completion-index=0,jobset.sigs.k8s.io/job-index=0"
        ended = getattr(self, "ended", None) or threading.Event()
        while True:  # one last look once the job ended: its chief may have just appeared
            done = stop.is_set() or ended.is_set()
            pods = [p for p in self._pods(chief) if p.status and p.status.phase != "Pending"]
            if pods:
                break
            if done:
                return
            ended.wait(2.0)
        # connecting is bounded; a followed log may stay silent as long as the chief does
        resp = self.core.read_namespaced_pod_log(
            pods[0].metadata.name,
            self.namespace,
            follow=True,
            _preload_content=False,
            _request_timeout=(self.timeout[0], None),
        )
        pending = b""  # a chunk can end inside a line: print whole lines only
        for chunk in resp.stream():
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                print(f"[chief] {line.decode(errors='replace').rstrip()}", flush=True)
            if stop.is_set():
                break
        if pending.strip():
            print(f"[chief] {pending.decode(errors='replace').rstrip()}", flush=True)


VERTEX_API = "https://{location}-aiplatform.googleapis.com"
_VERTEX_ENDED = {
    "JOB_STATE_SUCCEEDED": "succeeded",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "failed",
    "JOB_STATE_EXPIRED": "failed",
}


def _camel(value: Any) -> Any:
    """Proto field names as the REST API's JSON spells them (machine_spec -> machineSpec)."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


class VertexJob(Backend):
    """One Vertex AI CustomJob, through the REST API (`projects/*/locations/*/customJobs`).

    Vertex names a job itself; the task's job name is its display name and a label, so a
    retried task finds its earlier attempt's job (a list filtered by the label) and cancels it.
    Vertex sets TF_CONFIG in every replica (pool 0: chief, pool 1: workers).
    """

    kind = "Vertex CustomJob"

    def __init__(
        self,
        name: str,
        pools: list[dict[str, Any]],
        project: str,
        location: str,
        session=None,
        endpoint: str | None = None,
    ):
        self.name, self.pools = name, pools
        self.project, self.location = project, location
        self.endpoint = (endpoint or VERTEX_API.format(location=location)).rstrip("/")
        self.parent = f"projects/{project}/locations/{location}"
        self.resource = ""  # projects/.../customJobs/<id>, once created
        self.timeout = api_timeout()
        if session is None:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError
            from google.auth.transport.requests import AuthorizedSession

            try:
                credentials, _ = google.auth.default(
                    scopes=["https://www.googleapis.com/auth/cloud-platform"]
                )
            except DefaultCredentialsError as err:
                raise InputError(
                    f"backend: vertex needs Google credentials (Vertex AI Pipelines gives its "
                    f"tasks a service account; else GOOGLE_APPLICATION_CREDENTIALS): {err}"
                ) from None
            # the token refresh is bounded by each request's timeout as well
            session = AuthorizedSession(credentials, refresh_timeout=self.timeout)
        self.session = session

    def _call(self, method: str, path: str, **kwargs) -> dict[str, Any]:
        import requests
        from google.auth import exceptions as auth_errors

        url = f"{self.endpoint}/v1/{path}"
        try:
            resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except (requests.RequestException, auth_errors.TransportError) as err:
            # a token endpoint's failure comes wrapped: its cause says timeout or refusal
            cause = err.__cause__ or (err.args[0] if err.args else err)
            where = self.endpoint
            if isinstance(err, auth_errors.TransportError):
                where = getattr(getattr(self.session, "credentials", None), "_token_uri", None)
                what = "the Google token endpoint"
            else:
                what = "Vertex AI"
            raise _unreachable(what, where or self.endpoint, cause, self.timeout) from None
        except auth_errors.RefreshError as err:
            raise InputError(
                f"backend: vertex: the Google credentials were refused: {err}"
            ) from None
        if resp.status_code >= 400:
            try:
                detail = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                detail = resp.text[:200]
            if resp.status_code in (401, 403, 404):
                raise InputError(
                    f"backend: Vertex AI refused {method} {path} ({resp.status_code}): {detail}"
                )
            raise RuntimeError(f"Vertex AI {method} {path}: {resp.status_code} {detail}")
        return resp.json() if resp.content else {}

    def _earlier(self) -> list[dict[str, Any]]:
        label = f'labels.tfkfp-job="{self.name}"'
        jobs, token = [], ""
        while True:
            params = {"filter": label, **({"pageToken": token} if token else {})}
            page = self._call("GET", f"{self.parent}/customJobs", params=params)
            jobs += page.get("customJobs", [])
            token = page.get("nextPageToken", "")
            if not token:
                return [j for j in jobs if j.get("state") not in _VERTEX_ENDED]

    def submit(self) -> None:
        for job in self._earlier():
            log.info("Vertex CustomJob %s: cancelling an earlier attempt's job", job["name"])
            self._cancel(job["name"])
        body = {
            "displayName": self.name,
            "labels": {"tfkfp-job": self.name, "app-kubernetes-io-managed-by": "tfkfp"},
            "jobSpec": {"workerPoolSpecs": _camel(self.pools)},
        }
        self.resource = self._call("POST", f"{self.parent}/customJobs", json=body)["name"]
        job_id = self.resource.rsplit("/", 1)[-1]
        log.info(
            "Vertex CustomJob %s submitted: https://console.cloud.google.com/vertex-ai/"
            "locations/%s/training/%s?project=%s (its logs are in Cloud Logging)",
            self.resource,
            self.location,
            job_id,
            self.project,
        )

    def state(self) -> tuple[str, str]:
        job = self._call("GET", self.resource)
        state = _VERTEX_ENDED.get(job.get("state", ""), "running")
        if state != "failed":
            return state, job.get("state", "")
        lines = [x.strip() for x in (job.get("error") or {}).get("message", "").splitlines()]
        lines = [x for x in lines if x]
        errors = [x for x in lines if x.startswith("error:")]
        message = (lines[0] if lines else job["state"]) + (
            f"; {errors[-1]}" if errors and errors[-1] != lines[0] else ""
        )
        return state, message

    def _cancel(self, resource: str, wait: float = 120.0) -> None:
        self._call("POST", f"{resource}:cancel")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self._call("GET", resource).get("state") in _VERTEX_ENDED:
                return
            time.sleep(2.0)

    def cancel(self) -> None:
        if self.resource:
            self._cancel(self.resource)
            return
        # Cancelled while the create call was in flight: the job may exist with no name known here.
        for job in self._earlier():
            self._cancel(job["name"])


class JobFailed(RuntimeError):
    """The job ran and failed (not a user input error: exit 1)."""


def launch(job: Backend) -> str:
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
        job.submit()
        return job.wait()
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _kubernetes_answers(api_client):
    """Turns an API server that refuses the connection or does not answer into one line."""
    from urllib3.exceptions import HTTPError

    try:
        yield
    except HTTPError as err:
        host = api_client.configuration.host
        reason = getattr(err, "reason", None) or err
        raise _unreachable("the Kubernetes API server", host, reason, api_timeout()) from None


def _own_image(api_client=None) -> str:
    """The image of this (launcher) pod: the workers run the same one."""
    return _own_pod(api_client)[0]


def _own_pod(api_client=None) -> tuple[str, dict[str, Any] | None]:
    """This (launcher) pod's image and spec (the API's JSON); (fallback image, None) outside a pod.

    A pod that may not read itself fails in one line naming the RBAC rule it lacks: its
    workers would otherwise start without the task's service account, secrets and volumes.
    """
    # not tfkfp.components: importing it builds every component, which kfp's runtime mode refuses
    from tfkfp import __version__

    fallback = os.environ.get("TFKFP_IMAGE", f"tfkfp:{__version__}")
    if api_client is False:  # not on Kubernetes (Vertex AI Pipelines)
        return fallback, None
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    name, namespace = os.environ.get("HOSTNAME") or socket.gethostname(), _namespace()
    try:
        pod = client.CoreV1Api(api_client).read_namespaced_pod(
            name,
            namespace,
            _request_timeout=(api_timeout(), api_timeout()),  # the client ignores a float
        )
    except ApiException as err:
        if err.status == 403:
            raise InputError(
                f"backend: the launcher may not read its own pod {name} in namespace "
                f'{namespace} (403); its service account needs the RBAC rule apiGroups [""], '
                'resources ["pods"], verbs ["get"] (tfkfp/manifests/rbac.yaml)'
            ) from None
        # outside a pod (a kubeconfig on a laptop): nothing to inherit
        log.warning("launcher: own pod unknown (%s); the workers run %s", err.reason, fallback)
        return fallback, None
    body = client.ApiClient().sanitize_for_serialization(pod)
    main = next((c for c in pod.spec.containers if c.name == "main"), pod.spec.containers[0])
    return main.image, body  # KFP names the task's container main


def vertex_job(
    name: str, image: str, workers: int, command: list[str], gpus: int = 0, session=None
) -> VertexJob:
    """A CustomJob in this task's project and region (what Vertex AI sets in its containers).

    TFKFP_VERTEX_MACHINE_TYPE (n1-standard-4) and TFKFP_VERTEX_ACCELERATOR (NVIDIA_TESLA_T4,
    with gpus_per_node > 0) choose the machines; TFKFP_VERTEX_ENDPOINT replaces the API's host.
    """
    env = os.environ
    project = env.get("CLOUD_ML_PROJECT_ID") or env.get("GOOGLE_CLOUD_PROJECT")
    location = env.get("CLOUD_ML_REGION") or env.get("GOOGLE_CLOUD_REGION")
    if not project or not location:
        raise InputError(
            "backend: vertex needs the project and region of the job (CLOUD_ML_PROJECT_ID and "
            "CLOUD_ML_REGION, which Vertex AI Pipelines sets; else GOOGLE_CLOUD_PROJECT and "
            f"GOOGLE_CLOUD_REGION), got project {project!r}, region {location!r}"
        )
    pools = vertex_worker_pool_specs(
        image,
        workers,
        command,
        machine_type=env.get("TFKFP_VERTEX_MACHINE_TYPE", "n1-standard-4"),
        accelerator_type=env.get("TFKFP_VERTEX_ACCELERATOR", "NVIDIA_TESLA_T4"),
        accelerator_count=gpus,
    )
    endpoint = env.get("TFKFP_VERTEX_ENDPOINT")
    return VertexJob(name, pools, project, location, session, endpoint)


def run(
    stage: str,
    workers: int,
    backend: str,
    kwargs: dict[str, Any],
    gpus_per_node: int = 0,
    image: str | None = None,
    namespace: str | None = None,
    api_client=None,
) -> LaunchResult:
    """The launcher: submits `stage` on `workers` nodes and waits for the chief's outputs.

    Args:
        stage: trainer or tuner.
        workers: Nodes (pods, replicas), each running the stage; worker 0 is the chief.
        backend: jobset, trainjob or vertex.
        kwargs: The stage's run() arguments, artifacts as object-store URIs.
        gpus_per_node: GPUs of each node (nvidia.com/gpu limit; Vertex accelerator count).
        image: The workers' image (default: this pod's; on Vertex, TFKFP_IMAGE's).
        namespace: Where the job runs (default: this pod's namespace; not for Vertex).
        api_client: A kubernetes ApiClient (default: the in-cluster configuration), or for
            vertex an authorized requests session (default: google-auth's credentials).

    Returns:
        What the component records as metadata: the job, and the chief's run() result.
    """
    from tfkfp.containers.store import storage

    check(workers, backend, gpus_per_node)
    for key in _OUTPUTS[stage]:
        if storage.local_path(storage.check(kwargs[key], key)) is not None:
            raise InputError(
                f"{key}: workers > 1 write it from their own pods, so it must be on an object "
                f"store (gs://, s3://, minio://), got the local path {kwargs[key]}"
            )
    name = job_name(stage, kwargs[_OUTPUTS[stage][0]])
    command = worker_command(stage, kwargs)
    job: Backend
    if backend == "vertex":
        image = image or _own_image(False)
        job = vertex_job(name, image, workers, command, gpus_per_node, api_client)
    else:
        if api_client is None:
            api_client, configured = kubernetes_client()
            namespace = namespace or configured
        with _kubernetes_answers(api_client):
            own_image, task_pod = _own_pod(api_client)
        make = jobset_manifest if backend == "jobset" else trainjob_manifest
        body = make(name, image or own_image, workers, command, gpus_per_node, inherited(task_pod))
        job = KubernetesJob(backend, body, namespace or _namespace(), api_client)
    written = [(kwargs[key], key) for key in _OUTPUTS[stage]] + [(_result_uri(stage, kwargs), "")]
    for uri, key in written:  # nothing of an earlier attempt may pass for this one's
        _clear(uri, key)
    try:
        if isinstance(job, KubernetesJob):
            with _kubernetes_answers(job.core.api_client):
                message = launch(job)
        else:
            message = launch(job)
        chief = json.loads(storage.read_text(_result_uri(stage, kwargs), "the chief's result"))
    except BaseException as failure:
        for uri, key in written:  # a failed or cancelled job publishes nothing
            try:
                _clear(uri, key)
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


# --- inside each pod ---

# The stage arguments that are artifacts: inputs to read, outputs only the chief writes.
_INPUTS = ("examples", "schema", "transform_graph", "base_model", "best_hyperparameters")
_OUTPUTS = {
    "trainer": ("model", "model_run", "curves"),
    "tuner": ("best_hyperparameters", "trials", "trials_chart"),
}
_FILE_OUTPUTS = ("curves", "trials", "trials_chart", "")  # "": the chief's result


def _result_uri(stage: str, kwargs: dict[str, Any]) -> str:
    """Where the chief leaves its run() result for the launcher: beside the first output."""
    return kwargs[_OUTPUTS[stage][0]].rstrip("/") + ".result.json"


def _clear(uri: str, what: str) -> None:
    """Removes an output (a folder, or a file) at its URI; none there is fine."""
    from tfkfp.containers.store import storage

    if what in _FILE_OUTPUTS:
        storage.delete(uri, what or "the chief's result", missing_ok=True)
    else:
        storage.delete_tree(uri, what)


def worker(stage: str, kwargs: dict[str, Any]) -> Any:
    """Runs the stage in this pod: inputs from the store, the chief's outputs to it."""
    from importlib import import_module

    from tfkfp.containers.store import storage
    from tfkfp.containers.train import strategy as strategies

    _, is_chief, task = strategies.cluster()  # derives TF_CONFIG from the pod's env
    outputs = _OUTPUTS[stage]
    local = dict(kwargs)
    with tempfile.TemporaryDirectory(prefix=f"tfkfp-{stage}-") as scratch:
        for key in _INPUTS:
            if key in kwargs and kwargs[key] and key not in outputs:
                local[key] = storage.download(kwargs[key], os.path.join(scratch, key), key)
        for key in outputs:
            local[key] = os.path.join(scratch, "out", key)
        os.makedirs(os.path.join(scratch, "out"))
        info = import_module(f"tfkfp.containers.{stage}").run(**local)
        if is_chief:
            for key in outputs:
                if os.path.exists(local[key]):
                    _clear(kwargs[key], key)
                    storage.upload(local[key], kwargs[key], key)
            # last: its presence tells the launcher the outputs are complete
            summary = json.dumps(asdict(info) if info is not None else {}, default=str)
            storage.write_text(_result_uri(stage, kwargs), summary, "the chief's result")
            log.info("%s (%s): outputs written to %s", stage, task, [kwargs[k] for k in outputs])
    return info


def main(argv: list[str]) -> None:
    from tfkfp.containers.runtime import entrypoint

    if len(argv) != 3 or argv[0] != "worker" or argv[1] not in _OUTPUTS:
        print(
            "usage: python -m tfkfp.containers.train.launcher worker trainer|tuner JSON",
            file=sys.stderr,
        )
        raise SystemExit(2)
    try:
        kwargs = json.loads(argv[2])
        if not isinstance(kwargs, dict):
            raise ValueError(f"a {type(kwargs).__name__}, not an object")
    except ValueError as err:  # the job's command cut short or edited by hand
        print(
            f"error: the worker's JSON argument: expected the stage's arguments as one JSON "
            f"object, got {len(argv[2])} characters that are not one ({err})",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(2) from None
    entrypoint(worker, stage=argv[1], kwargs=kwargs)


if __name__ == "__main__":
    main(sys.argv[1:])
