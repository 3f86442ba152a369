"""What a local run shows: one line per stage start and end, live progress on a terminal.

Every task's output (its stage logs, TensorFlow's start-up chatter, kfp's executor input) goes
to `<run folder>/logs/<task>.log` instead of the screen; `--verbose` streams it as kfp does.
Progress and key figures come from the records stages write through containers/events.py into
the same output (`events.parse`); the human log lines are never read back.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tfkfp.containers import events

# Lines kept to show under a failed stage.
TAIL = 15


def _executor_input(task: Task, line: str) -> bool:
    """Whether a line belongs to the executor input JSON kfp's executor prints (kept in logs)."""
    if "Got executor_input:" in line:
        task.json_depth = 0
        return True
    if task.json_depth < 0:
        return False
    structure = re.sub(r'"(?:\\.|[^"\\])*"', "", line)  # brackets inside strings do not count
    task.json_depth += sum(structure.count(c) for c in "{[") - sum(structure.count(c) for c in "}]")
    if task.json_depth <= 0:
        task.json_depth = -1
    return True


@dataclass
class Task:
    name: str
    log_path: Path
    log: IO[str]
    started: float = field(default_factory=time.perf_counter)
    began: float = field(default_factory=time.time)  # wall clock, for logs/tasks.jsonl
    key: str = ""
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL))
    progress_id: int | None = None
    result: dict[str, Any] | None = None  # the stage's result record (containers/events.py)
    json_depth: int = -1  # inside the JSON kfp's executor prints at task start: its nesting


class Display:
    """One run's screen: start/end lines, live bars on a terminal, plain lines elsewhere.

    Args:
        stream: Where the lines go (stdout by default).
        verbose: Also stream every task's output as it comes (kfp's own format).
        live: Draw live progress with rich; default: when `stream` is a terminal.
    """

    def __init__(
        self, stream: IO[str] | None = None, verbose: bool = False, live: bool | None = None
    ) -> None:
        self.stream = stream or sys.stdout
        self.verbose = verbose
        if live is None:
            live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.live = live and not verbose
        self.tasks: dict[str, Task] = {}
        self.current: Task | None = None
        self.run_dir: Path | None = None
        self.failed: list[str] = []
        # KFP's group tasks (condition-N) -> the tasks inside, to name skipped branches by.
        self.groups: dict[str, list[str]] = {}
        self._pending: list[str] = []  # kfp log lines before the run folder is known
        self._progress = None
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.console = Console(file=self.stream, highlight=False)
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description:<12}"),
                BarColumn(bar_width=24),
                TimeElapsedColumn(),
                TextColumn("{task.fields[detail]}"),
                console=self.console,
                transient=True,
                # rich's default 10 redraws a second cost ~1% of a demo's wall time in CPU here
                refresh_per_second=4,
            )

    # --- lines -----------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """Prints one line above the live display (or plainly)."""
        if self._progress is not None:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def begin_run(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        if not run_dir.exists():
            run_dir.mkdir(parents=True)
            # Tasks in the images run as another user and make their folders here: the run
            # folder gets the pipeline root's permissions, as when the first task made it.
            shutil.copymode(run_dir.parent, run_dir)
        logs = run_dir / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / "kfp.log", "a") as fh:
            fh.writelines(self._pending)
        self._pending.clear()
        self.say(f"task logs: {logs}/")

    def start(self, name: str, run_dir: Path) -> None:
        if self.run_dir is None:
            self.begin_run(run_dir)
        path = self.run_dir / "logs" / f"{name}.log"
        task = Task(name, path, open(path, "a", buffering=1))  # line-buffered: tail -f works
        self.tasks[name] = task
        self.current = task
        self.say(f"  {name:<12} started")
        if self._progress is not None:
            if not self._progress.live.is_started:
                self._progress.start()
            task.progress_id = self._progress.add_task(name, total=None, detail="")

    def output(self, text: str) -> None:
        """A chunk of the current task's output: logged, parsed, streamed when verbose."""
        task = self.current
        if task is None:
            self.kfp_line(text)
            return
        task.log.write(text)
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if _executor_input(task, line):
                continue  # the failure's last lines should be the stage's, not kfp's input
            record = events.parse(line)
            if record is not None:
                self._record(task, record)
                continue  # the human line beside it is what the tail shows
            task.tail.append(line)

    def kfp_line(self, text: str) -> None:
        """A line of kfp.local's own logging (task started, outputs, skipped, cache hit)."""
        if not text.endswith("\n"):
            text += "\n"
        if self.current is not None:
            self.current.log.write(text)
        elif self.run_dir is not None:
            with open(self.run_dir / "logs" / "kfp.log", "a") as fh:
                fh.write(text)
        else:
            self._pending.append(text)
        plain = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()
        hit = re.search(r"Task '?([\w-]+)'? cache hit", plain)
        if hit:
            self.say(f"  {hit[1]:<12} cached  (kfp.local's cache: outputs of an earlier run)")
        skipped = re.search(r"Skipping conditional task ([\w-]+)", plain)
        if skipped:
            self.say(f"  {self._named(skipped[1]):<12} skipped")
        skipped = re.search(r"Skipping task ([\w-]+): upstream task\(s\) \[(.*)\] failed", plain)
        if skipped:
            upstream = ", ".join(self._named(n) for n in re.findall(r"'([^']+)'", skipped[2]))
            self.say(f"  {self._named(skipped[1]):<12} skipped: {upstream} failed")

    def _named(self, task: str) -> str:
        """A task by what it runs: a KFP group (`condition-3`) by the tasks inside it."""
        return ", ".join(self.groups.get(task) or [task])

    def _record(self, task: Task, record: dict[str, Any]) -> None:
        """A stage's event: the key figure shown at its end, and the live bar."""
        if record.get("summary") is not None:
            task.key = str(record["summary"])
        if record.get("event") == "result":
            task.result = record
            return
        if self._progress is None or task.progress_id is None:
            return
        update: dict[str, Any] = {"detail": record.get("detail", "")}
        if record.get("total"):
            update.update(total=record["total"], completed=record.get("completed") or 0)
        self._progress.update(task.progress_id, **update)

    def end(self, name: str, ok: bool) -> None:
        task = self.tasks.get(name)
        if task is None:
            return
        seconds = time.perf_counter() - task.started
        task.log.close()
        # One machine-readable line per task (bench/e2e.py reads it): when it ran, how it ended.
        with open(task.log_path.parent / "tasks.jsonl", "a") as fh:
            fh.write(
                json.dumps({"task": name, "started": task.began, "seconds": seconds, "ok": ok})
                + "\n"
            )
        self.current = None
        if self._progress is not None and task.progress_id is not None:
            self._progress.remove_task(task.progress_id)
        if ok:
            self.say(f"  {name:<12} ok     {seconds:6.1f} s  {task.key}".rstrip())
            return
        self.failed.append(name)
        self.say(f"  {name:<12} FAILED {seconds:6.1f} s; its last lines:")
        for line in task.tail:
            self.say(f"    | {line}")
        self.say(f"  full log: {task.log_path}")

    def close(self) -> None:
        if self.current is not None:
            self.current.log.close()
            self.current = None
        if self._progress is not None and self._progress.live.is_started:
            self._progress.stop()
