"""Shared fixtures: the real penguin data carried through the real stages once per session."""

import os

# The test process's Keras flavour, decided before anything imports TensorFlow (tf.Transform
# would otherwise choose it silently). Keras 3 is tested in its own process.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PENGUINS_MODULE = "tfkfp.pipelines.penguins.module"


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 600):
    """Runs `python -m tfkfp.cli ...` in a fresh process; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "tfkfp.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd or REPO,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def penguins_csv() -> Path:
    return Path(str(resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv"))


@dataclass
class Ingested:
    examples: str
    schema: str
    counts: dict


@pytest.fixture(scope="session")
def ingested(tmp_path_factory, penguins_csv) -> Ingested:
    from tfkfp.containers import ingest

    out = tmp_path_factory.mktemp("ingest")
    counts = ingest.run(str(penguins_csv), str(out / "examples"), str(out / "schema")).rows
    return Ingested(str(out / "examples"), str(out / "schema"), counts)


@dataclass
class Transformed:
    graph: str
    examples: str
    counts: dict


@pytest.fixture(scope="session")
def transformed(tmp_path_factory, ingested) -> Transformed:
    from tfkfp.containers import transform

    out = tmp_path_factory.mktemp("transform")
    counts = transform.run(
        ingested.examples,
        ingested.schema,
        PENGUINS_MODULE,
        str(out / "graph"),
        str(out / "examples"),
    ).rows
    return Transformed(str(out / "graph"), str(out / "examples"), counts)


@dataclass
class Trained:
    model: str
    model_run: str
    info: dict
    curves: str = ""


def train_penguins(out: Path, ingested: Ingested, transformed: Transformed, steps: int) -> Trained:
    """Trains the demo module on the transformed penguins with the real trainer stage."""
    from dataclasses import asdict

    from tfkfp.containers import trainer

    info = trainer.run(
        examples=transformed.examples,
        schema=ingested.schema,
        module_file=PENGUINS_MODULE,
        model=str(out / "model"),
        model_run=str(out / "model_run"),
        curves=str(out / "curves.html"),
        transform_graph=transformed.graph,
        train_steps=steps,
        eval_steps=min(steps, 5),
    )
    return Trained(
        str(out / "model"), str(out / "model_run"), asdict(info), str(out / "curves.html")
    )


@pytest.fixture(scope="session")
def trained(tmp_path_factory, ingested, transformed) -> Trained:
    return train_penguins(tmp_path_factory.mktemp("trainer"), ingested, transformed, 150)


def write_module(path: Path, source: str) -> str:
    """Writes a small user module file for a bad-input test and returns its path."""
    path.write_text(source)
    return str(path)


def damage_examples(src: str, dst: Path, split: str, how: str) -> str:
    """Copies an examples artifact and damages its `split` file; returns that file's path.

    `boundary`: a valid gzip TFRecord of the first half of the records (a copy cut short on a
    record boundary); `mid_record`: the records' bytes cut inside a record, gzipped again;
    `flipped`: one byte of the compressed file changed.
    """
    import glob
    import gzip

    from tfkfp.containers import ingest

    shutil.copytree(src, dst)
    [path] = glob.glob(os.path.join(dst, f"Split-{split}", "*.gz"))
    if how == "boundary":
        records = list(ingest._read_tfrecords(path))
        writer = ingest._TFRecordWriter(path)
        for record in records[: len(records) // 2]:
            writer.write(record)
        writer.close()
    elif how == "mid_record":
        with gzip.open(path, "rb") as fh:
            data = fh.read()
        with gzip.open(path, "wb") as fh:
            fh.write(data[: len(data) // 2 + 7])
    else:
        data = bytearray(Path(path).read_bytes())
        data[len(data) // 2] ^= 0xFF
        Path(path).write_bytes(bytes(data))
    return path


@pytest.fixture
def copy_tree(tmp_path):
    def _copy(src: str, name: str) -> str:
        dst = tmp_path / name
        shutil.copytree(src, dst)
        return str(dst)

    return _copy


def normalized_yaml(text: str) -> str:
    """Compiled KFP YAML for comparisons: without the SDK version line and the header comment.

    kfp renders dict defaults in the `#` header in protobuf map order, which changes from one
    process to the next; the spec body below it holds the same defaults in a stable order.
    """
    return "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith("sdkVersion:") and not line.startswith("#")
    )


# --- evaluator ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def weak_trained(tmp_path_factory, ingested, transformed) -> Trained:
    """A real penguin model trained for one step: a baseline a trained model beats."""
    return train_penguins(tmp_path_factory.mktemp("weak_trainer"), ingested, transformed, 1)


# --- trainer ------------------------------------------------------------------------------

TRAINER_MODULES = REPO / "tests" / "modules"


# --- pusher: a real GCS-compatible server (gcp-storage-emulator) ---------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for TF_CONFIG and servers)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def no_credentials_env(tmp_path: Path) -> dict:
    """os.environ without any cloud credentials or emulator, for a stage run in a subprocess."""
    closed = f"127.0.0.1:{free_port()}"  # metadata server lookups fail at once, even on a VM
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STORAGE_EMULATOR", "GOOGLE_", "CLOUDSDK_", "AWS_"))
    }
    env.update(
        HOME=str(tmp_path),
        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
        GCE_METADATA_HOST=closed,
        GCE_METADATA_IP=closed,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


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


@dataclass
class Gcs:
    url: str
    bucket: str
    client: object

    def names(self, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.client.list_blobs(self.bucket, prefix=prefix))


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

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    # No instance-metadata lookups on a machine that is not an EC2 instance.
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _start_server(args: list[str], log_path: Path, url: str, env: dict | None = None):
    import time
    import urllib.error
    import urllib.request

    log = open(log_path, "w")
    proc = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[2]} did not start, see {log.name}") from None
            time.sleep(0.1)
    return proc, log


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> str:
    """Starts moto's S3 server in its own process; yields its URL for AWS_ENDPOINT_URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc, log = _start_server(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        tmp_path_factory.mktemp("s3") / "moto.log",
        url,
    )
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@dataclass
class Bucket:
    """A fresh bucket on one of the test servers: `uri` is gs://name or s3://name."""

    uri: str
    name: str
    url: str
    client: object

    @property
    def scheme(self) -> str:
        return self.uri.split(":")[0]

    def put(self, key: str, data: bytes | str) -> str:
        data = data.encode() if isinstance(data, str) else data
        if self.scheme == "gs":
            self.client.bucket(self.name).blob(key).upload_from_string(data)
        else:
            self.client.put_object(Bucket=self.name, Key=key, Body=data)
        return f"{self.uri}/{key}"

    def get(self, key: str) -> bytes:
        if self.scheme == "gs":
            return self.client.bucket(self.name).blob(key).download_as_bytes()
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def names(self, prefix: str = "") -> list[str]:
        if self.scheme == "gs":
            return sorted(b.name for b in self.client.list_blobs(self.name, prefix=prefix))
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _bucket_name(request) -> str:
    import re
    import uuid

    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{name}-{uuid.uuid4().hex[:8]}"


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
    name = _bucket_name(request)
    client.create_bucket(Bucket=name)
    return Bucket(f"s3://{name}", name, s3_server, client)


