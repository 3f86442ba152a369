"""A local HTTP server speaking the KFP v2beta1 REST routes kfp.Client 2.17 calls.

There is no KFP cluster here. It answers healthz, pipelines list/upload/upload_version,
experiments list/create and runs create the way the KFP API server does, and records what
arrives, so tests check the bytes and values a real cluster would receive.
"""

import json
import threading
import uuid
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

API = "/apis/v2beta1"


class FakeKfp:
    """State of the fake KFP API server: pipelines, versions, experiments, runs, requests."""

    def __init__(self):
        self.pipelines: dict[str, dict] = {}
        self.versions: list[dict] = []
        self.experiments: dict[str, dict] = {}
        self.runs: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.fail_runs = ""  # when set, creating a run answers 500 with this message


def _name_filter(query: dict) -> str | None:
    raw = query.get("filter", [""])[0]
    if not raw:
        return None
    for predicate in json.loads(raw).get("predicates", []):
        if predicate.get("key") == "display_name":
            return predicate.get("string_value", predicate.get("stringValue"))
    return None


def _upload(handler) -> tuple[str, bytes]:
    """The multipart `uploadfile` part: (filename, bytes)."""
    length = int(handler.headers["Content-Length"])
    body = handler.rfile.read(length)
    head = f"Content-Type: {handler.headers['Content-Type']}\r\n\r\n".encode()
    message = BytesParser(policy=email_policy).parsebytes(head + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "uploadfile":
            return part.get_filename(), part.get_payload(decode=True)
    raise ValueError("no uploadfile part")


def _handler(state: FakeKfp):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self):
            self._reply(404, {"code": 5, "message": f"no route {self.command} {self.path}"})

        def do_GET(self):
            url = urlparse(self.path)
            query = parse_qs(url.query)
            state.requests.append(("GET", url.path))
            if url.path == f"{API}/healthz":
                return self._reply(200, {"multi_user": False})
            if url.path == f"{API}/pipelines":
                name = _name_filter(query)
                found = [p for p in state.pipelines.values() if name in (None, p["display_name"])]
                return self._reply(
                    200, {"pipelines": found, "total_size": len(found)} if found else {}
                )
            if url.path == f"{API}/experiments":
                name = _name_filter(query)
                found = [e for e in state.experiments.values() if name in (None, e["display_name"])]
                return self._reply(
                    200, {"experiments": found, "total_size": len(found)} if found else {}
                )
            return self._not_found()

        def do_POST(self):
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            state.requests.append(("POST", url.path))
            if url.path == f"{API}/pipelines/upload":
                filename, data = _upload(self)
                name = query.get("name") or query.get("display_name")
                if any(p["display_name"] == name for p in state.pipelines.values()):
                    return self._reply(
                        409, {"code": 6, "message": f"pipeline {name} already exists"}
                    )
                pipeline = {
                    "pipeline_id": str(uuid.uuid4()),
                    "display_name": name,
                    "description": query.get("description", ""),
                    "created_at": "2026-01-01T00:00:00Z",
                }
                state.pipelines[pipeline["pipeline_id"]] = pipeline
                state.versions.append(
                    {
                        "pipeline_id": pipeline["pipeline_id"],
                        "name": name,
                        "file": filename,
                        "yaml": data,
                    }
                )
                return self._reply(200, pipeline)
            if url.path == f"{API}/pipelines/upload_version":
                filename, data = _upload(self)
                if query.get("pipelineid") not in state.pipelines:
                    return self._reply(404, {"code": 5, "message": "pipeline not found"})
                version = {
                    "pipeline_id": query["pipelineid"],
                    "pipeline_version_id": str(uuid.uuid4()),
                    "display_name": query.get("name"),
                }
                state.versions.append(
                    {**version, "name": query.get("name"), "file": filename, "yaml": data}
                )
                return self._reply(200, version)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            if url.path == f"{API}/experiments":
                experiment = {**body, "experiment_id": str(uuid.uuid4())}
                state.experiments[experiment["experiment_id"]] = experiment
                return self._reply(200, experiment)
            if url.path == f"{API}/runs" and state.fail_runs:
                return self._reply(500, {"code": 13, "message": state.fail_runs})
            if url.path == f"{API}/runs":
                if body.get("experiment_id") not in state.experiments:
                    return self._reply(400, {"code": 3, "message": "unknown experiment"})
                run = {**body, "run_id": str(uuid.uuid4()), "state": "PENDING"}
                state.runs.append(run)
                return self._reply(200, run)
            return self._not_found()

    return Handler


def start_fake_kfp() -> tuple[FakeKfp, ThreadingHTTPServer]:
    """Starts the server on a free loopback port; `state.host` is its URL."""
    state = FakeKfp()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.host = f"http://127.0.0.1:{server.server_address[1]}"
    return state, server
