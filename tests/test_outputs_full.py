"""Every stage on a full filesystem (a real tmpfs, filled to leave a fraction of the room its
outputs need): one line naming an output, exit 2, and none of its outputs published, no staging
or temp file left beside them. A retry with room publishes all of them."""

import logging
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import PENGUINS_MODULE
from tests.helpers.fullfs import PAGE

# How much of the room a stage's outputs need is left: none, then part-way through them (a
# page or two short of the whole is within what one run and the next differ by).
FRACTIONS = (0.0, 0.3, 0.6)


def _ingest(out: Path, request) -> tuple:
    from tfkfp.containers import ingest

    csv = request.getfixturevalue("penguins_csv")
    return ingest.run, dict(data_uri=str(csv), examples=str(out / "ex"), schema=str(out / "s"))


def _statistics(out: Path, request) -> tuple:
    from tfkfp.containers import statistics

    ingested = request.getfixturevalue("ingested")
    return statistics.run, dict(
        examples=ingested.examples, statistics=str(out / "stats"), view=str(out / "view.html")
    )


def _validate(out: Path, request) -> tuple:
    from tfkfp.containers import statistics, validate

    ingested = request.getfixturevalue("ingested")
    stats = request.getfixturevalue("tmp_path") / "stats"
    statistics.run(ingested.examples, str(stats), str(stats) + ".html")
    return validate.run, dict(
        statistics=str(stats),
        schema=ingested.schema,
        anomalies=str(out / "anomalies"),
        report=str(out / "report.md"),
    )


def _transform(out: Path, request) -> tuple:
    from tfkfp.containers import transform

    ingested = request.getfixturevalue("ingested")
    return transform.run, dict(
        examples=ingested.examples,
        schema=ingested.schema,
        module_file=PENGUINS_MODULE,
        transform_graph=str(out / "graph"),
        transformed_examples=str(out / "tex"),
    )


def _trainer(out: Path, request) -> tuple:
    from tfkfp.containers import trainer

    ingested = request.getfixturevalue("ingested")
    transformed = request.getfixturevalue("transformed")
    return trainer.run, dict(
        examples=transformed.examples,
        schema=ingested.schema,
        module_file=PENGUINS_MODULE,
        model=str(out / "model"),
        model_run=str(out / "model_run"),
        curves=str(out / "curves.html"),
        transform_graph=transformed.graph,
        train_steps=5,
        eval_steps=2,
    )


def _evaluator(out: Path, request) -> tuple:
    from tfkfp.containers import evaluator
    from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG

    ingested = request.getfixturevalue("ingested")
    trained = request.getfixturevalue("trained")
    return evaluator.run, dict(
        model=trained.model,
        examples=ingested.examples,
        eval_config=EVAL_CONFIG,
        evaluation=str(out / "evaluation"),
        blessing=str(out / "blessing"),
        report=str(out / "report.md"),
        slice_chart=str(out / "slices.html"),
        schema=ingested.schema,
    )


def _infra_validate(out: Path, request) -> tuple:
    from tfkfp.containers import infra_validate

    ingested = request.getfixturevalue("ingested")
    trained = request.getfixturevalue("trained")
    return infra_validate.run, dict(
        model=trained.model, examples=ingested.examples, blessing=str(out / "blessing")
    )


def _infer(out: Path, request) -> tuple:
    from tfkfp.containers import infer

    ingested = request.getfixturevalue("ingested")
    trained = request.getfixturevalue("trained")
    return infer.run, dict(
        inference_result=str(out / "logs"),
        predictions=str(out / "parquet"),
        model=trained.model,
        examples=ingested.examples,
        parquet=True,
    )


STAGES = {
    "ingest": _ingest,
    "statistics": _statistics,
    "validate": _validate,
    "transform": pytest.param(_transform, marks=pytest.mark.slow),
    "trainer": pytest.param(_trainer, marks=pytest.mark.slow),
    "evaluator": pytest.param(_evaluator, marks=pytest.mark.slow),
    "infra_validate": pytest.param(_infra_validate, marks=pytest.mark.slow),
    "infer": pytest.param(_infer, marks=pytest.mark.slow),
}


def _call(capsys, stage, kwargs) -> tuple[int, str]:
    """The stage as its component calls it: (exit code, its `error:` lines joined)."""
    from tfkfp.containers import runtime

    capsys.readouterr()
    logging.getLogger()._tfkfp_configured = False  # log to this test's captured stderr
    try:
        runtime.entrypoint(stage, **kwargs)
        code = 0
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    return code, "\n".join(lines) or err[-3000:]


def _pages(out: Path) -> int:
    """Bytes the files under `out` take on tmpfs: whole pages."""
    return sum(-(-p.stat().st_size // PAGE) * PAGE for p in out.rglob("*") if p.is_file())


def _left(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []


@pytest.mark.parametrize("make", list(STAGES.values()), ids=list(STAGES))
@pytest.mark.slow_variants  # a full filesystem per stage
def test_a_full_filesystem_publishes_none_of_a_stages_outputs(small_fs, make, request, capsys):
    out = small_fs.path / "outputs"
    stage, kwargs = make(out, request)
    before = small_fs.used()
    code, err = _call(capsys, stage, kwargs)
    assert code == 0, err
    published = _left(out)
    # the pages the published files take (Beam's runs leave room used elsewhere meanwhile)
    needed = min(small_fs.used() - before, _pages(out))
    assert not [p for p in published if re.search(r"\.(staging|tmp)-", p)], published
    shutil.rmtree(out)
    for fraction in FRACTIONS:
        small_fs.leave(int(needed * fraction))
        code, line = _call(capsys, stage, kwargs)
        assert code == 2, line
        assert re.fullmatch(
            r"error: [a-z_, ]+: no space left on device writing \S+ \(Errno 28\)", line
        ), line
        assert _left(out) == [], (fraction, _left(out))
        small_fs.unfill()
    code, err = _call(capsys, stage, kwargs)  # the retry, with room
    assert code == 0, err
    assert _shape(_left(out)) == _shape(published)


def _shape(paths: list[str]) -> list[str]:
    """Paths with their numbers blanked: TensorBoard names event files by time and pid."""
    return sorted(re.sub(r"\d+", "#", p) for p in paths)


@pytest.mark.slow  # full filesystem
def test_the_tuner_on_a_full_filesystem_publishes_none_of_its_outputs(
    small_fs, ingested, transformed
):
    """The tuner in its own process (its own Keras): best_hyperparameters, trials, chart."""
    from tests.helpers.tuner import tuner_process

    out = small_fs.path / "outputs"
    before = small_fs.used()
    code, _, stderr = tuner_process(out, ingested, transformed)
    assert code == 0, stderr[-3000:]
    published = _left(out)
    assert {"best_hyperparameters", "trials.md", "trials.html"} <= set(published), published
    needed = small_fs.used() - before
    shutil.rmtree(out)
    for fraction in (0.0, 0.5, 0.9):
        small_fs.leave(int(needed * fraction))
        code, _, stderr = tuner_process(out, ingested, transformed)
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert code == 2 and len(errors) == 1, stderr[-3000:]
        assert "no space left on device" in errors[0], errors
        assert _left(out) == [], (fraction, _left(out))
        small_fs.unfill()
