"""`tfkfp upload` / `submit` against a local HTTP server speaking KFP's v2beta1 REST routes.

There is no KFP cluster here. The server below answers the routes kfp.Client 2.17 calls
(healthz, pipelines list/upload/upload_version, experiments list/create, runs create) the way
the KFP API server does, and records what arrives, so the tests check the bytes and values
a real cluster would receive.
"""

import socket
import threading
from http.server import ThreadingHTTPServer

import pytest
import yaml

from tests.helpers import REPO, run_cli


@pytest.fixture(scope="module")
def taxi_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("yaml") / "taxi.yaml"
    proc = run_cli("compile", "taxi", "-o", str(path))
    assert proc.returncode == 0, proc.stderr
    return path


def _lines(proc) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)


def _cli(*args, home):
    # a fresh HOME: kfp.Client reads and writes ~/.config/kfp/context.json
    return run_cli(*args, env={"HOME": str(home), "KF_PIPELINES_ENDPOINT": ""})


@pytest.mark.slow  # another CLI process against the loopback KFP server
def test_upload_sends_the_yaml_byte_for_byte_then_adds_versions(kfp_server, taxi_yaml, tmp_path):
    first = _cli("upload", str(taxi_yaml), "--host", kfp_server.host, home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert _lines(first)["pipeline_name"] == "taxi"
    assert len(kfp_server.pipelines) == 1
    uploaded = kfp_server.versions[0]
    assert uploaded["yaml"] == taxi_yaml.read_bytes()
    assert uploaded["name"] == "taxi"

    second = _cli(
        "upload", str(taxi_yaml), "--host", kfp_server.host, "--version", "v2", home=tmp_path
    )
    assert second.returncode == 0, second.stderr
    assert _lines(second)["version"] == "v2"
    assert len(kfp_server.pipelines) == 1  # same pipeline, a new version
    assert [v["name"] for v in kfp_server.versions] == ["taxi", "v2"]
    assert kfp_server.versions[1]["yaml"] == taxi_yaml.read_bytes()
    assert kfp_server.versions[1]["pipeline_id"] == next(iter(kfp_server.pipelines))


def test_upload_under_another_name_with_version(kfp_server, taxi_yaml, tmp_path):
    proc = _cli(
        "upload", str(taxi_yaml), "--host", kfp_server.host, "--name", "taxi-prod",
        "--version", "2026.1", home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [p["display_name"] for p in kfp_server.pipelines.values()] == ["taxi-prod"]
    assert [v["name"] for v in kfp_server.versions] == ["taxi-prod", "2026.1"]


def test_submit_sends_spec_and_typed_parameters(kfp_server, taxi_yaml, tmp_path):
    proc = _cli(
        "submit", str(taxi_yaml), "--host", kfp_server.host, "--experiment", "taxi-dev",
        "--param", "data_uri=gs://bucket/taxi.csv", "--param", "push_destination=gs://bucket/serving",
        "--param", "train_steps=50", "--param", "use_gpu=true",
        "--param", 'beam_pipeline_args=["--direct_num_workers=2"]',
        "--run-name", "nightly", "--pipeline-root", "gs://bucket/root", home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (run,) = kfp_server.runs
    assert run["display_name"] == "nightly"
    assert kfp_server.experiments[run["experiment_id"]]["display_name"] == "taxi-dev"
    assert run["runtime_config"]["parameters"] == {
        "data_uri": "gs://bucket/taxi.csv",
        "push_destination": "gs://bucket/serving",
        "train_steps": 50,
        "use_gpu": True,
        "beam_pipeline_args": ["--direct_num_workers=2"],
    }
    assert run["runtime_config"]["pipeline_root"] == "gs://bucket/root"
    assert run["pipeline_spec"] == yaml.safe_load(taxi_yaml.read_text())
    out = _lines(proc)
    assert out["url"] == f"{kfp_server.host}/#/runs/details/{run['run_id']}"


@pytest.mark.slow  # another CLI process against the loopback KFP server
def test_submit_without_caching_turns_it_off_in_every_task(kfp_server, taxi_yaml, tmp_path):
    proc = _cli(
        "submit", str(taxi_yaml), "--host", kfp_server.host, "--no-enable-caching",
        "--param", "data_uri=gs://b/t.csv", "--param", "push_destination=gs://b/s", home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    spec = kfp_server.runs[0]["pipeline_spec"]
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    tasks = {name: t for dag in dags for name, t in dag["tasks"].items()}
    assert {"ingest", "transform", "trainer", "trainer-2", "evaluator", "pusher"} <= set(tasks)
    assert all(not t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())
    # the user's file is untouched
    assert "enableCache: true" in taxi_yaml.read_text()


@pytest.mark.slow  # another CLI process against the loopback KFP server
def test_submit_compiles_a_pipeline_reference(kfp_server, tmp_path):
    proc = _cli(
        "submit", "penguins", "--host", kfp_server.host,
        "--param", "data_uri=gs://b/p.csv", "--param", "push_destination=gs://b/s", home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert kfp_server.runs[0]["pipeline_spec"]["pipelineInfo"]["name"] == "penguins"
    assert kfp_server.experiments  # kfp's "Default" experiment was created


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "{yaml}", "--param", "colour=red"], "has no parameter 'colour'"),
        (["submit", "{yaml}", "--param", "train_steps=lots"], "expected int, got 'lots'"),
        (["submit", "{yaml}", "--param", "use_gpu=maybe"], "expected bool, got 'maybe'"),
        (["submit", "{yaml}", "--param", "data_uri=x"], "taxi needs push_destination"),
        (["upload", "missing.yaml"], "no such file 'missing.yaml'"),
        (["upload", "nope"], "pipeline: 'nope' is neither"),
        (["upload", "{tmp}/notes.yaml"], "notes.yaml is not a compiled KFP pipeline"),
        (["upload", "{repo}/.ci/run.yaml"], "no such file"),
        (["upload", "pipelines/taxi/pipeline.py:nope"], "no pipeline function 'nope'"),
    ],
)
@pytest.mark.slow_variants  # each case is a CLI process
def test_bad_input_is_one_line_exit_2(kfp_server, taxi_yaml, tmp_path, args, message):
    (tmp_path / "notes.yaml").write_text("shopping: [eggs, milk]\n")
    args = [a.format(yaml=taxi_yaml, repo=REPO, tmp=tmp_path) for a in args]
    proc = _cli(*args, "--host", kfp_server.host, home=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not kfp_server.runs and not kfp_server.versions


def test_unreachable_host_is_one_line_exit_2(taxi_yaml, tmp_path):
    host = f"http://127.0.0.1:{_free_port()}"  # nothing listens: connection refused
    proc = _cli("upload", str(taxi_yaml), "--host", host, home=tmp_path)
    assert proc.returncode == 2
    assert f"--host: cannot reach Kubeflow Pipelines at {host}" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture
def hang_up_server():
    """A loopback TCP server that accepts each connection and closes it unanswered, counting them."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed at teardown
                return
            accepted.append(conn.getpeername())
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    server.close()


@pytest.mark.slow  # another CLI process against the loopback KFP server
def test_host_that_hangs_up_is_one_line_exit_2_after_one_connection(
    hang_up_server, taxi_yaml, tmp_path
):
    host, accepted = hang_up_server
    proc = _cli("upload", str(taxi_yaml), "--host", host, home=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"--host: cannot reach Kubeflow Pipelines at {host}" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    # one connection: the probe gives up at once; kfp.Client alone retries healthz for ~30 s
    assert len(accepted) == 1, accepted


@pytest.fixture
def plain_http_server(tmp_path):
    """A plain HTTP server (not KFP) on loopback: serves a folder, 404 elsewhere."""
    import functools
    from http.server import SimpleHTTPRequestHandler

    site = tmp_path / "site"
    (site / "apis" / "v2beta1").mkdir(parents=True)
    requests = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", site, requests
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("page", [None, "<html>It works!</html>"])
@pytest.mark.slow_variants  # each case is a CLI process
def test_host_that_is_not_kfp_is_one_line_exit_2_after_one_request(
    plain_http_server, taxi_yaml, tmp_path, page
):
    host, site, requests = plain_http_server
    if page is not None:  # an HTML page where KFP's healthz would answer
        (site / "apis" / "v2beta1" / "healthz").write_text(page)
    proc = _cli(
        "submit", str(taxi_yaml), "--host", host,
        "--param", "data_uri=gs://b/t.csv", "--param", "push_destination=gs://b/s", home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"--host: {host} is not a Kubeflow Pipelines API" in proc.stderr
    assert ("404" if page is None else "not KFP's JSON healthz") in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    # one probe and out: no kfp.Client, whose healthz retries took 26 s and five tracebacks
    assert requests == ["/apis/v2beta1/healthz"], requests


def test_missing_host_is_one_line_exit_2(taxi_yaml, tmp_path):
    proc = _cli(
        "submit",
        str(taxi_yaml),
        "--param",
        "data_uri=a",
        "--param",
        "push_destination=b",
        home=tmp_path,
    )
    assert proc.returncode == 2
    assert "KF_PIPELINES_ENDPOINT is unset" in proc.stderr


@pytest.mark.slow  # another CLI process against the loopback KFP server
def test_host_from_environment_as_kfp_reads_it(kfp_server, taxi_yaml, tmp_path):
    proc = run_cli(
        "upload", str(taxi_yaml),
        env={"HOME": str(tmp_path), "KF_PIPELINES_ENDPOINT": kfp_server.host},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert kfp_server.versions


@pytest.mark.slow  # another CLI process against the loopback KFP server
def test_server_error_is_one_line_exit_1(kfp_server, taxi_yaml, tmp_path):
    kfp_server.fail_runs = "run quota exceeded"
    proc = _cli(
        "submit", str(taxi_yaml), "--host", kfp_server.host,
        "--param", "data_uri=gs://b/t.csv", "--param", "push_destination=gs://b/s", home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    (error,) = [line for line in proc.stderr.splitlines() if "error" in line]
    assert error == "tfkfp: error: KFP API 500 Internal Server Error: run quota exceeded"


@pytest.mark.slow  # another CLI process against the loopback KFP server
def test_empty_name_is_bad_usage(kfp_server, taxi_yaml, tmp_path):
    proc = _cli("upload", str(taxi_yaml), "--host", kfp_server.host, "--name", " ", home=tmp_path)
    assert proc.returncode == 2 and "--name: expected a non-empty" in proc.stderr
    assert not kfp_server.versions


@pytest.mark.parametrize("command", ["compile", "run", "upload", "submit"])
def test_help(command):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0
    assert "usage: tfkfp " + command in proc.stdout
