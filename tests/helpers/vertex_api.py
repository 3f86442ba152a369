"""A local HTTP server speaking Vertex AI's CustomJob REST shapes (v1), for the launcher.

No Vertex AI project is reachable here. This server answers create, get, list (filtered by a
label) and cancel on `projects/{p}/locations/{l}/customJobs` as the API documents them
(https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.customJobs):
a job moves through a script of states on each GET, a failed one carries `error.message`, a
cancelled one goes JOB_STATE_CANCELLING then JOB_STATE_CANCELLED. A unit test of our own logic.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ENDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")


class FakeVertex:
    """Jobs by resource name, the requests received, and the states a new job goes through."""

    def __init__(self):
        self.jobs: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.script = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
        self.error = ""  # error.message of a job that reaches JOB_STATE_FAILED
        self.created = threading.Event()
        self.steps: dict[str, list[str]] = {}
        self.projects = {"p1"}  # others are refused, as a project the caller may not use
        self.on_create = None  # called with each job created (e.g. to play the chief's part)
        self.authorization: set[str] = set()  # the Authorization headers received

    def add(self, parent: str, body: dict, state: str) -> dict:
        name = f"{parent}/customJobs/{1000 + len(self.jobs)}"
        job = {**body, "name": name, "state": state, "createTime": "2026-01-01T00:00:00Z"}
        self.jobs[name] = job
        return job


def _handler(vertex: FakeVertex):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code, status, message):
            self._send(code, {"error": {"code": code, "message": message, "status": status}})

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length)) if length else {}

        def _refused(self, path: str) -> bool:
            project = re.match(r"/v1/projects/([^/]+)/", path)
            if project and project[1] not in vertex.projects:
                self._error(
                    403,
                    "PERMISSION_DENIED",
                    f"Permission denied on resource project {project[1]}.",
                )
                return True
            return False

        def do_POST(self):
            path = urlparse(self.path).path
            vertex.calls.append(("POST", path))
            vertex.authorization.add(self.headers.get("Authorization", ""))
            if self._refused(path):
                return
            m = re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+)/customJobs", path)
            if m:
                body = self._body()
                if not body.get("displayName") or not body.get("jobSpec", {}).get(
                    "workerPoolSpecs"
                ):
                    return self._error(400, "INVALID_ARGUMENT", "displayName and jobSpec needed")
                job = vertex.add(m.group(1), body, "JOB_STATE_QUEUED")
                vertex.steps[job["name"]] = list(vertex.script)
                if vertex.on_create is not None:
                    vertex.on_create(job)
                vertex.created.set()
                return self._send(200, job)
            m = re.fullmatch(r"/v1/(projects/.+/customJobs/\d+):cancel", path)
            if m:
                job = vertex.jobs.get(m.group(1))
                if job is None:
                    return self._error(404, "NOT_FOUND", f"{m.group(1)} not found")
                if job["state"] not in ENDED:
                    job["state"] = "JOB_STATE_CANCELLING"
                    vertex.steps[job["name"]] = ["JOB_STATE_CANCELLED"]
                return self._send(200, {})
            return self._error(404, "NOT_FOUND", path)

        def do_GET(self):
            url = urlparse(self.path)
            vertex.calls.append(("GET", url.path))
            vertex.authorization.add(self.headers.get("Authorization", ""))
            if self._refused(url.path):
                return
            m = re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+)/customJobs", url.path)
            if m:
                wanted = parse_qs(url.query).get("filter", [""])[0]
                label = re.fullmatch(r'labels\.([\w-]+)="([^"]*)"', wanted)
                jobs = [
                    j
                    for n, j in vertex.jobs.items()
                    if n.startswith(m.group(1))
                    and (not label or j.get("labels", {}).get(label[1]) == label[2])
                ]
                return self._send(200, {"customJobs": jobs} if jobs else {})
            m = re.fullmatch(r"/v1/(projects/.+/customJobs/\d+)", url.path)
            job = vertex.jobs.get(m.group(1)) if m else None
            if job is None:
                return self._error(404, "NOT_FOUND", url.path)
            steps = vertex.steps.get(job["name"]) or []
            if steps:
                job["state"] = steps.pop(0)
                if job["state"] == "JOB_STATE_FAILED":
                    job["error"] = {"code": 3, "message": vertex.error}
            return self._send(200, job)

    return Handler


@contextlib.contextmanager
def serve(vertex: FakeVertex):
    """Runs the fake Vertex API; yields its endpoint (http://127.0.0.1:PORT)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(vertex))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


TOKEN = "local-access-token"


@contextlib.contextmanager
def serve_token():
    """An OAuth 2.0 token endpoint (a service account's JWT grant) on loopback; yields its URL.

    google-auth's service-account credentials (GOOGLE_APPLICATION_CREDENTIALS) take their
    token from it, so the launcher's own credential path runs as it does with a key file.
    """

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            data = json.dumps(
                {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()


def service_account_file(path, token_uri: str):
    """An application-default credentials file (a service account key, made here) whose
    token endpoint is `token_uri`: google-auth signs its JWT grant and posts it there."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "p1",
        "private_key_id": "local",
        "private_key": pem,
        "client_email": "launcher@p1.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info))
    return path
