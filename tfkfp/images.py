"""The tfkfp images: build (and push) them with the Docker SDK, run a stage in one.

`tfkfp images build [--gpu] [--tag T] [--push] [--base-image B]` builds Dockerfile.cpu or
Dockerfile.gpu from a source checkout. The default tags are the ones the components reference
(`tfkfp.components.images`), so a compiled pipeline runs in what was just built.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfkfp.containers.runtime import InputError

if TYPE_CHECKING:
    import docker

log = logging.getLogger("tfkfp")

SOURCE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE_IMAGE = "python:3.11-slim"
GET_DOCKER = (
    "install Docker Engine (https://docs.docker.com/engine/install/; on Debian: "
    "apt-get install docker.io) and start it, or set DOCKER_HOST to a running engine"
)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BuildError(RuntimeError):
    """A build or push that started and failed: exit code 1."""


@dataclass
class Built:
    """An image that `build` produced."""

    tag: str
    image_id: str
    size_bytes: int
    seconds: float


def default_tag(gpu: bool = False) -> str:
    """The tag the components reference: `tfkfp[-gpu]:<version>`, or TFKFP_[GPU_]IMAGE."""
    from tfkfp.components.images import CPU_IMAGE, GPU_IMAGE

    return GPU_IMAGE if gpu else CPU_IMAGE


def connect(timeout: int = 600) -> docker.DockerClient:
    """A client of a running Docker engine.

    Args:
        timeout: Seconds an API call may stay silent (the engine prepares a `docker save` of a
            multi-GB image for minutes before sending a byte).

    Raises:
        InputError: the docker SDK is missing or no engine answers (one line saying what to do).
    """
    try:
        import docker
    except ImportError:
        raise InputError(
            f"Docker: the docker Python package is missing (pip install docker); then {GET_DOCKER}"
        ) from None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"Docker is not available ({reason}): {GET_DOCKER}") from None
    return client


def ensure_base_image(client: docker.DockerClient, ref: str) -> None:
    """Makes sure `ref` is present locally, pulling it when it is not.

    Raises:
        InputError: the image is neither local nor pullable (unknown name or no registry).
    """
    import docker

    try:
        client.images.get(ref)
        return
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as err:
        raise InputError(f"base image {ref!r}: {err.explanation or err}") from None
    log.info("images: pulling base image %s", ref)
    try:
        client.images.pull(ref)
    except docker.errors.APIError as err:
        reason = (err.explanation or str(err)).splitlines()[0]
        raise InputError(
            f"base image {ref!r} is not available locally and could not be pulled ({reason}); "
            "pass --base-image with a local image (see `docker images`) or check registry access"
        ) from None


def _stream(chunks: Any, what: str) -> str | None:
    """Logs a decoded build stream line by line; returns the image id, raises on an error."""
    step = "before the first step"
    recent: list[str] = []
    image_id = None
    pending = ""
    for chunk in chunks:
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            tail = "\n".join(f"  | {line}" for line in recent[-15:])
            raise BuildError(f"{what} failed at {step}: {detail.strip()}\n{tail}".rstrip())
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        pending += chunk.get("stream", "")
        *lines, pending = pending.split("\n")
        for raw in lines:
            # The last state of a progress bar, without the colour codes the builder adds.
            line = _ANSI.sub("", raw.rstrip("\r").split("\r")[-1]).rstrip()
            if not line:
                continue
            if line.startswith("Step "):
                step, recent = line, []
            elif not line.startswith((" ---> ", "Removing intermediate container")):
                recent.append(line)
            log.info("build: %s", line)
    return image_id


def build(
    gpu: bool = False,
    tag: str | None = None,
    base_image: str | None = None,
    push: bool = False,
    context: Path = SOURCE_ROOT,
    client: docker.DockerClient | None = None,
) -> Built:
    """Builds Dockerfile.cpu (or .gpu) with streamed progress, optionally pushes it.

    Args:
        gpu: Build Dockerfile.gpu (tensorflow[and-cuda]) instead of Dockerfile.cpu.
        tag: Image tag; defaults to the one the components reference.
        base_image: BASE_IMAGE build argument; defaults to python:3.11-slim.
        push: Push the tag to its registry after the build.
        context: Source checkout holding the Dockerfiles.
        client: Docker client; connects from the environment when None.

    Returns:
        The tag, image id, uncompressed size and build time.

    Raises:
        InputError: no Docker, no Dockerfile, or an unknown base image.
        BuildError: a build step or the push failed (the message names the step).
    """
    dockerfile = "Dockerfile.gpu" if gpu else "Dockerfile.cpu"
    if not (Path(context) / dockerfile).is_file():
        raise InputError(f"images: no {dockerfile} in {context}; run from a tfkfp source checkout")
    tag = tag or default_tag(gpu)
    base_image = base_image or DEFAULT_BASE_IMAGE
    client = client or connect()
    ensure_base_image(client, base_image)
    log.info("images: building %s from %s on %s", tag, dockerfile, base_image)
    started = time.monotonic()
    chunks = client.api.build(
        path=str(context),
        dockerfile=dockerfile,
        tag=tag,
        buildargs={"BASE_IMAGE": base_image},
        rm=True,
        forcerm=True,  # no stopped containers left behind by a failed step
        decode=True,
    )
    image_id = _stream(chunks, f"build of {tag}")
    image = client.images.get(image_id or tag)
    built = Built(tag, image.id, image.attrs["Size"], time.monotonic() - started)
    log.info(
        "images: built %s (%s, %.2f GB) in %.0f s",
        tag,
        image.short_id,
        built.size_bytes / 1e9,
        built.seconds,
    )
    if push:
        push_image(client, tag)
    return built


# The derived image's Dockerfile: the user's packages on top of ours, nothing else changed.
DERIVED_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# The base image's user, put back at the end (tfkfp, or what a restricted variant sets).
ARG BASE_USER=root
USER root
COPY requirements.txt pins.txt /tmp/user-deps/
# Exact versions resolved against tfkfp's constraints.txt before the build (tfkfp/images.py);
# what the image already holds at those versions is kept as it is.
RUN pip install --no-deps -r /tmp/user-deps/pins.txt \\
 && rm -rf /tmp/user-deps \\
 && python -c "import tfkfp.containers.runtime"
USER ${BASE_USER}
"""


