"""The launcher's submit / watch / cancel / fail logic, through the real kubernetes client.

The other end is a stdlib HTTP server answering the REST paths the client calls (custom
objects, pods, pod logs) from a small in-memory table: a unit test of our own logic, not of a
cluster (no Kubernetes API server runs here; see docs/known-limits.md).
"""

import json
import os
import re
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tfkfp.containers import launcher
from tfkfp.containers.runtime import InputError

COMMAND = launcher.worker_command("trainer", {"model": "gs://b/m"})
NS = "kubeflow-user"


class Cluster:
    """What the fake API server knows: objects by path, pods, logs, and a script of states."""

    def __init__(self, crds=("jobset.x-k8s.io", "trainer.kubeflow.org")):
        self.crds = set(crds)
        self.objects: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.pods: list[dict] = []
        self.logs: dict[str, str] = {}
        self.finish_after = 2  # GETs of the job before it gets `final`
        self.final: dict | None = {"type": "Completed", "status": "True", "message": "done"}
        self.posted = threading.Event()
        self.gets = 0


def _handler(cluster: Cluster):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code, body):
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self):
            self._send(
                404,
                {
                    "kind": "Status",
                    "status": "Failure",
                    "reason": "NotFound",
                    "message": "the server could not find the requested resource",
                    "code": 404,
                },
            )

        def _route(self, method):
            path = self.path.split("?")[0]
            cluster.calls.append((method, path))
            m = re.fullmatch(r"/apis/([^/]+)/[^/]+/namespaces/[^/]+/[^/]+(?:/([^/]+))?", path)
            if m:
                if m.group(1) not in cluster.crds:
                    return self._not_found()
                return self._custom(method, path, m.group(2))
            if re.fullmatch(r"/api/v1/namespaces/[^/]+/pods", path):
                return self._send(
                    200,
                    {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": cluster.pods},
                )
            m = re.fullmatch(r"/api/v1/namespaces/[^/]+/pods/([^/]+)/log", path)
            if m:
                return self._send(200, cluster.logs.get(m.group(1), ""))
            return self._not_found()

        def _custom(self, method, path, name):
            if method == "POST":
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = f"{path}/{body['metadata']['name']}"
                if key in cluster.objects:
                    return self._send(
                        409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"}
                    )
                cluster.objects[key] = body
                cluster.posted.set()
                return self._send(201, body)
            obj = cluster.objects.get(path)
            if obj is None:
                return self._not_found()
            if method == "DELETE":
                del cluster.objects[path]
                return self._send(200, {"kind": "Status", "status": "Success"})
            cluster.gets += 1
            if cluster.gets > cluster.finish_after and cluster.final:
                obj = {**obj, "status": {"conditions": [cluster.final]}}
            return self._send(200, obj)

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

        def do_DELETE(self):
            self._route("DELETE")

    return Handler


@pytest.fixture
def api():
    """A fake API server and a kubernetes ApiClient pointed at it."""
    from kubernetes import client

    cluster = Cluster()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(cluster))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    with client.ApiClient(config) as api_client:
        yield cluster, api_client
    server.shutdown()


def _pod(name, phase, index="0"):
    return {
        "metadata": {
            "name": name,
            "labels": {
                "jobset.sigs.k8s.io/jobset-name": "tfkfp-trainer-x",
                "batch.kubernetes.io/job-completion-index": index,
            },
        },
        "status": {"phase": phase},
    }


def _launch(api_client, backend="jobset", name="tfkfp-trainer-x"):
    maker = launcher.jobset_manifest if backend == "jobset" else launcher.trainjob_manifest
    body = maker(name, "tfkfp:1", 2, COMMAND)
    return body, launcher.launch(backend, body, NS, api_client)


def test_submit_stream_and_succeed(api, capsys, monkeypatch):
    cluster, api_client = api
    monkeypatch.setattr(launcher.time, "sleep", lambda s: None)
    cluster.pods = [_pod("tfkfp-trainer-x-node-0-0-abcde", "Running")]
    cluster.logs["tfkfp-trainer-x-node-0-0-abcde"] = "epoch 1/2\nepoch 2/2\n"
    cluster.finish_after = 50
    body, message = _launch(api_client)
    assert message == "done"
    path = "/apis/jobset.x-k8s.io/v1alpha2/namespaces/kubeflow-user/jobsets"
    assert cluster.objects[f"{path}/tfkfp-trainer-x"] == body  # what was submitted, unchanged
    assert ("POST", path) in cluster.calls
    out = capsys.readouterr().out
    assert "[chief] epoch 1/2" in out and "[chief] epoch 2/2" in out


def test_failure_names_the_job_reason_and_the_worker_error(api, monkeypatch):
    cluster, api_client = api
    monkeypatch.setattr(launcher.time, "sleep", lambda s: None)
    cluster.final = {
        "type": "Failed",
        "status": "True",
        "reason": "FailedJobs",
        "message": "jobset failed due to one or more job failures",
    }
    cluster.pods = [_pod("tfkfp-trainer-x-node-0-1-xyz12", "Failed", "1")]
    cluster.logs["tfkfp-trainer-x-node-0-1-xyz12"] = (
        "Traceback (most recent call last):\nerror: examples: no split 'train'\n"
    )
    with pytest.raises(launcher.JobFailed) as err:
        _launch(api_client)
    assert str(err.value) == (
        "JobSet tfkfp-trainer-x failed: jobset failed due to one or more job failures; "
        "tfkfp-trainer-x-node-0-1-xyz12: error: examples: no split 'train'"
    )


@pytest.mark.parametrize(
    "backend, crd, install",
    [
        ("jobset", "jobsets.jobset.x-k8s.io", "kubectl apply --server-side -f https://github.com/"),
        ("trainjob", "trainjobs.trainer.kubeflow.org", "kubectl apply --server-side -k "),
    ],
)
def test_missing_crd_is_one_line(api, backend, crd, install):
    cluster, api_client = api
    cluster.crds = set()
    with pytest.raises(InputError) as err:
        _launch(api_client, backend)
    message = str(err.value)
    assert "\n" not in message and crd in message and install in message


def test_retry_deletes_the_earlier_attempts_job(api, monkeypatch):
    cluster, api_client = api
    monkeypatch.setattr(launcher.time, "sleep", lambda s: None)
    path = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/kubeflow-user/trainjobs"
    cluster.objects[f"{path}/tfkfp-trainer-x"] = {
        "metadata": {"name": "tfkfp-trainer-x"},
        "spec": {"earlier": True},
    }
    cluster.final = {"type": "Complete", "status": "True", "message": "ok"}
    body, message = _launch(api_client, "trainjob")
    assert message == "ok"
    methods = [m for m, p in cluster.calls if p.startswith(path)]
    assert methods.index("DELETE") < methods.index("POST")
    assert cluster.objects[f"{path}/tfkfp-trainer-x"] == body


def test_sigterm_deletes_the_job(api, monkeypatch):
    cluster, api_client = api
    cluster.final = None  # runs until cancelled
    monkeypatch.setattr(launcher.time, "sleep", lambda s: threading.Event().wait(0.05))

    def cancel():
        cluster.posted.wait(30)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=cancel, daemon=True).start()
    with pytest.raises(SystemExit) as exit_:
        _launch(api_client)
    assert exit_.value.code == 143
    assert cluster.objects == {}
    assert (
        "DELETE",
        "/apis/jobset.x-k8s.io/v1alpha2/namespaces/kubeflow-user/jobsets/tfkfp-trainer-x",
    ) in cluster.calls
    assert signal.getsignal(signal.SIGTERM) is not None
