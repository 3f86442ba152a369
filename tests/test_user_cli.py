"""The CLI as a user meets it: `tfkfp run PIPELINE --help`, `--docker` without an engine."""

import inspect

import pytest

from tests.helpers import REPO
from tfkfp.cli import main
from tfkfp.cli.pipelines import load_pipeline

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