def derived_tag(base: str) -> str:
    """`tfkfp:0.1.0` -> `tfkfp-user:0.1.0`: the default tag of an image with user packages."""
    repo, sep, tag = base.rpartition(":")
    if not sep or "/" in tag:  # no tag, or the colon was a registry port
        return f"{base}-user"
    return f"{repo}-user:{tag}"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _conflict_line(output: str) -> str:
    """pip's resolver failure as one clause: what conflicts with what, or pip's first error."""
    lines = output.splitlines()
    if "The conflict is caused by:" in output:
        start = lines.index("The conflict is caused by:") + 1
        causes = []
        for line in lines[start:]:
            if not line.strip():
                break
            cause = line.strip()
            cause = re.sub(r"^The user requested \(constraint\) ", "tfkfp pins ", cause)
            cause = re.sub(r"^The user requested ", "the requirements ask for ", cause)
            causes.append(cause)
        return "conflicts with tfkfp's pinned versions (constraints.txt): " + "; ".join(causes)
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
    return f"pip could not resolve them: {errors[0] if errors else (lines or ['no output'])[-1]}"


def resolve_requirements(
    requirements: str, constraints: Path, extra_constraints: Path | None = None
) -> list[str]:
    """Exact `name==version` pins for the packages in `requirements`, under tfkfp's pins.

    pip resolves them (metadata only, nothing installed) with the image's constraints.txt as
    constraints, so a package that needs another version of anything tfkfp pins is refused
    here, before any build. `tensorflow` is left out: the CPU image has the same version as
    `tensorflow-cpu` (docker/install_deps.py), the GPU image has it.

    Raises:
        InputError: no such file, or pip cannot resolve them (the conflict in one line).
    """
    import subprocess
    import sys
    import tempfile

    what = f"--requirements {requirements}"
    if not Path(requirements).is_file():
        raise InputError(f"{what}: no such file; expected a pip requirements file")
    if not constraints.is_file():
        raise InputError(f"images: no {constraints.name} in {constraints.parent}")
    with tempfile.TemporaryDirectory(prefix="tfkfp-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
            "--report", str(report), "-r", requirements, "-c", str(constraints),
        ]  # fmt: skip
        if extra_constraints is not None and extra_constraints.is_file():
            command += ["-c", str(extra_constraints)]
        log.info("images: resolving %s against %s", requirements, constraints)
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise InputError(f"{what}: {_conflict_line(proc.stdout + proc.stderr)}")
        items = json.loads(report.read_text())["install"]
    pins = [
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in items
        if _canonical(item["metadata"]["name"]) != "tensorflow"
    ]
    log.info("images: %d distribution(s) resolved: %s", len(pins), ", ".join(pins))
    return pins


