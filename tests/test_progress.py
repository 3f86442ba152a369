"""What a local run prints: one line per stage, live bars on a terminal, logs in the run folder."""

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cli

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


def test_verbose_streams_everything(tmp_path):
    proc = run_cli("run", PIPELINE, "--local", "--verbose", "--pipeline-root", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cuInit" in proc.stdout and "Got executor_input" in proc.stdout
    assert "ingest: read 2/3 files" in proc.stdout
    assert (_logs_dir(proc.stdout) / "ingest.log").is_file()  # and the files all the same


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


def test_display_parses_key_figures_and_progress(tmp_path):
    display = Display(stream=open(os.devnull, "w"), live=False)
    display.start("evaluator", tmp_path)
    display.output(
        "2026 INFO tfkfp: evaluator: BLESSED; overall {'accuracy': 0.98809, 'example_count': 84.0}\n"
    )
    display.end("evaluator", ok=True)
    assert display.tasks["evaluator"].key == "BLESSED, accuracy 0.988, example_count 84"
    display.start("pusher-2", tmp_path)
    display.output("INFO tfkfp: pusher: pushed version 3\n")
    display.end("pusher-2", ok=True)
    assert display.tasks["pusher-2"].key == "pushed version 3"
    assert (tmp_path / "logs" / "pusher-2.log").read_text().endswith("pushed version 3\n")


def test_tuner_lines(tmp_path):
    display = Display(stream=open(os.devnull, "w"), live=False)
    display.start("tuner", tmp_path)
    display.output(
        "INFO tfkfp: tuner: trial 2/3 COMPLETED: val_accuracy 0.91 in 3.0 s (best so far 0.93)\n"
        'INFO tfkfp: tuner: best val_accuracy 0.93 with {"units": 8}; 3 of 3 trial(s) '
        "completed; written to /tmp/x\n"
    )
    display.end("tuner", ok=True)
    assert display.tasks["tuner"].key == "best val_accuracy 0.93, 3 of 3 trial(s) completed"


def test_key_figures_of_the_data_stages(tmp_path):
    display = Display(stream=open(os.devnull, "w"), live=False)
    for task, line, key in (
        ("statistics", "statistics: train=260 rows, eval=84 rows", "rows train 260, eval 84"),
        ("validate", "validate: NOT valid (3 anomalies)", "NOT valid, 3 anomalies"),
        ("pusher", "pusher: pushed version 7 to /srv/m/7", "pushed version 7"),
        (
            "pusher",
            "pusher: not pushed: accuracy 0.905 against 0.964 of version 7 (/srv/m/7), pushed "
            "after this model's evaluation, fails its change threshold {...}",
            "not pushed: accuracy 0.905 against 0.964 of version 7",
        ),
    ):
        display.start(task, tmp_path)
        display.output(f"2026 INFO tfkfp: {line}\n")
        display.end(task, ok=True)
        assert display.tasks[task].key == key


@pytest.mark.parametrize(
    ("task", "line", "completed", "total", "detail"),
    [
        ("transform", "transform: 120/344 rows transformed", 120, 344, "120 rows transformed"),
        ("evaluator", "evaluator: 40/84 rows evaluated", 40, 84, "40 rows evaluated"),
    ],
)
def test_beam_stages_rows_drive_the_bar(tmp_path, task, line, completed, total, detail):
    display = Display(stream=io.StringIO(), live=True)
    display.start(task, tmp_path)
    display.output(f"2026 INFO tfkfp: {line}\n")
    bar = display._progress.tasks[0]
    assert (bar.completed, bar.total, bar.fields["detail"]) == (completed, total, detail)
    display.end(task, ok=True)
    display.close()
