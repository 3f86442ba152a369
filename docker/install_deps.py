"""Installs tfkfp's pinned runtime dependencies into the image's venv, then checks them.

Run by Dockerfile.cpu / Dockerfile.gpu (stdlib only until the install is done):

    python install_deps.py {cpu,gpu} DIR    # DIR: constraints.txt, setup.cfg, constraints-gpu.txt

What gets installed: setup.cfg's install_requires plus its `runtime` extra (the TensorFlow stack).

gpu: a normal resolve of those plus `tensorflow[and-cuda]`, pinned by constraints.txt and, for
the CUDA wheels, constraints-gpu.txt.

cpu: tensorflow-transform, tfx-bsl, tf_keras, TFMA and tensorflow-serving-api all require
`tensorflow`, which pip cannot satisfy with `tensorflow-cpu` (a different name for the same code
without CUDA kernels). So the set is resolved with `tensorflow` (metadata only, nothing
installed), `tensorflow` is swapped for `tensorflow-cpu` at the same version, and the exact list
is installed with --no-deps. The check then holds every installed distribution's requirements
against what is installed, counting tensorflow-cpu as tensorflow.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def install_requires(setup_cfg: str) -> list[str]:
    """setup.cfg's `install_requires` plus its `runtime` extra, comments dropped."""
    cfg = configparser.ConfigParser()
    cfg.read(setup_cfg)
    lines = cfg["options"]["install_requires"].splitlines()
    lines += cfg["options.extras_require"]["runtime"].splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def pinned(constraints: str, name: str) -> str:
    """The exact version constraints.txt pins `name` to."""
    with open(constraints) as fh:
        for line in fh:
            key, sep, version = line.strip().partition("==")
            if sep and _canonical(key) == _canonical(name):
                return version
    raise SystemExit(f"install_deps: {constraints} pins no {name}")


def resolve(constraints: str, requirements: list[str]) -> list[tuple[str, str]]:
    """(name, version) of everything pip would install for `requirements`; installs nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        _pip(
            "install", "--quiet", "--dry-run", "--report", report, "-c", constraints, *requirements
        )
        with open(report) as fh:
            items = json.load(fh)["install"]
    return [(item["metadata"]["name"], item["metadata"]["version"]) for item in items]


def install_cpu(constraints: str, requirements: list[str], tf_version: str) -> None:
    resolved = resolve(constraints, [*requirements, f"tensorflow=={tf_version}"])
    pins = [f"{name}=={version}" for name, version in resolved if _canonical(name) != "tensorflow"]
    pins.append(f"tensorflow-cpu=={tf_version}")
    print(f"install_deps: {len(pins)} distributions, tensorflow -> tensorflow-cpu", flush=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as fh:
        fh.write("\n".join(pins) + "\n")
        fh.flush()
        _pip("install", "--no-deps", "-r", fh.name)


def install_gpu(constraints: str, requirements: list[str], tf_version: str) -> None:
    cuda_pins = os.path.join(os.path.dirname(constraints), "constraints-gpu.txt")
    _pip(
        "install",
        "-c",
        constraints,
        "-c",
        cuda_pins,
        *requirements,
        f"tensorflow[and-cuda]=={tf_version}",
    )


def check(cpu: bool) -> None:
    """Fails unless every installed requirement is met (tensorflow-cpu counting as tensorflow)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    installed = {_canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    if cpu:
        if "tensorflow" in installed:
            raise SystemExit("install_deps: the full tensorflow wheel got installed")
        installed["tensorflow"] = installed["tensorflow-cpu"]
    problems = []
    for dist in metadata.distributions():
        for text in dist.requires or []:
            req = Requirement(text)
            # Extras are optional features nobody asked for; only unconditional needs count.
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            have = installed.get(_canonical(req.name))
            if have is None:
                problems.append(f"{dist.metadata['Name']} requires {req}, which is not installed")
            elif not req.specifier.contains(have, prereleases=True):
                problems.append(f"{dist.metadata['Name']} requires {req}, but {have} is installed")
    if problems:
        raise SystemExit("install_deps: broken requirements:\n  " + "\n  ".join(problems))
    print(f"install_deps: {len(installed)} distributions, every requirement met", flush=True)


def _tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def strip(prefix: str) -> None:
    """Removes what no stage needs at run time: packaged test suites and TF's C++ headers."""
    site = os.path.join(
        prefix, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages"
    )
    doomed = []
    for root, dirs, _ in os.walk(site):
        if "tests" in dirs:
            doomed.append(os.path.join(root, "tests"))
            dirs.remove("tests")
    # Headers for compiling custom ops against TensorFlow (tf.sysconfig.get_include): 0.3 GB.
    doomed.append(os.path.join(site, "tensorflow", "include"))
    removed = 0
    for path in doomed:
        if os.path.isdir(path):
            removed += _tree_bytes(path)
            shutil.rmtree(path)
    print(
        f"install_deps: removed {removed / 1e6:.0f} MB (test suites, TensorFlow headers)",
        flush=True,
    )


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in ("cpu", "gpu"):
        raise SystemExit("usage: install_deps.py {cpu,gpu} DIR")
    flavour, folder = argv
    constraints = os.path.join(folder, "constraints.txt")
    requirements = install_requires(os.path.join(folder, "setup.cfg"))
    tf_version = pinned(constraints, "tensorflow")
    if flavour == "cpu":
        install_cpu(constraints, requirements, tf_version)
    else:
        install_gpu(constraints, requirements, tf_version)
    check(cpu=flavour == "cpu")
    strip(sys.prefix)


if __name__ == "__main__":
    main(sys.argv[1:])
