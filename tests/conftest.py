"""Shared fixtures: the real penguin data carried through the real stages once per session."""

import os

# The test process's Keras flavour, decided before anything imports TensorFlow (tf.Transform
# would otherwise choose it silently). Keras 3 is tested in its own process.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil
import subprocess
import sys
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
    counts = ingest.run(str(penguins_csv), str(out / "examples"), str(out / "schema"))
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
    )
    return Transformed(str(out / "graph"), str(out / "examples"), counts)


@dataclass
class Trained:
    model: str
    model_run: str
    info: dict


def train_penguins(out: Path, ingested: Ingested, transformed: Transformed, steps: int) -> Trained:
    """Trains the demo module on the transformed penguins with the real trainer stage."""
    from tfkfp.containers import trainer

    info = trainer.run(
        examples_dir=transformed.examples,
        schema_dir=ingested.schema,
        module_file=PENGUINS_MODULE,
        model_dir=str(out / "model"),
        model_run_dir=str(out / "model_run"),
        transform_graph_dir=transformed.graph,
        train_steps=steps,
        eval_steps=min(steps, 5),
    )
    return Trained(str(out / "model"), str(out / "model_run"), info)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, ingested, transformed) -> Trained:
    return train_penguins(tmp_path_factory.mktemp("trainer"), ingested, transformed, 150)


def write_module(path: Path, source: str) -> str:
    """Writes a small user module file for a bad-input test and returns its path."""
    path.write_text(source)
    return str(path)


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


# --- an S3-compatible server (moto in server mode) ---------------------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> str:
    """Starts moto's S3 server in its own process; yields its URL for AWS_ENDPOINT_URL."""
    import time
    import urllib.request

    port = free_port()
    log = open(tmp_path_factory.mktemp("s3") / "moto.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto did not start, see {log.name}") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}


@dataclass
class S3:
    url: str
    bucket: str

    def fs(self):
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            endpoint_override=self.url,
            force_virtual_addressing=False,
            region="us-east-1",
            allow_bucket_creation=True,
        )

    def names(self, prefix: str = "") -> list[str]:
        """Object keys under a prefix (pyarrow's folder markers, keys ending in '/', aside)."""
        import pyarrow.fs as pafs

        base = f"{self.bucket}/{prefix}".rstrip("/")
        infos = self.fs().get_file_info(
            pafs.FileSelector(base, recursive=True, allow_not_found=True)
        )
        return sorted(i.path[len(self.bucket) + 1 :] for i in infos if i.type == pafs.FileType.File)

    def put(self, key: str, data: bytes) -> None:
        with self.fs().open_output_stream(f"{self.bucket}/{key}") as fh:
            fh.write(data)

    def get(self, key: str) -> bytes:
        with self.fs().open_input_stream(f"{self.bucket}/{key}") as fh:
            return fh.read()


@pytest.fixture
def s3(s3_server, monkeypatch, request) -> S3:
    """A fresh bucket on the S3 server, with endpoint and dummy credentials set for this test."""
    import re
    import uuid

    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**S3_ENV, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(name, value)
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    s3 = S3(s3_server, f"{name}-{uuid.uuid4().hex[:8]}")
    s3.fs().create_dir(s3.bucket)
    return s3


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
