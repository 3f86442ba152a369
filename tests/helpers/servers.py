"""The real servers the tests start (GCS emulator, moto S3, Beam, Chromium): their handles."""

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Gcs:
    url: str
    bucket: str
    client: object

    def names(self, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.client.list_blobs(self.bucket, prefix=prefix))


S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    # No instance-metadata lookups on a machine that is not an EC2 instance.
    "AWS_EC2_METADATA_DISABLED": "true",
}


def start_server(args: list[str], log_path: Path, url: str, env: dict | None = None):
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


def bucket_name(request) -> str:
    import re
    import uuid

    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{name}-{uuid.uuid4().hex[:8]}"


@dataclass
class LockedS3:
    """An S3 server that checks credentials: `bucket` holds `key`; the user may do nothing."""

    url: str
    bucket: str
    key: str
    access_key_id: str
    secret_access_key: str


def wait_for_port(port: int, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
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
