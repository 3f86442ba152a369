"""What the JobSet and TrainJob backends share: the cluster's client, the task's own pod, and
one submitted custom resource (create, watch its conditions, delete, its pods' logs)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.train.launch import logs, pods
from tfkfp.containers.train.launch.backend import Backend, api_timeout, unreachable

KUBECONFIG_DEFAULT = "~/.kube/config"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def namespace() -> str:
    """This pod's namespace (its service account's), else TFKFP_NAMESPACE, else default."""
    if os.path.isfile(SERVICE_ACCOUNT_NAMESPACE):
        with open(SERVICE_ACCOUNT_NAMESPACE) as fh:
            return fh.read().strip()
    return os.environ.get("TFKFP_NAMESPACE", "default")


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
    found = None
    kubeconfig = os.environ.get("KUBECONFIG") or KUBECONFIG_DEFAULT
    paths = [os.path.expanduser(p) for p in kubeconfig.split(os.pathsep) if p]
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
            found = namespace()
        elif any(os.path.isfile(p) for p in paths):
            config.load_kube_config(kubeconfig, client_configuration=configuration)
            _, current = config.list_kube_config_contexts(kubeconfig)
            found = (current or {}).get("context", {}).get("namespace")
        else:
            raise InputError(
                "backend: no Kubernetes configuration found: not in a pod "
                "(KUBERNETES_SERVICE_HOST is unset) and no kubeconfig at "
                f"{kubeconfig} (KUBECONFIG); workers > 1 submit a job to a cluster"
            )
    except ConfigException as err:
        raise InputError(f"backend: the Kubernetes configuration is unusable: {err}") from None
    configuration.retries = Retry(total=3, read=0, backoff_factor=0.5)
    return client.ApiClient(configuration), found or os.environ.get("TFKFP_NAMESPACE", "default")


@contextlib.contextmanager
def answers(api_client) -> Iterator[None]:
    """Turns an API server that refuses the connection or does not answer into one line."""
    from urllib3.exceptions import HTTPError

    try:
        yield
    except HTTPError as err:
        host = api_client.configuration.host
        reason = getattr(err, "reason", None) or err
        raise unreachable("the Kubernetes API server", host, reason, api_timeout()) from None


def fallback_image() -> str:
    """The workers' image when no pod tells: TFKFP_IMAGE, else tfkfp:<version>."""
    # not tfkfp.components: importing it builds every component, which kfp's runtime mode refuses
    from tfkfp import __version__

    return os.environ.get("TFKFP_IMAGE", f"tfkfp:{__version__}")


def own_pod(api_client) -> tuple[str, dict[str, Any] | None]:
    """This (launcher) pod's image and spec (the API's JSON); (fallback image, None) outside a pod.

    A pod that may not read itself fails in one line naming the RBAC rule it lacks: its
    workers would otherwise start without the task's service account, secrets and volumes.
    """
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    fallback = fallback_image()
    name, where = os.environ.get("HOSTNAME") or socket.gethostname(), namespace()
    try:
        pod = client.CoreV1Api(api_client).read_namespaced_pod(
            name,
            where,
            _request_timeout=(api_timeout(), api_timeout()),  # the client ignores a float
        )
    except ApiException as err:
        if err.status == 403:
            raise InputError(
                f"backend: the launcher may not read its own pod {name} in namespace "
                f'{where} (403); its service account needs the RBAC rule apiGroups [""], '
                'resources ["pods"], verbs ["get"] (tfkfp/manifests/rbac.yaml)'
            ) from None
        # outside a pod (a kubeconfig on a laptop): nothing to inherit
        log.warning("launcher: own pod unknown (%s); the workers run %s", err.reason, fallback)
        return fallback, None
    body = client.ApiClient().sanitize_for_serialization(pod)
    main = next((c for c in pod.spec.containers if c.name == "main"), pod.spec.containers[0])
    return main.image, body  # KFP names the task's container main


class KubernetesJob(Backend):
    """One submitted custom resource (a JobSet, a TrainJob), through the kubernetes client.

    `crd` names its group, version, plural and kind, how to install it, and the condition
    types that mean it completed (each backend module's CRD).
    """

    def __init__(self, crd: dict[str, Any], body: dict[str, Any], namespace: str, api_client=None):
        from kubernetes import client

        # (connect, read): the client ignores a plain float
        self.timeout = (api_timeout(), api_timeout())
        self.crd = crd
        self.kind = crd["kind"]
        self.body, self.namespace = body, namespace
        self.name = body["metadata"]["name"]
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self._args = (crd["group"], crd["version"], namespace, crd["plural"])

    def answering(self):
        return answers(self.core.api_client)

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

    def pods(self, selector: str = "") -> list:
        """The job's pods (JobSet's label; a TrainJob's JobSet carries its name)."""
        label = f"jobset.sigs.k8s.io/jobset-name={self.name}"
        return self.core.list_namespaced_pod(
            self.namespace,
            label_selector=",".join(x for x in (label, selector) if x),
            _request_timeout=self.timeout,
        ).items

    def failed_worker_line(self) -> str:
        """The last `error:` line (else the last line) of a failed pod's log."""
        for pod in self.pods():
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
        ended = getattr(self, "ended", None) or threading.Event()
        logs.follow_chief(self.core, self.namespace, self.pods, stop, ended, self.timeout[0])


Manifest = Callable[..., dict[str, Any]]


def job(
    crd: dict[str, Any],
    make: Manifest,
    name: str,
    command: list[str],
    workers: int,
    gpus: int,
    image: str | None,
    where: str | None,
    api_client,
    task_config: pods.TaskConfig,
) -> KubernetesJob:
    """A job whose pods inherit from this task's pod and its TaskConfig (`make` builds it)."""
    if api_client is None:
        api_client, configured = kubernetes_client()
        where = where or configured
    with answers(api_client):
        own_image, task_pod = own_pod(api_client)
    inherit = pods.inherited(task_pod, task_config)
    body = make(name, image or own_image, workers, command, gpus, inherit)
    return KubernetesJob(crd, body, where or namespace(), api_client)
