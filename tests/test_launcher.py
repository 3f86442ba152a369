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


# SIGTERM to this process: the launcher's handler needs the main thread, which an xdist worker
# (make test-fast) may not give it; make test runs it in one process (serial).
@pytest.mark.slow
@pytest.mark.serial
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


# --- the launcher's outputs, and the pods' side, on an object store (moto's S3 server) ---


def _trainer_kwargs(root: str) -> dict:
    return {
        "examples": f"{root}/examples",
        "schema": f"{root}/schema",
        "module_file": "tfkfp.pipelines.penguins.module",
        "model": f"{root}/model",
        "model_run": f"{root}/model_run",
        "curves": f"{root}/curves.html",
    }


def test_failed_job_publishes_nothing(api, s3, capsys, monkeypatch):
    cluster, api_client = api
    monkeypatch.setattr(launcher.time, "sleep", lambda s: None)
    cluster.final = {"type": "Failed", "status": "True", "message": "worker 1 failed"}
    kwargs = _trainer_kwargs(s3.uri)
    s3.client.put_object(Bucket=s3.name, Key="model/saved_model.pb", Body=b"earlier attempt")
    s3.client.put_object(Bucket=s3.name, Key="curves.html", Body=b"earlier attempt")
    with pytest.raises(SystemExit) as exit_:
        launcher.run(
            "trainer", 2, "jobset", kwargs, image="tfkfp:1", namespace=NS, api_client=api_client
        )
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: JobSet tfkfp-trainer-") and "worker 1 failed" in err[-1]
    assert s3.names() == []
    # The job the launcher built: its pods run the trainer with these URIs.
    (body,) = cluster.objects.values()
    pod = body["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == launcher.worker_command("trainer", kwargs)


def test_multi_node_needs_object_store_outputs(tmp_path):
    from tfkfp.containers import trainer

    kwargs = _trainer_kwargs(str(tmp_path))
    with pytest.raises(InputError, match="model: workers > 1 write it from their own pods"):
        trainer.run(**kwargs, workers=2)
    with pytest.raises(InputError, match="workers: expected 1 or more nodes, got 0"):
        trainer.run(**kwargs, workers=0)


@pytest.mark.slow
def test_pod_worker_reads_and_writes_the_store(tmp_path, s3, ingested, transformed):
    """What one pod runs (TFKFP_WORKERS=1): inputs from S3, the chief's outputs back to it."""
    import subprocess
    import sys

    from tests.helpers import REPO
    from tfkfp.containers import storage, trainer

    kwargs = _trainer_kwargs(s3.uri)
    storage.upload(transformed.examples, kwargs["examples"], "examples")
    storage.upload(ingested.schema, kwargs["schema"], "schema")
    storage.upload(transformed.graph, f"{s3.uri}/transform_graph", "transform_graph")
    kwargs.update(transform_graph=f"{s3.uri}/transform_graph", train_steps=2, eval_steps=1)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TF_USE_LEGACY_KERAS")}
    env.update(
        JOBSET_NAME="tfkfp-trainer-x",
        REPLICATED_JOB_NAME="node",
        JOB_INDEX="0",
        JOB_COMPLETION_INDEX="0",
        TFKFP_WORKERS="1",
        TF_CPP_MIN_LOG_LEVEL="1",
    )
    proc = subprocess.run(
        [sys.executable, *launcher.worker_command("trainer", kwargs)[1:]],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TF_CONFIG derived from the JobSet environment" in proc.stderr
    assert "model/saved_model.pb" in s3.names("model/")
    assert s3.names("curves.html") == ["curves.html"]
    trainer.check_saved_model(storage.download(kwargs["model"], str(tmp_path / "m"), "model"))
