"""Shared fixtures: the real penguin data carried through the real stages once per session."""

import os

# The test process's Keras flavour, decided before anything imports TensorFlow (tf.Transform
# would otherwise choose it silently). Keras 3 is tested in its own process.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import fcntl
import json
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

import pytest

from tests.helpers import (
    PENGUINS_MODULE,
    REPO,
    Ingested,
    Trained,
    Transformed,
    free_port,
    train_penguins,
)
from tests.helpers.servers import (
    S3_CREDENTIALS,
    Bucket,
    Chromium,
    Gcs,
    LockedS3,
    bucket_name,
    start_server,
    wait_for_port,
)

# --- pytest-xdist (make test runs on several workers) ------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the marks added here
def pytest_collection_modifyitems(config, items):
    """Marks the later cases of a `slow_variants` test `slow`; groups module-fixture tests.

    A parametrized test marked `slow_variants` keeps its first case in `make test-fast`; the
    others are `slow`, so `make test` still runs every one (docs/development.md, Markers).

    `make test` runs with `--dist loadgroup`: other tests go to any worker one by one, but a
    module fixture (a built image, a fresh venv, a pipeline run) is then made once, not on
    every worker that happens to get one of its tests.
    """
    first_cases: set[tuple[str, str]] = set()
    for item in items:
        if item.get_closest_marker("slow_variants") and hasattr(item, "callspec"):
            key = (item.module.__name__, item.originalname)
            if key in first_cases:
                item.add_marker(pytest.mark.slow)
            first_cases.add(key)
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group"):
            continue
        if any(
            defs and defs[-1].scope in ("module", "class")
            for defs in info.name2fixturedefs.values()
        ):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def once_per_run(tmp_path_factory, name: str, cls, make):
    """`make(out_dir)` run once for all xdist workers of this run; its dataclass shared as JSON.

    Without xdist it is simply `make(tmp_path_factory.mktemp(name))`. With it, the first worker
    to ask makes it under the run's common base directory while the others wait on a lock, then
    read what it wrote: the same real stages, run once instead of once per worker.
    """
    from dataclasses import asdict

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return make(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root / f"{name}.json"
        if done.is_file():
            return cls(**json.loads(done.read_text()))
        out = root / name
        shutil.rmtree(out, ignore_errors=True)  # a worker that failed making it
        out.mkdir()
        value = make(out)
        done.write_text(json.dumps(asdict(value)))
        return value


@pytest.fixture(scope="session")
def penguins_csv() -> Path:
    return Path(str(resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv"))


@pytest.fixture(scope="session")
def ingested(tmp_path_factory, penguins_csv) -> Ingested:
    from tfkfp.containers import ingest

    def make(out: Path) -> Ingested:
        counts = ingest.run(str(penguins_csv), str(out / "examples"), str(out / "schema")).rows
        return Ingested(str(out / "examples"), str(out / "schema"), counts)

    return once_per_run(tmp_path_factory, "ingest", Ingested, make)


@pytest.fixture(scope="session")
def transformed(tmp_path_factory, ingested) -> Transformed:
    from tfkfp.containers import transform

    def make(out: Path) -> Transformed:
        counts = transform.run(
            ingested.examples,
            ingested.schema,
            PENGUINS_MODULE,
            str(out / "graph"),
            str(out / "examples"),
        ).rows
        return Transformed(str(out / "graph"), str(out / "examples"), counts)

    return once_per_run(tmp_path_factory, "transform", Transformed, make)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, ingested, transformed) -> Trained:
    return once_per_run(
        tmp_path_factory,
        "trainer",
        Trained,
        lambda out: train_penguins(out, ingested, transformed, 150),
    )


@pytest.fixture
def copy_tree(tmp_path):
    def _copy(src: str, name: str) -> str:
        dst = tmp_path / name
        shutil.copytree(src, dst)
        return str(dst)

    return _copy


# --- evaluator ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def weak_trained(tmp_path_factory, ingested, transformed) -> Trained:
    """A real penguin model trained for one step: a baseline a trained model beats."""
    return once_per_run(
        tmp_path_factory,
        "weak_trainer",
        Trained,
        lambda out: train_penguins(out, ingested, transformed, 1),
    )


# --- trainer ------------------------------------------------------------------------------


# --- pusher: a real GCS-compatible server (gcp-storage-emulator) ---------------------------------


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory) -> str:
    """Starts gcp-storage-emulator in its own process; yields its URL for STORAGE_EMULATOR_HOST."""
    import time
    import urllib.request

    port = free_port()
    log = open(tmp_path_factory.mktemp("gcs") / "emulator.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory", "-q"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gcp-storage-emulator did not start, see {log.name}") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture
def gcs(gcs_server, monkeypatch, request) -> Gcs:
    """A fresh bucket on the emulator, with STORAGE_EMULATOR_HOST set for this test."""
    import re
    import uuid

    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server)
    client = storage.Client()
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    name = f"{name}-{uuid.uuid4().hex[:8]}"
    client.create_bucket(name)
    return Gcs(gcs_server, name, client)


# --- S3: a real S3-compatible server (moto in server mode) -----------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> str:
    """Starts moto's S3 server in its own process; yields its URL for AWS_ENDPOINT_URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc, log = start_server(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        tmp_path_factory.mktemp("s3") / "moto.log",
        url,
    )
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture
def s3(s3_server, monkeypatch, request) -> Bucket:
    """A fresh bucket on the S3 server, with AWS_ENDPOINT_URL and dummy credentials set.

    They are set in os.environ, so stage processes started by the test (kfp.local tasks,
    subprocesses) inherit them.
    """
    import boto3

    for key in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=s3_server)
    name = bucket_name(request)
    client.create_bucket(Bucket=name)
    return Bucket(f"s3://{name}", name, s3_server, client)


def _strict_s3_server(tmp_path_factory, *flags: str):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    script = Path(__file__).parent / "helpers" / "strict_s3.py"
    return url, start_server(
        [sys.executable, str(script), str(port), *flags],
        tmp_path_factory.mktemp("s3strict") / "strict.log",
        url,
    )


@pytest.fixture(scope="session")
def strict_s3_server(tmp_path_factory) -> str:
    """moto's S3 server refusing trailing-checksum (aws-chunked) uploads, as MinIO/Ceph do."""
    url, (proc, log) = _strict_s3_server(tmp_path_factory)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="session")