def build_with_requirements(
    requirements: str,
    gpu: bool = False,
    tag: str | None = None,
    base_image: str | None = None,
    push: bool = False,
    context: Path = SOURCE_ROOT,
    client: docker.DockerClient | None = None,
) -> Built:
    """Builds an image FROM ours with the packages of a requirements file added.

    For module files that import packages the image lacks (tensorflow-text, a team's own).
    The packages are resolved on this machine against constraints.txt first (a conflict with
    what tfkfp pins is one line, exit 2, before any build); the image then installs exactly
    those versions.

    Args:
        requirements: pip requirements file.
        gpu: Extend the GPU image instead of the CPU one.
        tag: Tag of the new image; default: the base's repository with `-user`.
        base_image: The image to extend; default: the one the components reference.
        push: Push the tag after building.
        context: Source checkout holding constraints.txt.
        client: Docker client; connects from the environment when None.

    Raises:
        InputError: no such file, a conflict, no Docker, or the base image is missing.
        BuildError: the build or the push failed.
    """
    import shutil
    import tempfile

    base_image = base_image or default_tag(gpu)
    tag = tag or derived_tag(base_image)
    pins = resolve_requirements(
        requirements,
        Path(context) / "constraints.txt",
        Path(context) / "docker" / "constraints-gpu.txt" if gpu else None,
    )
    client = client or connect()
    ensure_base_image(client, base_image)
    base_user = client.images.get(base_image).attrs["Config"].get("User") or "root"
    with tempfile.TemporaryDirectory(prefix="tfkfp-derived-") as build_dir:
        shutil.copy(requirements, Path(build_dir) / "requirements.txt")
        (Path(build_dir) / "pins.txt").write_text("\n".join(pins) + "\n")
        (Path(build_dir) / "Dockerfile").write_text(DERIVED_DOCKERFILE)
        log.info("images: building %s FROM %s with %s", tag, base_image, requirements)
        started = time.monotonic()
        chunks = client.api.build(
            path=build_dir,
            tag=tag,
            buildargs={"BASE_IMAGE": base_image, "BASE_USER": base_user},
            rm=True,
            forcerm=True,
            decode=True,
        )
        image_id = _stream(chunks, f"build of {tag}")
    image = client.images.get(image_id or tag)
    built = Built(tag, image.id, image.attrs["Size"], time.monotonic() - started)
    log.info("images: built %s (%s) in %.0f s", tag, image.short_id, built.seconds)
    if push:
        push_image(client, tag)
    return built


def push_image(client: docker.DockerClient, tag: str) -> None:
    """Pushes `tag` to its registry, logging each layer's status once.

    Raises:
        BuildError: the registry refused or could not be reached.
    """
    import docker

    log.info("images: pushing %s", tag)
    try:
        chunks = client.api.push(tag, stream=True, decode=True)
        seen: set[tuple[str, str]] = set()
        for chunk in chunks:
            if "error" in chunk:
                raise BuildError(f"push of {tag} failed: {chunk['error']}")
            key = (chunk.get("id", ""), chunk.get("status", ""))
            if key[1] and key not in seen:
                seen.add(key)
                log.info("push: %s", " ".join(part for part in key if part))
    except docker.errors.APIError as err:
        raise BuildError(f"push of {tag} failed: {err.explanation or err}") from None


@dataclass
class StageRun:
    """One stage run in a container: its exit code, logs and cold start."""

    exit_code: int
    logs: str
    cold_start_s: float | None  # container start request -> first log line of the stage
    seconds: float
    env: dict[str, str]


def run_stage(
    client: docker.DockerClient,
    image: str,
    stage: str,
    kwargs: dict[str, Any],
    mounts: list[str],
    options: dict[str, Any] | None = None,
) -> StageRun:
    """Runs `tfkfp.containers.<stage>.run(**kwargs)` in a fresh container of `image`.

    Imports kfp.dsl first, as the KFP executor does before a component body, so the cold start
    is what a pipeline task pays.

    Args:
        client: Docker client.
        image: Image to run.
        stage: ingest, transform, trainer, evaluator or pusher.
        kwargs: Keyword arguments of the stage's `run` (JSON-serialisable).
        mounts: Host folders mounted read-write at the same path.
        options: More `docker run` settings as the Docker SDK names them (user, read_only,
            tmpfs, cap_drop, security_opt, ...).

    Returns:
        Exit code, the container's log, seconds from the start request to the first
        `<stage>:` log line (None if there was none), total seconds, and the container's env.
    """
    code = (
        "import json, sys, importlib, kfp.dsl; "
        "from tfkfp.containers.runtime import entrypoint; "
        "entrypoint(importlib.import_module('tfkfp.containers.' + sys.argv[1]).run, "
        "**json.loads(sys.argv[2]))"
    )
    started = time.time()
    container = client.containers.run(
        image,
        ["python", "-c", code, stage, json.dumps(kwargs)],
        volumes={path: {"bind": path, "mode": "rw"} for path in mounts},
        # As KFP's component command sets it: kfp's __init__ then skips its client (kubernetes).
        environment={"_KFP_RUNTIME": "true"},
        detach=True,
        **(options or {}),
    )
    try:
        exit_code = container.wait()["StatusCode"]
        seconds = time.time() - started
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        first = None
        lines = []
        for raw in container.logs(timestamps=True).decode(errors="replace").splitlines():
            stamp, _, line = raw.partition(" ")
            lines.append(line)
            if first is None and f"tfkfp: {stage}:" in line:
                first = _docker_time(stamp) - started
    finally:
        container.remove(force=True)
    return StageRun(exit_code, "\n".join(lines), first, seconds, env)


def _docker_time(stamp: str) -> float:
    """Unix time of a Docker log timestamp (RFC 3339, nanoseconds, UTC)."""
    from datetime import datetime

    head, _, frac = stamp.rstrip("Z").partition(".")
    whole = datetime.fromisoformat(head + "+00:00").timestamp()
    return whole + float(f"0.{frac or 0}")