@pytest.fixture(params=["gs", "s3"])
def bucket(request) -> Bucket:
    """A fresh bucket on the GCS emulator, then (second run) on the S3 server."""
    if request.param == "gs":
        gcs = request.getfixturevalue("gcs")
        return Bucket(f"gs://{gcs.bucket}", gcs.bucket, gcs.url, gcs.client)
    return request.getfixturevalue("s3")


@dataclass
class LockedS3:
    """An S3 server that checks credentials: `bucket` holds `key`; the user may do nothing."""

    url: str
    bucket: str
    key: str
    access_key_id: str
    secret_access_key: str


@pytest.fixture(scope="session")
def locked_s3(tmp_path_factory) -> LockedS3:
    """moto's S3 server with IAM checks on: a bucket and a user without any permission.

    moto lets the first INITIAL_NO_AUTH_ACTION_COUNT requests through unchecked: they create
    the bucket, its object, the user and the user's key; the rest are spent before use.
    """
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc, log = _start_server(
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
    from tests import docker_env

    return docker_env.engine()


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """A local Debian bookworm + Python 3.11 image (no registry is reachable on these machines)."""
    from tests import docker_env

    return docker_env.base_image(docker_client)


# --- Beam's portable runner: a job service and an external worker pool, as a cluster's ------------


def _wait_for_port(port: int, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args[2]} did not start, see {log_path}")
        time.sleep(0.2)


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
        _wait_for_port(port, proc, log_path)
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

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Nothing may come from the network at view time: every request goes nowhere.
    "--proxy-server=127.0.0.1:9",
)


@dataclass
class Chromium:
    """Debian's headless Chromium: screenshots and the DOM after scripts ran."""

    exe: str
    workdir: Path

    def _run(self, page: str, *flags: str) -> subprocess.CompletedProcess:
        profile = Path(tempfile.mkdtemp(prefix="profile-", dir=self.workdir))  # fresh each time
        return subprocess.run(
            [self.exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, Path(page).as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def screenshot(self, page: str, png: Path, size: str = "1000,2400") -> Path:
        proc = self._run(page, f"--screenshot={png}", f"--window-size={size}")
        assert png.is_file(), proc.stderr[-2000:]
        return png

    def dump_dom(self, page: str) -> str:
        proc = self._run(page, "--dump-dom")
        assert proc.returncode == 0 and proc.stdout, proc.stderr[-2000:]
        return proc.stdout


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> Chromium:
    """Debian's `chromium`, installed with apt-get when missing (as tests/docker_env.py does)."""
    import fcntl

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
