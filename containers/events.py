"""What a stage reports while it runs and when it is done: a human line and a record.

Each report is logged through stdlib logging as `<stage>: <line>` (what a KFP task log shows)
and written as a machine-readable record, one JSON object on a line of its own after MARKER, to
the process's stderr: the task's output stream, which kfp.local and a KFP pod's log carry.
Readers (the live display of `tfkfp run --local`, `tfkfp demo`'s summary, bench/e2e.py) take
records with `parse`; nothing reads the human lines back, so rewording one changes no display.

A record: `{"stage", "event": "progress" | "result", "time" (Unix seconds), "line"}` and
- progress: `completed`, `total` (None when unknown), `detail` (the bar's text), and optionally
  `summary` (the stage's key figure so far, e.g. the last epoch's metrics);
- result: `summary` (the key figure shown when the stage ends) and the stage's own fields.

Imports nothing heavy: the pusher reports without TensorFlow.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from tfkfp.containers.runtime import log

MARKER = "tfkfp-event: "
# Seconds between progress reports of a long step (rows, files, bytes).
PROGRESS_EVERY = 5.0


def _emit(stage: str, event: str, line: str, args: tuple, fields: dict[str, Any]) -> None:
    log.info(f"{stage}: {line}", *args)
    text = line % args if args else line
    record = {"stage": stage, "event": event, "time": time.time(), "line": text, **fields}
    sys.stderr.write(MARKER + json.dumps(record, default=str) + "\n")
    sys.stderr.flush()


def progress(
    stage: str,
    line: str,
    *args: object,
    completed: float | None = None,
    total: float | None = None,
    detail: str = "",
    summary: str | None = None,
) -> None:
    """Reports how far a stage got: `<stage>: line % args` and a progress record.

    Args:
        stage: The reporting stage.
        line: The human line after `<stage>: `, a %-format over `args`.
        completed: Work done, in the unit of `total`.
        total: Work expected; None when unknown (the bar then only shows `detail`).
        detail: A short text beside the bar (`120 rows transformed`, `epoch 2/5  loss 0.3`).
        summary: The stage's key figure so far, shown when it ends unless a result replaces it.
    """
    fields: dict[str, Any] = {"completed": completed, "total": total, "detail": detail}
    if summary is not None:
        fields["summary"] = summary
    _emit(stage, "progress", line, args, fields)


def result(stage: str, line: str, *args: object, summary: str, **fields: Any) -> None:
    """Reports what a stage produced: `<stage>: line % args` and a result record.

    Args:
        stage: The reporting stage.
        line: The human line after `<stage>: `, a %-format over `args`.
        summary: The key figure shown when the stage ends (`rows train 260, eval 84`).
        **fields: The result as data (JSON-serializable), for readers other than the display.
    """
    _emit(stage, "result", line, args, {"summary": summary, **fields})


def parse(line: str) -> dict[str, Any] | None:
    """The record a line of a task's output carries, or None for any other line.

    A log formatter or kfp's indentation may put text before the marker; it is skipped.
    """
    head, marker, body = line.partition(MARKER)
    if not marker:
        return None
    try:
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "stage" in record else None


def figures(values: Mapping[str, float]) -> str:
    """`{'accuracy': 0.98809, 'n': 84.0}` -> `accuracy 0.988, n 84` (three significant digits)."""
    return ", ".join(f"{k} {float(v):.3g}" for k, v in values.items())


class Progress:
    """A long step's counts, reported at most every PROGRESS_EVERY seconds and when complete.

    One class for every stage's long steps: rows through a Beam stage (each Beam worker counts
    its own bundles), files and bytes read by ingest, bytes copied by the pusher. The human line
    and the bar's detail are str.format templates over the counts: `done`, `total`, `of_total`
    (`/<total>` or empty), `files`, `files_total`, `rows`, `done_mb`, `total_mb`.

    Args:
        stage: The reporting stage.
        line: The human line after `<stage>: `.
        total: The amount expected (rows, bytes); None when unknown.
        files_total: Files expected, when the work goes file by file; complete when all are done.
        detail: The bar's text.
    """

    def __init__(
        self,
        stage: str,
        line: str,
        total: float | None = None,
        files_total: int | None = None,
        detail: str = "",
    ) -> None:
        self.stage, self.line, self.detail = stage, line, detail
        self.total, self.files_total = total, files_total
        self.done = self.files = self.rows = 0
        self.current = 0  # the amount done of the file being read (ingest)
        self.last = time.monotonic()
        self._completed = False

    def add(self, amount: int = 0, *, files: int = 0, rows: int = 0, current: int | None = None):
        """Counts work done; reports when PROGRESS_EVERY seconds passed or the work is complete.

        Args:
            amount: Amount finished (rows, or a whole file's bytes).
            files: Files finished (the partial amount `current` then starts again at 0).
            rows: Rows read, when the amount is not rows.
            current: The amount read so far of the file in progress.
        """
        self.done += amount
        self.files += files
        self.rows += rows
        if files:
            self.current = 0
        if current is not None:
            self.current = current
        if self.total is not None:
            self.current = min(self.current, self.total - self.done)
        if self._complete() and not self._completed:
            self._completed = True
            self.report()
        elif time.monotonic() - self.last >= PROGRESS_EVERY:
            self.report()

    def _complete(self) -> bool:
        if self.files_total is not None:
            return self.files >= self.files_total
        return self.total is not None and self.done >= self.total

    def report(self) -> None:
        """Reports the counts now."""
        self.last = time.monotonic()
        done = self.done + self.current
        counts = {
            "done": done,
            "total": self.total,
            "of_total": f"/{self.total}" if self.total else "",
            "files": self.files,
            "files_total": self.files_total,
            "rows": self.rows,
            "done_mb": done / 1e6,
            "total_mb": (self.total or 0) / 1e6,
        }
        progress(
            self.stage,
            self.line.format(**counts),
            completed=done,
            total=self.total or None,
            detail=self.detail.format(**counts),
        )
