"""The CLI as a user meets it: `tfkfp run PIPELINE --help`, `--docker` without an engine."""

import inspect
import io
import re
from pathlib import Path

import pytest

from tests.helpers import REPO, free_port, run_cli
from tfkfp.cli import main
from tfkfp.cli.pipelines import load_pipeline
from tfkfp.containers.runtime import InputError
from tfkfp.progress import Display

PIPELINES = sorted(p.parent.name for p in (REPO / "pipelines").glob("*/pipeline.py"))


@pytest.mark.parametrize("name", PIPELINES)
def test_run_help_lists_the_pipelines_parameters(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--pipeline-root" in out  # the run options first
    listed = out.split(f"Parameters of {load_pipeline(name).name}", 1)[1]
    signature = inspect.signature(load_pipeline(name).pipeline_func)
    for param in signature.parameters.values():
        kind = param.annotation.__name__
        if param.default is inspect.Parameter.empty:
            assert f"\n  {param.name}: {kind}, required" in listed, param.name
        else:
            assert f"\n  {param.name}: {kind} = " in listed, param.name


def test_run_help_shows_types_defaults_and_descriptions(capsys):
    with pytest.raises(SystemExit):
        main(["run", "taxi", "--help"])
    out = capsys.readouterr().out
    assert "\n  train_fraction: float = 0.75\n      Share of rows ingest hashes into train" in out
    assert "\n  train_steps: int = 300\n      Training steps.\n" in out
    assert "\n  use_gpu: bool = false\n" in out
    # what a local run fills in for the required ones
    assert "\n  data_uri: str, required (tfkfp run --local: " in out


def test_run_help_of_an_unknown_pipeline(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "no_such_pipeline", "--help"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "tfkfp: error: pipeline: 'no_such_pipeline' is neither a pipeline file/folder nor a "
        "tfkfp pipeline name"
    ]


def test_run_help_without_a_pipeline(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "`tfkfp run PIPELINE --help` also lists that pipeline's parameters" in out
    assert "Parameters of" not in out


# --- what a local run shows for branches and display names -------------------------------------

BRANCHES = str(REPO / "tests" / "modules" / "branch_pipeline.py")


def _run_branches(tmp_path, *params):
    proc = run_cli(
        "run", BRANCHES, "--local", "--pipeline-root", str(tmp_path), *params, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_skipped_branches_are_named_by_their_tasks(tmp_path):
    proc = _run_branches(tmp_path)
    out = proc.stdout
    # the push gate was false, and the Else branch did not run: named by their tasks
    assert re.search(r"^  push +skipped$", out, re.M), out
    assert re.search(r"^  data-not-valid skipped$", out, re.M), out
    assert "condition" not in out and ")" not in out.replace("(named)", ""), out
    proc = _run_branches(tmp_path, "--param", "valid=false")
    # the whole training branch, a nested gate's task included, by display name
    assert re.search(r"^  train \(named\), push skipped$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^  data-not-valid ok ", proc.stdout, re.M), proc.stdout


def test_kfp_local_warnings_about_settings_go_to_the_log(tmp_path):
    proc = _run_branches(tmp_path)
    # kfp.local warns that set_display_name has no effect locally: not on screen, in the log
    assert "display_name" not in proc.stdout + proc.stderr, proc.stderr
    logs = Path(re.search(r"task logs: (\S+)/", proc.stdout)[1])
    logged = "".join(p.read_text() for p in logs.glob("*.log"))
    assert "Task 'train': settings ['display_name'] have no effect" in logged


def test_display_names_groups_of_an_upstream_failure(tmp_path):
    out = io.StringIO()
    display = Display(stream=out, live=False)
    display.groups = {"condition-2": ["trainer", "pusher"], "condition-3": ["data-not-valid"]}
    display.kfp_line("Skipping task condition-2: upstream task(s) ['condition-3'] failed.")
    display.kfp_line("Skipping conditional task condition-3 (condition evaluated to False)")
    assert out.getvalue().splitlines() == [
        "  trainer, pusher skipped: data-not-valid failed",
        "  data-not-valid skipped",
    ]


# --- --docker without a Docker engine -----------------------------------------------------------


@pytest.mark.parametrize("where", ["tcp", "unix"])
@pytest.mark.slow_variants  # a CLI process per case
def test_docker_runs_without_an_engine_say_so_in_one_line(tmp_path, where):
    # Nothing listens there: a closed loopback port (connection refused), a missing socket.
    host = f"tcp://127.0.0.1:{free_port()}" if where == "tcp" else f"unix://{tmp_path}/no.sock"
    env = {"DOCKER_HOST": host}
    root = tmp_path / "root"
    run = run_cli("run", BRANCHES, "--local", "--docker", "--pipeline-root", str(root), env=env)
    build = run_cli("images", "build", env=env)
    assert (run.returncode, build.returncode) == (2, 2), run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfkfp: error: Docker is not available ("), lines
    assert lines == build.stderr.strip().splitlines()[-1:]
    # before any task started: no run folder, nothing on stdout
    assert run.stdout == "" and list(root.iterdir()) == []


# --- images with the user's own packages (resolution; the build is in tests/test_images.py) -----


def test_requirements_that_conflict_with_our_pins_are_one_line(tmp_path):
    """Resolved before any build: no Docker engine is needed to be told (DOCKER_HOST: none)."""
    from tfkfp.images import SOURCE_ROOT

    pinned = next(
        line.strip()
        for line in (SOURCE_ROOT / "constraints.txt").read_text().splitlines()
        if line.startswith("numpy==")
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("inflection\nnumpy==1.26.4\n")
    proc = run_cli(
        "images", "build", "--requirements", str(requirements),
        env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [
        f"tfkfp: error: --requirements {requirements}: conflicts with tfkfp's pinned versions "
        f"(constraints.txt): the requirements ask for numpy==1.26.4; tfkfp pins {pinned}"
    ]


def test_requirements_are_pinned_to_what_the_image_has(tmp_path):
    from tfkfp.images import SOURCE_ROOT, derived_tag, resolve_requirements

    constraints = SOURCE_ROOT / "constraints.txt"
    six = next(line for line in constraints.read_text().splitlines() if line.startswith("six=="))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("inflection\nsix\n")
    pins = resolve_requirements(str(requirements), constraints)
    assert six in pins  # a package the image has: its version, not the newest
    assert any(p.startswith("inflection==") for p in pins), pins
    assert not any(p.lower().startswith("tensorflow==") for p in pins)
    assert derived_tag("tfkfp:0.1.0") == "tfkfp-user:0.1.0"
    assert derived_tag("registry:5000/team/tfkfp") == "registry:5000/team/tfkfp-user"
    missing = tmp_path / "absent.txt"
    with pytest.raises(InputError, match="no such file; expected a pip requirements file"):
        resolve_requirements(str(missing), constraints)
