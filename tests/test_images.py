"""The tfkfp images, built for real (Dockerfile.cpu / .gpu) and the pipeline run inside them.

The engine and the local Debian base image come from tests/helpers/docker_env.py (conftest fixtures):
no registry is reachable here, so `--base-image` is always the debootstrapped one.
"""

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli

CPU_LIMIT_BYTES = 2.5e9
BUILD_TIMEOUT_S = 3600
# A pod under Pod Security "restricted" on OpenShift: an arbitrary UID in group 0, a read-only
# root filesystem with a writable /tmp, no capabilities, no privilege escalation.
ARBITRARY_UID = 1000680000
RESTRICTED = {
    "user": f"{ARBITRARY_UID}:0",
    "read_only": True,
    "tmpfs": {"/tmp": ""},
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
}


def _shared_dir(path: Path) -> str:
    """Makes `path` writable by the images' non-root user (uid 1000) and returns it."""
    path.mkdir(parents=True, exist_ok=True)
    for root, _dirs, files in os.walk(path):
        os.chmod(root, 0o777)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666)
    return str(path)


def _build(base_image: str, *flags: str) -> str:
    proc = run_cli("images", "build", "--base-image", base_image, *flags, timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "build: Step 1/" in proc.stderr  # progress is streamed, step by step
    return proc.stdout.strip().splitlines()[-1]


def _module_with_helper(folder: Path) -> str:
    """A module file in TFX's style: keras_tuner at the top, its code in a sibling helper."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "penguin_helpers.py").write_text(
        "from tfkfp.pipelines.penguins.module import preprocessing_fn, run_fn  # noqa: F401\n"
    )
    (folder / "penguin_module.py").write_text(
        "import keras_tuner  # noqa: F401  (TFX's penguin module imports it at the top)\n"
        "from penguin_helpers import preprocessing_fn, run_fn  # noqa: F401\n"
    )
    return str(folder / "penguin_module.py")


@pytest.fixture(scope="module")
def cpu_image(base_image) -> str:
    return _build(base_image)


@pytest.fixture(scope="module")
def gpu_image(base_image) -> str:
    return _build(base_image, "--gpu")


def test_images_build_without_docker_says_how_to_get_it():
    proc = run_cli("images", "build", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tfkfp: error: Docker is not available")
    assert "install Docker Engine" in lines[0]


@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfiles_run_as_a_numeric_user_in_group_0(dockerfile):
    """What the kubelet and OpenShift need, read from both Dockerfiles (the GPU image, 7 GB,
    is not built by default here): its build-and-run test takes RESTRICTED too."""
    lines = (REPO / dockerfile).read_text().replace("\\\n", " ").splitlines()
    instructions = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    users = [args.strip() for op, args in instructions if op == "USER"]
    assert users == ["1000:0"]  # numeric: runAsNonRoot can verify it; group 0
    env = " ".join(args for op, args in instructions if op == "ENV")
    assert "HOME=/tmp " in env + " " and "USER=tfkfp" in env
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert "useradd --create-home --uid 1000 --gid 0 tfkfp" in runs
    assert "chmod -R g=u /home/tfkfp" in runs


@pytest.mark.slow
def test_images_build_unknown_base_image(docker_client):
    proc = run_cli("images", "build", "--base-image", "tfkfp-no-such-base:0", "--tag", "tfkfp-x:0")
    assert proc.returncode == 2, proc.stderr
    assert "base image 'tfkfp-no-such-base:0' is not available locally" in proc.stderr
    assert "--base-image" in proc.stderr


@pytest.mark.slow
def test_images_build_failure_names_the_step(docker_client, tmp_path):
    # An empty root filesystem: FROM works, the first RUN cannot find /bin/sh.
    empty = "tfkfp-test-empty:0"
    blob = io.BytesIO()
    tarfile.open(fileobj=blob, mode="w").close()
    docker_client.api.import_image_from_data(blob.getvalue(), *empty.split(":"))
    proc = run_cli("images", "build", "--base-image", empty, "--tag", "tfkfp-test-broken:0")
    assert proc.returncode == 1, proc.stderr
    assert "build of tfkfp-test-broken:0 failed at Step" in proc.stderr
    assert "RUN useradd" in proc.stderr


@pytest.mark.slow
def test_cpu_image_is_slim_checked_and_non_root(docker_client, cpu_image):
    from tfkfp.images import default_tag

    assert cpu_image == default_tag()  # what the components reference
    size = docker_client.images.get(cpu_image).attrs["Size"]
    assert size <= CPU_LIMIT_BYTES, f"{size / 1e9:.2f} GB"
    # The build-time dependency check, re-run against the finished image.
    probe = (
        "import sys, os, importlib.metadata as m; sys.path.insert(0, '/mnt/deps'); "
        "import install_deps; install_deps.check(cpu=True); "
        "import tfkfp; print('uid', os.getuid()); print('tfkfp at', tfkfp.__file__); "
        "print('direct_url', m.distribution('tfkfp').read_text('direct_url.json')); "
        "print('tf-cpu', m.version('tensorflow-cpu'))"
    )
    out = docker_client.containers.run(
        cpu_image,
        ["python", "-c", probe],
        volumes={str(REPO / "docker"): {"bind": "/mnt/deps", "mode": "ro"}},
        remove=True,
    ).decode()
    assert "every requirement met" in out
    assert "uid 1000" in out
    # A regular install into the venv, not an editable link to a source tree.
    assert "tfkfp at /opt/venv/lib/python3.11/site-packages/tfkfp/__init__.py" in out
    assert '"editable": true' not in out
    assert "tf-cpu 2." in out


@pytest.mark.slow
def test_cpu_image_runs_as_an_arbitrary_uid_on_a_read_only_root(docker_client, cpu_image):
    """Imports every heavy library and touches its caches as a restricted pod would."""
    assert docker_client.images.get(cpu_image).attrs["Config"]["User"] == "1000:0"
    probe = (
        "import os, getpass, tempfile; "
        "import tensorflow as tf, keras, tf_keras, tensorflow_transform, "
        "tensorflow_model_analysis, keras_tuner, apache_beam; "
        "print('ids', os.getuid(), os.getgid(), getpass.getuser(), os.environ['HOME']); "
        "print('keras', os.path.isdir(os.path.expanduser('~/.keras'))); "
        "print('tmp', tempfile.mkdtemp()); "
        "print('cwd writable', os.access('.', os.W_OK))"
    )
    out = docker_client.containers.run(
        cpu_image, ["python", "-c", probe], remove=True, **RESTRICTED
    ).decode()
    assert f"ids {ARBITRARY_UID} 0 tfkfp /tmp" in out
    assert "tmp /tmp/" in out
    # The same UID on a writable root (OpenShift's default): the home is group 0's to write.
    writable = {k: v for k, v in RESTRICTED.items() if k not in ("read_only", "tmpfs")}
    out = docker_client.containers.run(
        cpu_image,
        ["sh", "-c", "touch /home/tfkfp/x && stat -c '%u:%g' /home/tfkfp/x && id -u"],
        remove=True,
        **writable,
    ).decode()
    assert out.split() == [f"{ARBITRARY_UID}:0", str(ARBITRARY_UID)]


@pytest.mark.slow
def test_penguins_stages_run_in_the_cpu_image_as_a_restricted_pod(
    docker_client, cpu_image, tmp_path, penguins_csv
):
    """The penguins pipeline's stages in order, each in a fresh container of the CPU image
    run as `docker run --user 1000680000:0 --read-only --tmpfs /tmp --cap-drop ALL
    --security-opt no-new-privileges`: nothing is written outside the task's folders and /tmp."""
    from tfkfp.images import run_stage
    from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG

    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    shutil.copy(penguins_csv, work / "data" / "penguins.csv")
    module_file = _module_with_helper(work / "module")
    _shared_dir(work)
    w = str(work)
    steps = [
        ("fingerprint", {"data_uri": f"{w}/data"}),
        ("ingest", {"data_uri": f"{w}/data", "examples": f"{w}/ex", "schema": f"{w}/schema"}),
        ("statistics", {"examples": f"{w}/ex", "statistics": f"{w}/stats", "view": f"{w}/v"}),
        (
            "validate",
            {
                "statistics": f"{w}/stats",
                "schema": f"{w}/schema",
                "anomalies": f"{w}/anomalies",
                "report": f"{w}/anomalies.md",
            },
        ),
        (
            "transform",
            {
                "examples": f"{w}/ex",
                "schema": f"{w}/schema",
                "module_file": module_file,
                "transform_graph": f"{w}/graph",
                "transformed_examples": f"{w}/tex",
            },
        ),
        (
            "trainer",
            {
                "examples": f"{w}/tex",
                "schema": f"{w}/schema",
                "module_file": module_file,
                "model": f"{w}/model",
                "model_run": f"{w}/model_run",
                "curves": f"{w}/curves.html",
                "transform_graph": f"{w}/graph",
                "train_steps": 150,
                "eval_steps": 5,
            },
        ),
        (
            "evaluator",
            {
                "model": f"{w}/model",
                "examples": f"{w}/ex",
                "eval_config": EVAL_CONFIG,
                "evaluation": f"{w}/evaluation",
                "blessing": f"{w}/blessing",
                "report": f"{w}/report.md",
                "slice_chart": f"{w}/slices.html",
                "schema": f"{w}/schema",
            },
        ),
        ("infra_validate", {"model": f"{w}/model", "examples": f"{w}/ex", "blessing": f"{w}/ib"}),
        (
            "pusher",
            {
                "model": f"{w}/model",
                "blessing": f"{w}/blessing",
                "destination": f"{w}/serving",
                "infra_blessing": f"{w}/ib",
            },
        ),
    ]
    for stage, kwargs in steps:
        run = run_stage(docker_client, cpu_image, stage, kwargs, [w], options=RESTRICTED)
        assert run.exit_code == 0, f"{stage}: {run.logs[-4000:]}"
    assert (work / "blessing" / "BLESSED").is_file() and (work / "ib" / "INFRA_BLESSED").is_file()
    [version] = (work / "serving").iterdir()
    pushed = version / "saved_model.pb"
    assert pushed.is_file() and (version / "model_card.md").is_file()
    # written by the arbitrary UID, group 0
    assert (pushed.stat().st_uid, pushed.stat().st_gid) == (ARBITRARY_UID, 0)


@pytest.mark.slow
def test_penguins_pipeline_runs_in_cpu_image(cpu_image, tmp_path, penguins_csv):
    from tfkfp import local
    from tfkfp.containers.push.versions import iter_versions
    from tfkfp.pipelines.penguins.pipeline import penguins

    # DockerRunner mounts only the pipeline root, so data and destination live inside it.
    root = Path(_shared_dir(tmp_path / "root"))
    shutil.copy(penguins_csv, root / "penguins.csv")
    # A module file with a helper module beside it, inside the pipeline root the image mounts.
    module_file = _module_with_helper(root / "module")
    destination = _shared_dir(root / "serving")
    local.run(
        penguins,
        {
            "data_uri": str(root / "penguins.csv"),
            "push_destination": destination,
            "module_file": module_file,
            "train_steps": 150,
            "eval_steps": 5,
        },
        docker=True,
        pipeline_root=str(root),
    )
    versions = [v for v in iter_versions(destination) if v.complete]
    assert len(versions) == 1
    version_dir = Path(destination) / str(versions[0].number)
    assert json.loads((version_dir / "PUSHED.json").read_text())["content_hash"]
    assert (version_dir / "saved_model.pb").is_file()
    # Written inside the image, by its non-root user, not by this process.
    assert (version_dir / "saved_model.pb").stat().st_uid == 1000


@pytest.mark.slow
def test_gpu_image_trains_on_cpu(docker_client, gpu_image, ingested, transformed, tmp_path):
    from tfkfp.images import run_stage

    assert "tfkfp-gpu" in gpu_image
    work = tmp_path / "work"
    shutil.copytree(Path(ingested.schema), work / "schema")
    shutil.copytree(Path(transformed.examples), work / "examples")
    shutil.copytree(Path(transformed.graph), work / "graph")
    module_file = _module_with_helper(work / "module")
    _shared_dir(work)
    result = run_stage(
        docker_client,
        gpu_image,
        "trainer",
        {
            "examples": str(work / "examples"),
            "schema": str(work / "schema"),
            "module_file": module_file,
            "model": str(work / "model"),
            "model_run": str(work / "model_run"),
            "curves": str(work / "curves.html"),
            "transform_graph": str(work / "graph"),
            "train_steps": 20,
            "eval_steps": 2,
        },
        mounts=[str(work)],
        options=RESTRICTED,
    )
    assert result.exit_code == 0, result.logs[-4000:]
    assert result.env.get("TF_FORCE_GPU_ALLOW_GROWTH") == "true"
    assert "trainer: strategy " in result.logs
    assert "GPUs visible: none" in result.logs
    assert (work / "model" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_infra_validate_loads_and_queries_in_the_cpu_image(
    docker_client, cpu_image, trained, ingested, tmp_path
):
    """The serving check runs where a server would: the CPU image's Python and TensorFlow."""
    from tests.helpers import strict_model
    from tfkfp.containers.evaluation.infra_blessing import InfraValidation
    from tfkfp.images import run_stage

    work = tmp_path / "work"
    shutil.copytree(Path(trained.model), work / "model")
    shutil.copytree(Path(ingested.examples), work / "examples")
    strict_model(work / "strict", ingested)  # loads, but requires `sex`, missing in some rows
    _shared_dir(work)
    runs = {}
    for name in ("model", "strict"):
        runs[name] = run_stage(
            docker_client,
            cpu_image,
            "infra_validate",
            {
                "model": str(work / name),
                "examples": str(work / "examples"),
                "blessing": str(work / f"{name}_blessing"),
                "num_examples": 1000,  # the whole eval split, rows without `sex` included
            },
            mounts=[str(work)],
        )
        assert runs[name].exit_code == 0, runs[name].logs[-4000:]
        assert "in a fresh process" in runs[name].logs
    found = InfraValidation.read(str(work / "model_blessing"))
    assert (work / "model_blessing" / "INFRA_BLESSED").is_file(), found.reason
    assert {s["signature"] for s in found.signatures} == {
        "serving_default",
        "transform_features",
    }
    assert found.load_seconds > 0
    # written by the image's non-root user, not by this process
    assert (work / "model_blessing" / "INFRA_BLESSED").stat().st_uid == 1000
    refused = InfraValidation.read(str(work / "strict_blessing"))
    assert (work / "strict_blessing" / "INFRA_NOT_BLESSED").is_file()
    assert "signature serving_default refused example " in refused.reason
    assert "sex" in refused.reason


@pytest.mark.slow
def test_image_with_the_users_packages_runs_a_module_importing_one(
    docker_client, cpu_image, tmp_path
):
    """`tfkfp images build --requirements`: FROM our image, a small PyPI package added."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("inflection==0.5.1\n")
    proc = run_cli(
        "images", "build", "--requirements", str(requirements), "--base-image", cpu_image,
        timeout=BUILD_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    tag = proc.stdout.strip().splitlines()[-1]
    assert tag == cpu_image.replace(":", "-user:", 1)
    # the base's user is kept (non-root, as ours)
    user = {docker_client.images.get(i).attrs["Config"]["User"] for i in (tag, cpu_image)}
    assert len(user) == 1 and user != {""}, user
    module = Path(_shared_dir(tmp_path / "module")) / "module.py"
    module.write_text(
        "import inflection\n\n\ndef run_fn(fn_args):\n    return inflection.camelize('big_tipper')\n"
    )
    probe = (
        "from tfkfp.containers.model import user_module; "
        "print('run_fn ->', user_module.load_function('/mnt/module/module.py', 'run_fn')(None))"
    )
    out = docker_client.containers.run(
        tag,
        ["python", "-c", probe],
        volumes={str(module.parent): {"bind": "/mnt/module", "mode": "ro"}},
        remove=True,
    ).decode()
    assert "run_fn -> BigTipper" in out
    # the base image does not have it: the module needs the derived one
    import docker

    with pytest.raises(docker.errors.ContainerError) as err:
        docker_client.containers.run(
            cpu_image,
            ["python", "-c", probe],
            volumes={str(module.parent): {"bind": "/mnt/module", "mode": "ro"}},
            remove=True,
            stderr=True,
        )
    assert "does not import: ModuleNotFoundError: No module named" in str(err.value)
