"""What a local run shows: one line per stage start and end, live progress on a terminal.

Every task's output (its stage logs, TensorFlow's start-up chatter, kfp's executor input) goes
to `<run folder>/logs/<task>.log` instead of the screen; `--verbose` streams it as kfp does.
Progress and key figures are read from the stages' own log lines (`ingest: read 1/1 files`,
`trainer: epoch 3/5 ...`), so a stage reports progress by logging, as it does on a cluster.
"""

from __future__ import annotations

import collections
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# (stage, pattern) -> how a matching line becomes (completed, total, detail).
PROGRESS = (
    (
        "ingest",
        re.compile(r"ingest: read (\d+)/(\d+) files, ([\d.]+)/([\d.]+) MB, (\d+) rows"),
        lambda m: (float(m[3]), float(m[4]) or None, f"{int(m[5]):,} rows"),
    ),
    (
        "",
        re.compile(r"(\w+): epoch (\d+)/(\d+)(?:, step (\d+))?(?:: (.*))?$"),
        lambda m: (float(m[2]), float(m[3]), f"epoch {m[2]}/{m[3]}" + _short(_figures(m[5]))),
    ),
    (
        "",
        re.compile(r"(\w+): step (\d+)(?:/(\d+))?(?:, epoch (\d+)/(\d+))?(?:: (.*))?$"),
        lambda m: (
            float(m[2]),
            float(m[3]) if m[3] else None,
            f"step {m[2]}" + (f"/{m[3]}" if m[3] else "") + _short(m[6]),
        ),
    ),
    (
        "",
        re.compile(r"(\w+): trial (\d+)/(\d+|\?)(?: \w+)?(?:: (.*))?$"),
        lambda m: (
            float(m[2]),
            None if m[3] == "?" else float(m[3]),
            f"trial {m[2]}/{m[3]}" + _short(m[4]),
        ),
    ),
    (
        "",
        re.compile(r"(\w+): (\d+)(?:/(\d+))? rows (read|written|processed|transformed|evaluated)"),
        lambda m: (float(m[2]), float(m[3]) if m[3] else None, f"{int(m[2]):,} rows {m[4]}"),
    ),
)

# stage -> (pattern, format of the key figure shown at the end; {0}.. are the groups).
KEY_FIGURES = {
    "fingerprint": (
        re.compile(r"fingerprint: (\d+) file\(s\), (\d+) bytes"),
        "{0} file(s), {1} bytes",
    ),
    "ingest": (re.compile(r"ingest: wrote (.+)$"), "rows {0}"),
    "transform": (re.compile(r"transform: wrote (.+)$"), "rows {0}"),
    "trainer": (re.compile(r"trainer: epoch \d+/\d+(?:, step \d+)?: (.+)$"), "{0}"),
    "tuner": (
        re.compile(r"tuner: best (\S+) (\S+) with .*; (\d+ of \d+ trial\(s\) completed)"),
        "best {0} {1}, {2}",
    ),
    "evaluator": (re.compile(r"evaluator: ((?:NOT_)?BLESSED); overall (.+)$"), "{0}, {1}"),
    "pusher": (
        re.compile(
            r"pusher: (pushed version \d+|model is NOT_BLESSED, nothing pushed|same model"
            r" already pushed as \S+|not pushed: \S+ \S+ against \S+ of version \d+)"
        ),
        "{0}",
    ),
    "statistics": (re.compile(r"statistics: (\w+=\d+ rows(?:, \w+=\d+ rows)*)$"), "rows {0}"),
    "validate": (re.compile(r"validate: (valid|NOT valid) \((\d+ anomal\w+)\)"), "{0}, {1}"),
}

# Lines kept to show under a failed stage.
TAIL = 15


def _figures(text: str | None) -> str:
    """`{'accuracy': 0.98809, 'n': 84.0}` or `accuracy=0.98809` -> `accuracy 0.988, n 84`."""
    if not text:
        return ""
    pairs = re.findall(r"'?([\w/.-]+)'?\s*[:=]\s*(-?[\d.]+(?:e-?\d+)?)", text)
    if not pairs:
        return text
    return ", ".join(f"{k} {float(v):.3g}" for k, v in pairs)


def _short(metrics: str | None) -> str:
    return f"  {metrics}" if metrics else ""


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


def stage_of(task: str) -> str:
    """`trainer-2` -> `trainer`: kfp.local numbers a component used more than once."""
    return re.sub(r"-\d+$", "", task)


@dataclass
class Task:
    name: str
    log_path: Path
    log: IO[str]
    started: float = field(default_factory=time.perf_counter)
    key: str = ""
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL))
    progress_id: int | None = None
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
            task.tail.append(line)
            self._parse(task, line)

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
        skipped = re.search(r"Skipping (?:conditional )?task ([\w-]+)\W*(.*)$", plain)
        if skipped:
            self.say(f"  {skipped[1]:<12} skipped {skipped[2]}".rstrip())

    def _parse(self, task: Task, line: str) -> None:
        stage = stage_of(task.name)
        key = KEY_FIGURES.get(stage)
        if key:
            m = key[0].search(line)
            if m:
                task.key = key[1].format(*(_figures(g) for g in m.groups()))
        if self._progress is None or task.progress_id is None:
            return
        for only, pattern, read in PROGRESS:
            if only and only != stage:
                continue
            m = pattern.search(line)
            if m:
                completed, total, detail = read(m)
                update: dict = {"detail": detail}
                if total:
                    update.update(total=total, completed=completed)
                self._progress.update(task.progress_id, **update)
                return

    def end(self, name: str, ok: bool) -> None:
        task = self.tasks.get(name)
        if task is None:
            return
        seconds = time.perf_counter() - task.started
        task.log.close()
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
