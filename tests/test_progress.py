"""What a local run prints: one line per stage, live bars on a terminal, logs in the run folder."""

import contextlib
import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli
from tfkfp.containers import events
from tfkfp.progress import Display

PIPELINE = str(REPO / "tests" / "modules" / "progress_pipeline.py")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _logs_dir(output: str) -> Path:
    return Path(re.search(r"task logs: (\S+)/", output)[1])


def test_pipe_gets_plain_lines_and_logs_go_to_files(tmp_path):
    proc = run_cli("run", PIPELINE, "--local", "--pipeline-root", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert not ANSI.search(out), out  # no colours, no cursor movement on a pipe
    lines = out.splitlines()
    assert re.search(r"^  ingest +started$", out, re.M)
    assert re.search(r"^  ingest +ok +[\d.]+ s  rows train 200, eval 100$", out, re.M), out
    assert re.search(r"^  trainer +ok +[\d.]+ s  loss 0.125, accuracy 0.875$", out, re.M), out
    assert len(lines) <= 8, out
    # TensorFlow-like chatter and kfp's executor input are in the task log, not on screen
    assert "cuInit" not in out + proc.stderr and "executor_input" not in out + proc.stderr
    logs = _logs_dir(out)
    assert logs.parent.parent == tmp_path
    ingest_log = (logs / "ingest.log").read_text()
    assert "cuInit" in ingest_log and "Got executor_input" in ingest_log
    assert "ingest: wrote train=200, eval=100" in ingest_log
    assert "epoch 3/3" in (logs / "trainer.log").read_text()


@pytest.mark.slow  # a further local run of the small pipeline; the pipe test stays
def test_failed_stage_prints_its_last_lines_and_log_path(tmp_path):
    proc = run_cli(
        "run", PIPELINE, "--local", "--param", "fail=true", "--pipeline-root", str(tmp_path)
    )
    assert proc.returncode == 1
    out = proc.stdout
    assert re.search(r"^  trainer +FAILED", out, re.M), out
    assert "| ValueError: trainer gave up on purpose" in out
    assert '| "executorInput"' not in out and "| }" not in out  # kfp's input JSON: log only
    log_path = re.search(r"full log: (\S+trainer\.log)$", out, re.M)[1]
    assert "Traceback" in Path(log_path).read_text()
    assert "tfkfp: error: " in proc.stderr and "\x1b[" not in proc.stderr


@pytest.mark.slow  # a further local run of the small pipeline; the pipe test stays
def test_verbose_streams_everything(tmp_path):
    proc = run_cli("run", PIPELINE, "--local", "--verbose", "--pipeline-root", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cuInit" in proc.stdout and "Got executor_input" in proc.stdout
    assert "ingest: read 2/3 files" in proc.stdout
    assert (_logs_dir(proc.stdout) / "ingest.log").is_file()  # and the files all the same


@pytest.mark.slow  # a further local run of the small pipeline; the pipe test stays
def test_terminal_gets_live_progress(tmp_path):
    """On a pseudo-terminal rich draws bars that follow the stages' progress lines."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfkfp.cli", "run", PIPELINE, "--local"]
        + ["--pipeline-root", str(tmp_path)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"},
        close_fds=True,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=120) == 0
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert ANSI.search(screen)  # rich's live display moves the cursor
    plain = ANSI.sub("", screen)
    assert "rows" in plain and re.search(r"epoch [123]/3", plain), plain
    assert re.search(r"trainer +ok +[\d.]+ s  loss 0.125", plain), plain
    assert "cuInit" not in plain


def _reported(report, *args, **kwargs) -> str:
    """What a stage's `events.progress`/`events.result` call writes to its task's output."""
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        report(*args, **kwargs)
    return out.getvalue()


def test_display_reads_key_figures_and_progress_from_records(tmp_path):
    display = Display(stream=open(os.devnull, "w"), live=False)
    display.start("evaluator", tmp_path)
    metrics = {"accuracy": 0.98809, "example_count": 84.0}
    display.output(
        _reported(
            events.result,
            "evaluator",
            "%s; overall %s",
            "BLESSED",
            metrics,
            summary="BLESSED, " + events.figures(metrics),
            blessed=True,
        )
    )
    display.end("evaluator", ok=True)
    assert display.tasks["evaluator"].key == "BLESSED, accuracy 0.988, example_count 84"
    assert display.tasks["evaluator"].result["blessed"] is True
    display.start("pusher-2", tmp_path)
    display.output(
        "INFO tfkfp: pusher: pushed version 3\n"
        + _reported(events.result, "pusher", "pushed version 3", summary="pushed version 3")
    )
    display.end("pusher-2", ok=True)
    assert display.tasks["pusher-2"].key == "pushed version 3"
    assert events.MARKER in (tmp_path / "logs" / "pusher-2.log").read_text()
    # the human line alone is only logged: rewording it changes nothing on screen
    display.start("pusher-3", tmp_path)
    display.output("INFO tfkfp: pusher: pushed version 4\n")
    display.end("pusher-3", ok=True)
    assert display.tasks["pusher-3"].key == ""


def test_stage_reports_reach_the_display(tmp_path, caplog):
    """Records as validate writes them, and a real pusher run's, become key figures."""
    from tfkfp.containers import pusher, validate

    caplog.set_level("INFO", logger="tfkfp")
    display = Display(stream=open(os.devnull, "w"), live=False)
    display.start("validate", tmp_path)
    result = validate.ValidateResult(
        valid=False, anomalies={"train": {"a": "x"}, "eval": {"b": "y", "c": "z"}}
    )
    display.output(
        _reported(
            events.result,
            "validate",
            "NOT valid (3 anomalies)",
            summary="NOT valid, 3 anomalies",
            verdict=validate.verdict(result),
        )
    )
    display.end("validate", ok=True)
    assert display.tasks["validate"].key == "NOT valid, 3 anomalies"
    assert display.tasks["validate"].result["verdict"] == "Not valid: 3 anomalies."
    # a real stage run: the pusher's NOT_BLESSED path needs no model
    blessing = tmp_path / "blessing"
    blessing.mkdir()
    (blessing / "NOT_BLESSED").write_text("")
    display.start("pusher", tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        model = tmp_path / "model"
        model.mkdir()
        pushed = pusher.run(str(model), str(blessing), str(tmp_path / "serving"))
    display.output(out.getvalue())
    display.end("pusher", ok=True)
    assert display.tasks["pusher"].key == "model is NOT_BLESSED, nothing pushed"
    assert display.tasks["pusher"].result["pushed"] is pushed.pushed is False
    assert "pusher: model is NOT_BLESSED, nothing pushed" in caplog.text


def test_tuner_records(tmp_path):
    display = Display(stream=open(os.devnull, "w"), live=False)
    display.start("tuner", tmp_path)
    display.output(
        _reported(events.progress, "tuner", "trial 2/3", completed=2, total=3, detail="trial 2/3")
        + _reported(
            events.result,
            "tuner",
            "best ...",
            summary="best val_accuracy 0.93, 3 of 3 trial(s) completed",
        )
    )
    display.end("tuner", ok=True)
    assert display.tasks["tuner"].key == "best val_accuracy 0.93, 3 of 3 trial(s) completed"


def test_a_record_after_a_log_prefix_or_damaged_is_handled():
    line = _reported(events.result, "ingest", "wrote x", summary="rows train 1")
    assert events.parse("    2026 INFO x " + line.strip())["summary"] == "rows train 1"
    assert events.parse(events.MARKER + "{not json") is None
    assert events.parse("ingest: wrote train=1") is None


def test_beam_stages_rows_drive_the_bar(tmp_path, monkeypatch):
    """events.Progress, as transform and the evaluator count rows, moves the live bar."""
    monkeypatch.setattr(events, "PROGRESS_EVERY", 0.0)
    for task, verb in (("transform", "transformed"), ("evaluator", "evaluated")):
        display = Display(stream=io.StringIO(), live=True)
        display.start(task, tmp_path)
        progress = events.Progress(
            task, "{done}{of_total} rows " + verb, total=344, detail="{done:,} rows " + verb
        )
        out = io.StringIO()
        with contextlib.redirect_stderr(out):
            progress.add(120)
        assert out.getvalue().count(events.MARKER) == 1
        display.output(out.getvalue())
        bar = display._progress.tasks[0]
        assert (bar.completed, bar.total, bar.fields["detail"]) == (120, 344, f"120 rows {verb}")
        display.end(task, ok=True)
        display.close()
