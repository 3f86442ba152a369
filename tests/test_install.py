"""How people install tfkfp: the wheel, an author's environment without TensorFlow, other Pythons.

Each test makes its own environment with pip from constraints.txt (the lock), as a user would.
"""

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO, normalized_yaml

CONSTRAINTS = REPO / "constraints.txt"
PIPELINES = sorted(p.parent.name for p in (REPO / "pipelines").glob("*/pipeline.py"))
# pipelines that ship their data (the batch-inference pipeline reads the user's)
WITH_DATA = [n for n in PIPELINES if (REPO / "pipelines" / n / "data").is_dir()]
COMPONENT_YAMLS = sorted(p.name for p in (REPO / "components").glob("*.yaml"))
OTHER_PYTHONS = ["3.12", "3.13"]


def _run(*args, timeout=900, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def _user_env(venv: Path, home: Path | None = None) -> dict[str, str]:
    """A shell with `venv` activated and none of this test process's TensorFlow settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "TFKFP_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    if home is not None:
        env["HOME"] = str(home)  # kfp.Client reads and writes ~/.config/kfp
    return env


def _make_venv(python: str, path: Path) -> None:
    proc = _run(python, "-m", "venv", path)
    assert proc.returncode == 0, proc.stderr


def _pip(venv: Path, *args: str, timeout=1800) -> None:
    proc = _run(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-c",
        CONSTRAINTS,
        *args,
        timeout=timeout,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


@contextlib.contextmanager
def _writing_the_checkout():
    """Held while a build writes into the checkout (tfkfp.egg-info): one at a time across the
    xdist workers of make test (the wheel and the editable installs of the other Pythons)."""
    with open(REPO / ".tfkfp-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# --- the wheel, installed the way an author installs tfkfp ----------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`python -m build` of the working tree: an sdist, then the wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    with _writing_the_checkout():
        proc = _run(sys.executable, "-m", "build", "--outdir", out, REPO, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    wheels = list(out.glob("tfkfp-*.whl"))
    assert len(wheels) == 1, sorted(p.name for p in out.iterdir())
    return wheels[0]


@pytest.fixture(scope="module")
def author_venv(tmp_path_factory, wheel) -> Path:
    """A fresh venv with only `pip install tfkfp` (no extra), from the lock."""
    venv = tmp_path_factory.mktemp("author") / "venv"
    _make_venv(sys.executable, venv)
    _pip(venv, wheel)
    return venv


@pytest.mark.slow
def test_wheel_holds_the_component_specs_and_the_bundled_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for yaml_name in COMPONENT_YAMLS:
        assert f"tfkfp/components/{yaml_name}" in names
    for name in PIPELINES:
        assert f"tfkfp/pipelines/{name}/pipeline.py" in names
        source = REPO / "pipelines" / name
        if (source / "module.py").exists():  # the batch-inference pipeline has no module
            assert f"tfkfp/pipelines/{name}/module.py" in names
        if (source / "data").is_dir():
            data = [n for n in names if n.startswith(f"tfkfp/pipelines/{name}/data/")]
            assert data, f"no data of pipeline {name} in the wheel"
    for manifest in sorted((REPO / "tfkfp" / "manifests").glob("*.yaml")):
        assert f"tfkfp/manifests/{manifest.name}" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "docker/"))]


@pytest.mark.slow
def test_author_install_has_no_tensorflow_and_compiles_both_pipelines(author_venv, tmp_path):
    python = author_venv / "bin" / "python"
    env = _user_env(author_venv)
    for module in (
        "tensorflow",
        "tensorflow_transform",
        "tensorflow_model_analysis",
        "apache_beam",
    ):
        proc = _run(python, "-c", f"import {module}", env=env, cwd=tmp_path)
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, module

    # the installed package, not the working tree, has what compiling and the demo read
    probe = (
        "import json; from importlib import resources as r; "
        "c = r.files('tfkfp.components'); p = r.files('tfkfp.pipelines'); "
        "print(json.dumps({'file': __import__('tfkfp').__file__, "
        "'yaml': sorted(f.name for f in c.iterdir() if f.name.endswith('.yaml')), "
        f"'data': {{n: sorted(f.name for f in (p / n / 'data').iterdir()) for n in {WITH_DATA}}}}}))"
    )
    proc = _run(python, "-c", probe, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["file"].startswith(str(author_venv)), found["file"]
    assert found["yaml"] == COMPONENT_YAMLS
    for name in WITH_DATA:
        shipped = sorted(p.name for p in (REPO / "pipelines" / name / "data").iterdir())
        assert found["data"][name] == shipped

    for name in PIPELINES:
        out = tmp_path / f"{name}.yaml"
        proc = _run(
            author_venv / "bin" / "tfkfp", "compile", name, "-o", out, env=env, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        golden = REPO / "tests" / "golden" / f"{name}.yaml"
        assert normalized_yaml(out.read_text()) == normalized_yaml(golden.read_text()), name


@pytest.mark.slow
def test_author_install_uploads_and_submits(author_venv, kfp_server, tmp_path):  # noqa: F811
    env = _user_env(author_venv, home=tmp_path)
    tfkfp = author_venv / "bin" / "tfkfp"
    proc = _run(tfkfp, "upload", "penguins", "--host", kfp_server.host, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pipeline_id: " in proc.stdout
    proc = _run(
        tfkfp,
        "submit",
        "penguins",
        "--host",
        kfp_server.host,
        "--param",
        "data_uri=gs://b/penguins.csv",
        "--param",
        "push_destination=gs://b/serving",
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "run_id: " in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", [["demo"], ["run", "penguins", "--local"]])
def test_author_install_says_how_to_get_the_runtime(author_venv, tmp_path, command):
    env = _user_env(author_venv)
    proc = _run(author_venv / "bin" / "tfkfp", *command, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install 'tfkfp[runtime]'" in lines[0] and "tensorflow" in lines[0]
    assert not (tmp_path / "build").exists()  # refused before anything ran


@pytest.mark.slow
def test_author_install_images_build_needs_a_source_checkout(author_venv, tmp_path):
    env = _user_env(author_venv)
    proc = _run(author_venv / "bin" / "python", "-c", "import docker", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # the SDK the image builds use is installed
    # the Dockerfiles build from the source tree; a wheel holds none (checked before Docker)
    proc = _run(author_venv / "bin" / "tfkfp", "images", "build", env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "no Dockerfile.cpu in " in proc.stderr and "source checkout" in proc.stderr


# --- the demo on the other supported Pythons --------------------------------------------------


def find_python(version: str) -> str | None:
    """An interpreter for `version` (e.g. "3.12"): on PATH, else among pyenv's versions."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(
        glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")),
        reverse=True,
    )
    for candidate in filter(None, candidates):
        # a pyenv shim is on PATH even when that version is not selected: ask the interpreter
        proc = _run(candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])")
        if proc.returncode == 0 and proc.stdout.strip() == version:
            return candidate
    return None


