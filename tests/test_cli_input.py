"""The CLI's bad-input answers: one line, a non-zero exit, nothing left half-written."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import run_cli


@pytest.fixture
def healthz_only_server():
    """A real HTTP server on loopback: KFP's health check answers, every other request hangs."""
    stop = threading.Event()
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(f"GET {self.path}")
            if self.path.startswith("/apis/v2beta1/healthz"):
                body = json.dumps({"commit_sha": "abc", "multi_user": False}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            stop.wait(120)  # took the request, never answers

        def do_POST(self):
            seen.append(f"POST {self.path}")
            stop.wait(120)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    stop.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("command", ["submit", "upload"])
@pytest.mark.slow  # a loopback server and a client timeout
def test_a_server_that_answers_only_healthz_does_not_hang(tmp_path, healthz_only_server, command):
    host, seen = healthz_only_server
    yaml_path = tmp_path / "p.yaml"
    assert run_cli("compile", "penguins", "-o", str(yaml_path)).returncode == 0
    args = [command, str(yaml_path), "--host", host, "--timeout", "3"]
    if command == "submit":
        args += ["--param", "data_uri=gs://b/penguins.csv", "--param", "push_destination=gs://b/s"]
    proc = run_cli(*args, timeout=120)  # kfp's own client would wait for ever
    assert proc.returncode == 1, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"tfkfp: error: {command}: the KFP API at {host} did not answer ")
    assert "within 3 s (--timeout); its health check had answered" in line
    asked = line.split("did not answer ")[1].split(" within")[0]
    method, url = asked.split(" ", 1)
    asked_paths = [r.split("?")[0] for r in seen]
    assert url.startswith(host) and f"{method} {url[len(host) :]}" in asked_paths  # it asked that
    assert "/healthz" not in url


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (
            ("schema", "{data}", "-o", "/proc/schema.pbtxt"),
            "--output: cannot write /proc/schema.pbtxt",
        ),
        (("schema", "{data}", "-o", "{tmp}/a_file/s.pbtxt"), "a_file is a file, not a folder"),
        (("schema", "{data}", "-o", "{tmp}"), "is a folder; expected a schema.pbtxt file path"),
        (
            ("run", "penguins", "--local", "--pipeline-root", "/proc/tfkfp"),
            "--pipeline-root: cannot write /proc/tfkfp",
        ),
        (
            ("run", "penguins", "--local", "--pipeline-root", "{tmp}/a_file/root"),
            "--pipeline-root: cannot write",
        ),
    ],
)
def test_unwritable_output_paths_are_one_line_exit_2(tmp_path, penguins_csv, command, flag):
    (tmp_path / "a_file").write_text("not a folder\n")
    args = [a.format(tmp=tmp_path, data=penguins_csv) for a in command]
    proc = run_cli(*args, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert flag in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("/data/tuning", "a local folder works with `tfkfp run --local` only"),
        ("tuning", "a local folder works with `tfkfp run --local` only"),
        ("/gcs/my-bucket/tuning", "use gs://my-bucket/tuning"),
    ],
)
@pytest.mark.slow_variants  # each case is a CLI process
def test_submit_refuses_a_local_import_path(tmp_path, value, hint):
    """KFP's backend fails an importer without scheme://bucket; refused before any request."""
    proc = run_cli(
        "submit", "penguins_tuned", "--host", "http://127.0.0.1:9",
        "--param", "data_uri=gs://b/penguins.csv", "--param", f"hyperparameters_uri={value}",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(
        "tfkfp: error: --param hyperparameters_uri: KFP's backend imports only a "
        f"scheme://bucket/path URI, got {value!r}"
    )
    assert hint in line


def test_submit_takes_an_import_uri_with_a_scheme(tmp_path):
    """gs:// passes the importer check: the next step (reaching the host) is what fails."""
    proc = run_cli(
        "submit", "penguins_tuned", "--host", "http://127.0.0.1:9",
        "--param", "data_uri=gs://b/penguins.csv", "--param", "hyperparameters_uri=gs://b/tuning",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--host: cannot reach Kubeflow Pipelines at http://127.0.0.1:9" in proc.stderr
