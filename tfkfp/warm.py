"""Warm local runs: kfp.local tasks forked from a worker that imported TensorFlow, Beam and TFMA once.

kfp.local's SubprocessRunner starts `sh -c "python -m kfp.dsl.executor_main ..."` per task, so
every task pays its imports again (TensorFlow, tf.Transform's Beam and TFMA: 5-10 s each here).
Instead, a *zygote* process imports them once, with the Keras flavour already decided (it cannot
change once TensorFlow is imported), and for each task forks a child that does exactly what the
task's command would: write the component's source to a temporary file, run
`kfp.dsl.executor_main` with the task's arguments, environment and working directory, and exit.
The child's stdout and stderr go to a pipe the run reads, as kfp's own runner reads its
subprocess. Importing creates no TensorFlow runtime (no eager context, no thread pools: the zygote
checks before it forks, see `fork_hazards`), so each child starts its runtime itself.

A zygote per Keras flavour, started on first use; each lives in its own session so a terminal's
Ctrl-C reaches only the run, which then interrupts the running task once and waits for its
clean-up (staged outputs removed) before it stops.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import importlib
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

# What the stages import, heaviest first, in two parts: what the first heavy task (transform)
# needs, and the rest, imported while that task runs on the other core. A module missing here is
# skipped (the task that needs it then imports it, or fails, as it would in a fresh process).
PRELOAD = {
    "tf_keras": (
        (
            "tensorflow",
            "tf_keras",
            "apache_beam",
            "tensorflow_transform",
            "tensorflow_transform.beam",
            "tfx_bsl.public.tfxio",
            "tfx_bsl.coders.example_coder",
            "kfp.dsl.executor_main",
        ),
        (
            "tensorflow_model_analysis",
            "pyarrow.csv",
            "pyarrow.compute",
            "pandas",
        ),
    ),
    "keras3": (
        (
            "tensorflow",
            "keras",
            "tensorflow_transform",
            "tfx_bsl.public.tfxio",
            "kfp.dsl.executor_main",
        ),
        (),
    ),
}
LEGACY_KERAS = {"tf_keras": "1", "keras3": "0"}
# Seconds a task gets to clean up after an interrupt before it is killed.
INTERRUPT_GRACE = 30.0
EXECUTOR = "kfp.dsl.executor_main"
PR_SET_PDEATHSIG = 1


class WorkerDied(RuntimeError):
    """A task's process ended by a signal, or its zygote vanished, before the task finished."""


# --- the run's side --------------------------------------------------------------------------


def task_parts(full_command: list[str]) -> tuple[str, list[str]] | None:
    """(component source, executor arguments) of a lightweight component's command, else None.

    kfp 2.17 runs `sh -ec '<write "$0" to ephemeral_component.py>; python -m
    kfp.dsl.executor_main --component_module_path <it> "$@"' <source> <args...>`.
    """
    for i, part in enumerate(full_command[:-1]):
        if EXECUTOR in part and '"$program_path/ephemeral_component.py"' in part and '"$@"' in part:
            return full_command[i + 1], full_command[i + 2 :]
    return None


def _arg(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args[:-1]):
        if arg == name:
            return args[i + 1]
    return None


def keras_flavour(args: list[str]) -> str:
    """The Keras flavour a task asks for (its `keras` parameter), tf_keras when it has none."""
    try:
        params = json.loads(_arg(args, "--executor_input") or "{}")["inputs"]["parameterValues"]
    except (KeyError, TypeError, ValueError):
        return "tf_keras"
    flavour = params.get("keras", "tf_keras")
    # A bad value fails in the stage's own check, which runs in either zygote.
    return flavour if flavour in LEGACY_KERAS else "tf_keras"


def output_paths(args: list[str]) -> list[str]:
    """Local paths of the task's output artifacts (kfp.local's URIs are local paths)."""
    try:
        outputs = json.loads(_arg(args, "--executor_input") or "{}")["outputs"]["artifacts"]
    except (KeyError, TypeError, ValueError):
        return []
    return [
        artifact["uri"]
        for spec in outputs.values()
        for artifact in spec.get("artifacts", [])
        if artifact.get("uri", "").startswith("/")
    ]