def virtual_only_s3_server(tmp_path_factory) -> str:
    """The strict server refusing path-style requests too; its URL names localhost, so that
    virtual-hosted requests go to <bucket>.localhost (loopback for the AWS SDK's curl)."""
    url, (proc, log) = _strict_s3_server(tmp_path_factory, "--virtual-only")
    yield url.replace("127.0.0.1", "localhost")
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _bucket_on(url: str, monkeypatch, request) -> Bucket:
    import boto3

    for key in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key in ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("TFKFP_S3_ADDRESSING_STYLE", raising=False)
    for key, value in {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": url}.items():
        monkeypatch.setenv(key, value)
    # The test's own client: path-style over 127.0.0.1 (creating a bucket passes every check).
    client = boto3.client("s3", endpoint_url=url.replace("localhost", "127.0.0.1"))
    name = bucket_name(request)
    client.create_bucket(Bucket=name)
    return Bucket(f"s3://{name}", name, url, client)


@pytest.fixture
def strict_s3(strict_s3_server, monkeypatch, request) -> Bucket:
    """A fresh bucket on the strict S3 server, with AWS_ENDPOINT_URL and credentials set."""
    return _bucket_on(strict_s3_server, monkeypatch, request)


@pytest.fixture
def virtual_only_s3(virtual_only_s3_server, monkeypatch, request) -> Bucket:
    """A fresh bucket on the strict server that serves virtual-hosted addressing only."""
    return _bucket_on(virtual_only_s3_server, monkeypatch, request)


@pytest.fixture(params=["gs", "s3"])
def bucket(request) -> Bucket:
    """A fresh bucket on the GCS emulator, then (second run) on the S3 server."""
    if request.param == "gs":
        gcs = request.getfixturevalue("gcs")
        return Bucket(f"gs://{gcs.bucket}", gcs.bucket, gcs.url, gcs.client)
    return request.getfixturevalue("s3")


@pytest.fixture(scope="session")
def locked_s3(tmp_path_factory) -> LockedS3:
    """moto's S3 server with IAM checks on: a bucket and a user without any permission.

    moto lets the first INITIAL_NO_AUTH_ACTION_COUNT requests through unchecked: they create
    the bucket, its object, the user and the user's key; the rest are spent before use.
    """
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc, log = start_server(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        tmp_path_factory.mktemp("s3locked") / "moto.log",
        url,
        env={"INITIAL_NO_AUTH_ACTION_COUNT": "10"},
    )
    setup = {
        "endpoint_url": url,
        "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key": "setup",
        "region_name": "us-east-1",
    }
    boto3.client("s3", **setup).create_bucket(Bucket="locked")
    boto3.client("s3", **setup).put_object(Bucket="locked", Key="data/a.csv", Body=b"a\n1\n")
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    # Spend what is left of the unchecked requests: from here on every request is checked.
    import botocore.exceptions

    for _ in range(10):
        try:
            boto3.client("s3", **setup).list_buckets()
        except botocore.exceptions.ClientError:
            break
    else:
        raise RuntimeError("moto's S3 server does not check credentials")
    yield LockedS3(url, "locked", "data/a.csv", key["AccessKeyId"], key["SecretAccessKey"])
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="session")
def denying_gcs() -> str:
    """A loopback HTTP server answering every request as GCS does when IAM denies it (403).

    The emulator has no access control, and Google's IAM cannot run here: this stands in for
    the one response under test, through the real client.
    """
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = json.dumps(
        {
            "error": {
                "code": 403,
                "message": "caller does not have storage.objects.get access",
                "errors": [{"reason": "forbidden", "domain": "global"}],
            }
        }
    ).encode()

    class Deny(BaseHTTPRequestHandler):
        def _deny(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _deny

        def do_HEAD(self):
            self.send_response(403)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


# --- Docker (tests/test_images.py) -------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_client():
    """A running Docker engine; started here (apt-get install docker.io) when none answers."""
    from tests.helpers import docker_env

    # xdist workers would otherwise each start a dockerd
    with open(os.path.join(tempfile.gettempdir(), "tfkfp-dockerd.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return docker_env.engine()


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """A local Debian bookworm + Python 3.11 image (no registry is reachable on these machines)."""
    from tests.helpers import docker_env

    # xdist workers would otherwise each debootstrap it
    with open(os.path.join(tempfile.gettempdir(), "tfkfp-base-image.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return docker_env.base_image(docker_client)


# --- Beam's portable runner: a job service and an external worker pool, as a cluster's ------------


@pytest.fixture(scope="session")
def beam_portable(tmp_path_factory) -> list[str]:
    """Starts Beam's Python job service and an external worker pool in their own processes.

    Yields the beam_pipeline_args that send a pipeline there. The pool starts each SDK worker
    as `python` from PATH, hence this venv's bin first.
    """
    logs = tmp_path_factory.mktemp("beam")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    job_port, pool_port = free_port(), free_port()
    procs = []
    for module, flag, port in (
        ("apache_beam.runners.portability.local_job_service_main", "-p", job_port),
        ("apache_beam.runners.worker.worker_pool_main", "--service_port", pool_port),
    ):
        log_path = logs / f"{module.rsplit('.', 1)[1]}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", module, flag, str(port)],
            stdout=open(log_path, "w"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        procs.append(proc)
        wait_for_port(port, proc, log_path)
    yield [
        "--runner=PortableRunner",
        f"--job_endpoint=localhost:{job_port}",
        "--environment_type=EXTERNAL",
        f"--environment_config=localhost:{pool_port}",
    ]
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


# --- a real browser for the HTML artifacts -----------------------------------------------------


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> Chromium:
    """Debian's `chromium`, installed with apt-get when missing (as tests/helpers/docker_env.py does)."""
    # make test-fast's workers (pytest-xdist) would otherwise race for dpkg's lock
    with open(os.path.join(tempfile.gettempdir(), "tfkfp-chromium.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        exe = shutil.which("chromium")
        if exe is None:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
            exe = shutil.which("chromium")
    assert exe, "chromium: not installed and apt-get did not install it"
    return Chromium(exe, tmp_path_factory.mktemp("chromium"))


@pytest.fixture
def kfp_server():
    """A local server speaking KFP's REST API (tests.helpers.kfp_api), stopped afterwards."""
    from tests.helpers.kfp_api import start_fake_kfp

    state, server = start_fake_kfp()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nothing can be written under: a read-only tmpfs as root, else mode 0o555."""
    path = tmp_path / "read-only"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)]
    if subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("root without the right to mount a read-only tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


# --- a full filesystem: a real tmpfs, filled to leave a chosen room -----------------------------


@pytest.fixture
def small_fs(tmp_path):
    """A 64 MiB tmpfs under tmp_path; `leave(n)` makes writes past n bytes fail with Errno 28.

    tmpfs takes memory only for what is written, the filler included.
    """
    from tests.helpers.fullfs import SmallFs, can_mount

    if not can_mount():
        pytest.fail("mounting a tmpfs needs root; these machines run the tests as root")
    fs = SmallFs(tmp_path / "small", 64 << 20)
    yield fs
    fs.unmount()


# A real Pod Security checker: checkov's Kubernetes checks. Its own environment (checkov pins
# versions tfkfp's constraints cannot take), made once per checkout under .venv-checkov.
CHECKOV = "checkov==3.3.30"


@pytest.fixture(scope="session")
def checkov() -> Path:
    """The `checkov` command of a virtualenv beside the checkout's."""
    venv = REPO / ".venv-checkov"
    exe = venv / "bin" / "checkov"
    with open(REPO / ".venv-checkov.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "--quiet", CHECKOV],
                check=True,
                timeout=1200,
            )
    return exe
