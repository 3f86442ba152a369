"""A local HTTP server answering the Kubernetes REST paths the launcher's client calls.

There is no Kubernetes API server here. This one keeps custom objects (JobSets, TrainJobs),
pods and pod logs in memory, so the launcher's own logic (submit, watch, stream, cancel, fail)
runs through the real `kubernetes` client. With `local_pods` set, a JobSet it receives is run:
each of its pods is a local process running the pod's command with the env a JobSet pod has
(TF_CONFIG on 127.0.0.1 ports, since the pods' DNS names cannot resolve here), and the job's
condition follows the processes' exit codes. Used by tests/test_launcher.py and
bench/multi_node.py (the launcher's own overhead).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tests.helpers import REPO, free_port


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
        self.local_pods: Path | None = None  # a folder for the pods' logs: run JobSets locally
        self.pod_env: dict[str, str] = {}
        self.procs: dict[str, tuple[subprocess.Popen, Path, int]] = {}
        self.on_post = None  # called with each object created (e.g. to play the chief's part)
        self.own_pod: dict | None = None  # what GET pods/<name> answers (404 when None)

    # --- JobSets run as local processes ---

    def start(self, body: dict) -> None:
        from tfkfp.containers.train import cluster_config

        name = body["metadata"]["name"]
        job = body["spec"]["replicatedJobs"][0]
        spec = job["template"]["spec"]
        pods = int(spec["parallelism"])
        command = spec["template"]["spec"]["containers"][0]["command"]
        loopback = [f"127.0.0.1:{free_port()}" for _ in range(pods)]
        base = {
            k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TF_USE_LEGACY_KERAS")
        }
        for index in range(pods):
            env = {
                **base,
                "JOBSET_NAME": name,
                "REPLICATED_JOB_NAME": job["name"],
                "JOB_INDEX": "0",
                "JOB_COMPLETION_INDEX": str(index),
                "TFKFP_WORKERS": str(pods),
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "PYTHONUNBUFFERED": "1",
                **self.pod_env,
            }
            if pods > 1:  # the derived cluster, its DNS names swapped for loopback ports
                config = cluster_config.derive(env)
                config["cluster"]["worker"] = loopback
                env["TF_CONFIG"] = json.dumps(config)
            pod = f"{name}-{job['name']}-0-{index}-local"
            log = self.local_pods / f"{pod}.log"
            with open(log, "w") as out:
                proc = subprocess.Popen(
                    [sys.executable, *command[1:]],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=REPO,
                )
            self.procs[pod] = (proc, log, index)

    def stop(self) -> None:
        for proc, _, _ in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc, _, _ in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)

    def local_condition(self) -> dict | None:
        codes = [proc.poll() for proc, _, _ in self.procs.values()]
        if any(code not in (None, 0) for code in codes):
            return {
                "type": "Failed",
                "status": "True",
                "reason": "FailedJobs",
                "message": "jobset failed due to one or more job failures",
            }
        if codes and all(code == 0 for code in codes):
            return {"type": "Completed", "status": "True", "message": "jobset completed"}
        return None

    def pod_list(self, selector: str) -> list[dict]:
        pods = list(self.pods)
        for name, (proc, _, index) in self.procs.items():
            code = proc.poll()
            phase = "Running" if code is None else ("Succeeded" if code == 0 else "Failed")
            labels = {
                "jobset.sigs.k8s.io/jobset-name": name.rsplit("-", 4)[0],
                "jobset.sigs.k8s.io/job-index": "0",
                "batch.kubernetes.io/job-completion-index": str(index),
            }
            pods.append({"metadata": {"name": name, "labels": labels}, "status": {"phase": phase}})
        wanted = dict(x.split("=", 1) for x in selector.split(",") if "=" in x)
        return [
            p
            for p in pods
            if all(p["metadata"]["labels"].get(k, v) == v for k, v in wanted.items())
        ]


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
            url = urlparse(self.path)
            path, query = url.path, parse_qs(url.query)
            cluster.calls.append((method, path))
            m = re.fullmatch(r"/apis/([^/]+)/[^/]+/namespaces/[^/]+/[^/]+(?:/([^/]+))?", path)
            if m:
                if m.group(1) not in cluster.crds:
                    return self._not_found()
                return self._custom(method, path, m.group(2))
            if re.fullmatch(r"/api/v1/namespaces/[^/]+/pods", path):
                items = cluster.pod_list(query.get("labelSelector", [""])[0])
                return self._send(
                    200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
                )
            m = re.fullmatch(r"/api/v1/namespaces/[^/]+/pods/([^/]+)", path)
            if m and cluster.own_pod is not None and method == "GET":
                if cluster.own_pod.get("kind") == "Status":  # e.g. a 403 for a missing rule
                    return self._send(cluster.own_pod["code"], cluster.own_pod)
                return self._send(200, cluster.own_pod)
            m = re.fullmatch(r"/api/v1/namespaces/[^/]+/pods/([^/]+)/log", path)
            if m:
                if m.group(1) in cluster.procs and query.get("follow", [""])[0].lower() == "true":
                    return self._follow(*cluster.procs[m.group(1)][:2])
                if m.group(1) in cluster.procs:
                    return self._send(200, cluster.procs[m.group(1)][1].read_text())
                return self._send(200, cluster.logs.get(m.group(1), ""))
            return self._not_found()

        def _follow(self, proc, log: Path):
            """A followed log as the API server sends one: chunked, each write as it comes.

            (Unchunked, a client reading in blocks would see lines only 64 KiB at a time.)
            """
            self.protocol_version = "HTTP/1.1"  # chunked encoding needs it; this reply only
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            with open(log, "rb") as fh:
                while True:
                    ended = proc.poll() is not None
                    chunk = fh.read()
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    elif ended:
                        self.wfile.write(b"0\r\n\r\n")
                        self.close_connection = True
                        return
                    else:
                        time.sleep(0.05)

        def _custom(self, method, path, name):
            if method == "POST":
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = f"{path}/{body['metadata']['name']}"
                if key in cluster.objects:
                    return self._send(
                        409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"}
                    )
                cluster.objects[key] = body
                if cluster.on_post is not None:
                    cluster.on_post(body)
                if cluster.local_pods is not None:
                    cluster.start(body)
                cluster.posted.set()
                return self._send(201, body)
            obj = cluster.objects.get(path)
            if obj is None:
                return self._not_found()
            if method == "DELETE":
                del cluster.objects[path]
                cluster.stop()
                return self._send(200, {"kind": "Status", "status": "Success"})
            cluster.gets += 1
            final = cluster.local_condition() if cluster.procs else None
            if final is None and cluster.gets > cluster.finish_after and cluster.final:
                final = cluster.final if cluster.local_pods is None else None
            if final:
                obj = {**obj, "status": {"conditions": [final]}}
            return self._send(200, obj)

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

        def do_DELETE(self):
            self._route("DELETE")

    return Handler


def write_kubeconfig(path: Path, server: str, namespace: str = "default") -> Path:
    """A kubeconfig whose current context is `server` (what `kubectl` on a laptop reads)."""
    import yaml

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server}}],
        "users": [{"name": "me", "user": {"token": "test-token"}}],
        "contexts": [
            {
                "name": "local",
                "context": {"cluster": "local", "user": "me", "namespace": namespace},
            }
        ],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def serve(cluster: Cluster):
    """Runs the fake API server; yields a kubernetes ApiClient pointed at it."""
    from kubernetes import client

    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(cluster))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    try:
        with client.ApiClient(config) as api_client:
            yield api_client
    finally:
        cluster.stop()
        server.shutdown()