def _runtime_venv(python: str, version: str) -> Path:
    """`.venv-py<version>`: `pip install -e '.[runtime]'` from the lock, redone when it changes."""
    venv = REPO / f".venv-py{version}"
    digest = hashlib.sha256()
    for name in ("constraints.txt", "setup.cfg", "pyproject.toml"):
        digest.update((REPO / name).read_bytes())
    stamp = venv / ".tfkfp-installed"
    if stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    _make_venv(python, venv)
    with _writing_the_checkout():
        _pip(venv, "-e", ".[runtime]", timeout=3600)
    stamp.write_text(digest.hexdigest())
    return venv


@pytest.mark.slow
@pytest.mark.parametrize("version", OTHER_PYTHONS)
def test_demo_on_other_python(version, tmp_path):
    python = find_python(version)
    if python is None:
        pytest.skip(f"Python {version} not found on PATH nor in pyenv: its demo did not run")
    venv = _runtime_venv(python, version)
    env = _user_env(venv)
    proc = _run(venv / "bin" / "tfkfp", "demo", env=env, cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "blessed:       True" in proc.stdout, proc.stdout
    assert re.search(r"pushed model:  \S+/serving/penguins/\d+ \(new version\)", proc.stdout)
    proc = _run(venv / "bin" / "python", "-c", "import sys; print(sys.version)", env=env)
    print(f"demo ran on Python {proc.stdout.strip()}")
