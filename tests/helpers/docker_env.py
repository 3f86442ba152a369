"""A Docker engine and a local Debian base image for the image tests.

No container registry is reachable on the test machines, so the engine is started here when
none is running (Debian's docker.io, installed with apt-get if missing) and the base image is
made from Debian packages with debootstrap instead of pulled. Both persist across sessions:
the daemon keeps running and the base image is built once per machine (cached by name).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time

import docker

log = logging.getLogger("tfkfp.tests")

BASE_IMAGE = "tfkfp-test-base:bookworm"
DAEMON_LOG = "/var/log/tfkfp-dockerd.log"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Debian bookworm's python3 is 3.11, the version the stack is pinned for.
BASE_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _ping() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=600)
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


def engine(wait_s: float = 90.0) -> docker.DockerClient:
    """Returns a client of a running Docker engine, starting `dockerd` when none answers."""
    client = _ping()
    if client is not None:
        return client
    missing = [
        p
        for p, exe in (("docker.io", "dockerd"), ("debootstrap", "debootstrap"))
        if shutil.which(exe) is None
    ]
    if missing:
        _apt_install(*missing)
    log.info("starting dockerd (log: %s)", DAEMON_LOG)
    with open(DAEMON_LOG, "ab") as out:
        # A new session keeps the daemon alive after pytest exits: images and the engine are
        # reused by the next session instead of being rebuilt.
        subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        client = _ping()
        if client is not None:
            return client
        time.sleep(1)
    raise RuntimeError(f"dockerd did not answer within {wait_s:.0f} s; see {DAEMON_LOG}")


def base_image(client: docker.DockerClient, name: str = BASE_IMAGE) -> str:
    """Returns `name`, importing a debootstrapped Debian bookworm (Python 3.11) if absent."""
    try:
        client.images.get(name)
        return name
    except docker.errors.ImageNotFound:
        pass
    if shutil.which("debootstrap") is None:
        _apt_install("debootstrap")
    with tempfile.TemporaryDirectory(prefix="tfkfp-rootfs-") as tmp:
        rootfs = os.path.join(tmp, "rootfs")
        log.info("debootstrap bookworm into %s", rootfs)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                "bookworm",
                rootfs,
                DEBIAN_MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # This machine reaches PyPI through a TLS proxy whose CA only the host bundle holds;
        # pip inside a build fails TLS without it.
        if os.path.isfile(HOST_CA_BUNDLE):
            shutil.copy(HOST_CA_BUNDLE, os.path.join(rootfs, HOST_CA_BUNDLE.lstrip("/")))
        shutil.rmtree(os.path.join(rootfs, "var/cache/apt/archives"), ignore_errors=True)
        shutil.rmtree(os.path.join(rootfs, "var/lib/apt/lists"), ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "-", name], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL
        )
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError(f"tar of {rootfs} failed")
    return name
