"""The Vertex backend: a Vertex AI CustomJob through the REST API (google-auth's session).

Vertex sets each replica's pod itself: a KFP TaskConfig passthrough (Kubernetes pod fields)
has nowhere to go, so a task that carries one is refused (`check_task_config`).
"""

from __future__ import annotations

import copy
import os
import re
import time
from typing import Any

from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.train.launch import kube, pods
from tfkfp.containers.train.launch.backend import Backend, api_timeout, unreachable


def check_task_config(task_config: pods.TaskConfig) -> None:
    """Refuses a TaskConfig that carries values: a CustomJob's replicas cannot take them."""
    if task_config:
        raise InputError(
            "task_config: backend vertex cannot pass KFP's TaskConfig to a CustomJob's "
            f"replicas (Vertex sets their pods), got {', '.join(task_config.declared())}; "
            "use backend jobset or trainjob, or set no resources, env, volumes, node "
            "selector, tolerations or affinity on this task"
        )


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
            raise unreachable(what, where or self.endpoint, cause, self.timeout) from None
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


def job(
    name: str,
    command: list[str],
    workers: int,
    gpus: int,
    image: str | None,
    where: str | None,
    api_client,
    task_config: pods.TaskConfig,
) -> VertexJob:
    """The CustomJob of this launch (`where` has no meaning on Vertex: its region is the task's)."""
    check_task_config(task_config)
    return vertex_job(name, image or kube.fallback_image(), workers, command, gpus, api_client)