# An import of one of the libraries the warm worker holds, in a user's own component (it
# declares nothing; tfkfp's stages declare LIBRARIES).
HEAVY_IMPORT = re.compile(
    r"^\s*(?:from|import)\s+(?:tensorflow|tensorflow_transform|tensorflow_model_analysis"
    r"|apache_beam|tf_keras|keras)(?:[.\s]|$)",
    re.M,
)


def needs_heavy_imports(stage: str, source: str = "") -> bool:
    """Whether a task loads TensorFlow, Beam or TFMA: for a tfkfp stage, as its module declares
    (`LIBRARIES`); for a user's own component, whether its source imports one of them."""
    try:
        module = importlib.import_module(f"tfkfp.containers.{stage}")
    except ImportError:
        return bool(HEAVY_IMPORT.search(source))
    libraries = getattr(module, "LIBRARIES", None)
    if libraries is None:  # a package of shared code (containers/train/), not a stage
        return bool(HEAVY_IMPORT.search(source))
    return bool(libraries)


class Zygote:
    """One pre-imported worker process (a Keras flavour) and the channel to it."""

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour
        self.channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {**os.environ, "TF_USE_LEGACY_KERAS": LEGACY_KERAS[flavour]}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        # Its own output (TensorFlow's start-up lines) is no task's: kept aside, quoted if it dies.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tfkfp.warm", str(theirs.fileno()), flavour],
            pass_fds=[theirs.fileno()],
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches the run only, see module doc
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )
        theirs.close()
        self.reader = self.channel.makefile("r", encoding="utf-8")
        self.state: bool | None = None  # ready (True) or dead (False) once known
        self.retired = False  # it said it cannot fork safely any more

    def alive(self) -> bool:
        return not self.retired and self.process.poll() is None

    def ready(self, wait: bool) -> bool:
        """Whether the imports are done (waiting for them with `wait`); False if it died."""
        if self.state is None:
            if not wait and not select.select([self.channel], [], [], 0)[0]:
                return False
            self.state = bool(self._reply().get("ready"))
        return self.state

    def last_words(self) -> str:
        """The zygote's last line of output (why it stopped), if any."""
        self.log.seek(0)
        lines = self.log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""

    def close(self) -> None:
        self.channel.close()
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def run(self, source: str, args: list[str], env: dict[str, str], stage: str) -> int:
        """Runs one task in a fresh child; streams its output with print; returns its exit code.

        Raises:
            WorkerDied: the child was killed by a signal, or the zygote died under it.
        """
        read_end, write_end = os.pipe()
        request = {"source": source, "args": args, "env": env, "cwd": os.getcwd()}
        try:
            socket.send_fds(self.channel, [json.dumps(request).encode() + b"\n"], [write_end])
        except OSError as err:
            os.close(read_end)
            raise WorkerDied(f"{stage}: the warm worker is gone ({err})") from None
        finally:
            os.close(write_end)
        pid = None
        output = os.fdopen(read_end, "rb")
        try:
            reply = self._reply()
            pid = reply.get("pid")
            if pid is None:
                raise WorkerDied(
                    f"{stage}: the warm worker could not start the task "
                    f"({self.last_words() or 'it exited'})"
                )
            for line in output:
                print(line.decode("utf-8", "replace"), end="")
            print("\n")  # as kfp's runner: the end of the task's output
            reply = self._reply()
            status = reply.get("status")
            self.retired = bool(reply.get("retire"))
        except KeyboardInterrupt:
            self._interrupt(pid, output)
            raise
        finally:
            output.close()
        if status is None:  # the zygote died while its child ran: stop the child too
            if pid:
                _kill(pid)
            raise WorkerDied(f"{stage}: the warm worker process died during the task")
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            raise WorkerDied(
                f"{stage}: the task's process (pid {pid}) was killed by {signal.Signals(sig).name}"
            )
        return os.waitstatus_to_exitcode(status)

    def _reply(self) -> dict[str, Any]:
        line = self.reader.readline()
        return json.loads(line) if line else {}

    def _interrupt(self, pid: int | None, output) -> None:
        """Ctrl-C: interrupts the task once, waits for its clean-up, then kills it if need be.

        Its output is still read meanwhile: a task blocked on a full pipe could not clean up.
        """
        if pid is None:
            return
        fd = output.fileno()

        def drain() -> None:
            with contextlib.suppress(OSError):
                while chunk := os.read(fd, 65536):
                    print(chunk.decode("utf-8", "replace"), end="")

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        self.channel.settimeout(INTERRUPT_GRACE)
        try:
            if self._reply().get("status") is not None:
                reader.join(5)
                return
        except (OSError, ValueError):
            pass
        _kill(pid)
        reader.join(5)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def remove_staging(paths: list[str], pid: int | None = None) -> None:
    """Removes what a killed task left staged next to its outputs (`<output>.staging-<pid>`)."""
    for path in paths:
        pattern = f"{path.rstrip('/')}.staging-{pid if pid else '*'}"
        for leftover in glob.glob(pattern):
            if os.path.isdir(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(leftover)


class Pool:
    """The run's zygotes, one per Keras flavour, started on first use (tf_keras right away)."""

    def __init__(self) -> None:
        self.zygotes: dict[str, Zygote] = {}
        self.lock = threading.Lock()
        self.died: list[str] = []  # one line per task whose process died

    def start(self, flavour: str = "tf_keras") -> Zygote:
        zygote = self.zygotes.get(flavour)
        if zygote is None or not zygote.alive():
            if zygote is not None:
                zygote.close()
            zygote = self.zygotes[flavour] = Zygote(flavour)
        return zygote

    def close(self) -> None:
        for zygote in self.zygotes.values():
            zygote.close()
        self.zygotes.clear()

    def run_local_subprocess(
        self, full_command: list[str], env_vars: dict[str, str] | None = None, fallback=None
    ) -> int:
        """kfp.local's `run_local_subprocess`, with the task run in a warm child when it can be."""
        parts = task_parts(full_command)
        if parts is None:
            return fallback(full_command=full_command, env_vars=env_vars)
        source, args = parts
        stage = _arg(args, "--function_to_execute") or "task"
        env = {**os.environ, **(env_vars or {})}
        # One task at a time per run; tasks kfp.local runs side by side (dsl.ParallelFor) start
        # cold beside it, as kfp.local's own runner would start them.
        if not self.lock.acquire(blocking=False):
            return fallback(full_command=full_command, env_vars=env_vars)
        try:
            zygote = self.start(keras_flavour(args))
            # A light task starts cold while the worker still imports; a heavy one waits for it.
            if not zygote.ready(wait=needs_heavy_imports(stage, source)):
                self.lock.release()
                try:
                    return fallback(full_command=full_command, env_vars=env_vars)
                finally:
                    self.lock.acquire()
            return zygote.run(source, args, env, stage)
        except WorkerDied as err:
            self.died.append(str(err))
            print(f"error: {err}", flush=True)
            remove_staging(output_paths(args))
            return 1
        except KeyboardInterrupt:
            remove_staging(output_paths(args))
            raise
        finally:
            self.lock.release()


# --- the zygote's side -----------------------------------------------------------------------


def _set_parent_death_signal(sig: int) -> None:
    """Linux: deliver `sig` to this process when its parent dies (no orphans left running)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def fork_hazards() -> list[str]:
    """What would make forking this process unsafe: Python threads, a started TF runtime.

    Measured here: the preloads leave only native threads that fork themselves away (numpy's
    and scipy's OpenBLAS workers, pyarrow's jemalloc background thread, all with at-fork
    handlers); TensorFlow creates its thread pools with its eager context, on first use.
    """
    hazards = []
    if threading.active_count() != 1:
        hazards.append(f"{threading.active_count()} Python threads")
    eager = sys.modules.get("tensorflow.python.eager.context")
    if eager is not None and getattr(eager, "_context", None) is not None:
        if getattr(eager._context, "_context_handle", None) is not None:
            hazards.append("TensorFlow's eager context started")
    return hazards


def preload(names: tuple[str, ...]) -> list[str]:
    """Imports `names`; returns those imported."""
    loaded = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        loaded.append(name)
    return loaded


def _settle(loaded: list[str]) -> list[str]:
    """Readies this process's imports for forking; returns what would make a fork unsafe."""
    # The imported objects stay put: children's collections then do not walk (and so copy)
    # the worker's pages, which forked children otherwise share copy-on-write.
    gc.collect()
    gc.freeze()
    hazards = fork_hazards()
    if hazards:
        # Forking copies the threads' locks, not the threads: a child could hang.
        print(f"tfkfp.warm: cannot fork safely after {loaded}: {hazards}", file=sys.stderr)
    return hazards


def _child(request: dict[str, Any], out_fd: int, flavour: str) -> None:
    """Runs one task as `python -m kfp.dsl.executor_main` would, then exits (never returns)."""
    code = 1
    try:
        _set_parent_death_signal(signal.SIGINT)  # the zygote gone: stop, cleaning up
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
        os.environ.clear()
        os.environ.update(request["env"])
        # Decided before TensorFlow was imported in the zygote; the stage checks it again.
        os.environ["TF_USE_LEGACY_KERAS"] = LEGACY_KERAS[flavour]
        os.environ["_KFP_RUNTIME"] = "true"
        os.chdir(request["cwd"])
        if "numpy" in sys.modules:  # a fresh process would seed from the OS, not share a seed
            sys.modules["numpy"].random.seed()
        import runpy
        import tempfile

        program = tempfile.mkdtemp()
        module_path = os.path.join(program, "ephemeral_component.py")
        with open(module_path, "w") as fh:
            fh.write(request["source"])
        sys.argv = ["executor_main", "--component_module_path", module_path, *request["args"]]
        try:
            runpy.run_module(EXECUTOR, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        import atexit

        atexit._run_exitfuncs()  # as the interpreter's exit would (e.g. the stages' fast exit)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(fd: int, flavour: str) -> None:
    """The zygote: preloads, then forks one child per request read from the channel `fd`."""
    _set_parent_death_signal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run forwards Ctrl-C to the task itself
    channel = socket.socket(fileno=fd)
    started = time.perf_counter()
    first, rest = PRELOAD[flavour]
    loaded = preload(first)
    if _settle(loaded):
        raise SystemExit(3)
    print(
        f"tfkfp.warm: {flavour} worker ready in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    channel.sendall(b'{"ready": true}\n')
    buffer, received = b"", []
    while True:
        data, fds, _, _ = socket.recv_fds(channel, 1 << 20, 4)
        if not data:
            return  # the run closed the channel
        buffer += data
        received += fds
        if not buffer.endswith(b"\n"):  # a big request arrives in pieces, its pipe with the first
            continue
        request, buffer = json.loads(buffer), b""
        out_fd, *extra = received
        received = []
        for fd_ in extra:
            os.close(fd_)
        pid = os.fork()
        if pid == 0:
            channel.close()
            _child(request, out_fd, flavour)
        os.close(out_fd)
        channel.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        retire = False
        if rest:  # while the first task runs: the later tasks' imports
            loaded += preload(rest)
            rest = ()
            retire = bool(_settle(loaded))
        _, status = os.waitpid(pid, 0)
        channel.sendall(json.dumps({"status": status, "retire": retire}).encode() + b"\n")
        if retire:
            raise SystemExit(3)  # the run starts a new worker for the next task


@contextlib.contextmanager
def patched_runner() -> Iterator[Pool]:
    """kfp.local's SubprocessRunner with each task forked from a warm worker, for one run."""
    from kfp.local import subprocess_task_handler as handler

    original = handler.run_local_subprocess
    pool = Pool()
    pool.start()  # imports while kfp.local compiles and the first tasks are set up

    def run_local_subprocess(full_command, env_vars=None):
        return pool.run_local_subprocess(full_command, env_vars, fallback=original)

    handler.run_local_subprocess = run_local_subprocess
    try:
        yield pool
    finally:
        handler.run_local_subprocess = original
        pool.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
