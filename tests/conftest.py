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


@pytest.fixture(scope="session")
def trained(tmp_path_factory, ingested, transformed) -> Trained:
    from tfkfp.containers import trainer

    out = tmp_path_factory.mktemp("trainer")
    info = trainer.run(
        examples_dir=transformed.examples,
        schema_dir=ingested.schema,
        module_file=PENGUINS_MODULE,
        model_dir=str(out / "model"),
        model_run_dir=str(out / "model_run"),
        transform_graph_dir=transformed.graph,
        train_steps=150,
        eval_steps=5,
    )
    return Trained(str(out / "model"), str(out / "model_run"), info)


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
