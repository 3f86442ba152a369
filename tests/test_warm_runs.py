"""Warm local runs (tfkfp.warm): a task's process killed, its worker killed, Ctrl-C, flavours."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import REPO
from tfkfp import warm

# Two tasks: `first` publishes its output; `slow` stages a half-written one, says where it runs
# (its pid and its parent's, the warm worker), then waits to be killed or interrupted.
PIPELINE = textwrap.dedent(
    """
    from kfp import dsl
    from kfp.dsl import Artifact, Input, Output

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def first(out: Output[Artifact]):
        from tfkfp.containers.store.publish import publishing
        with publishing(out.path) as tmp:
            open(tmp + "/done", "w").write("ok")

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def slow(previous: Input[Artifact], out: Output[Artifact], marker: str):
        import os, sys, time
        import tensorflow  # a heavy task: it waits for the warm worker
        from tfkfp.containers.store.publish import publishing
        with publishing(out.path) as tmp:
            open(tmp + "/part", "w").write("half")
            info = {"pid": os.getpid(), "parent": os.getppid(), "out": out.path,
                    "tf_loaded": "tensorflow" in sys.modules}
            with open(marker + ".tmp", "w") as fh:
                fh.write(__import__("json").dumps(info))
            os.replace(marker + ".tmp", marker)
            time.sleep(300)

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def flavour(keras: str, marker: str, name: str):
        import json, os, sys
        tfma_loaded = "tensorflow_model_analysis" in sys.modules
        import tensorflow as tf
        with open(f"{marker}.{name}", "w") as fh:
            json.dump({"legacy": os.environ["TF_USE_LEGACY_KERAS"], "tfma": tfma_loaded,
                       "keras": tf.keras.__name__, "pid": os.getpid()}, fh)

    @dsl.pipeline(name="warmtest")
    def killable(marker: str):
        done = first()
        slow(previous=done.outputs["out"], marker=marker)

    @dsl.pipeline(name="flavours")
    def flavours(marker: str):
        a = flavour(keras="tf_keras", marker=marker, name="first")
        b = flavour(keras="keras3", marker=marker, name="keras3").after(a)
        flavour(keras="tf_keras", marker=marker, name="later").after(b)
    """
)


def start_run(tmp_path: Path, function: str) -> tuple[subprocess.Popen, Path, Path]:
    (tmp_path / "pipe.py").write_text(PIPELINE)
    marker, root = tmp_path / "marker.json", tmp_path / "root"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfkfp.cli",
            "run",
            f"{tmp_path / 'pipe.py'}:{function}",
            "--local",
            "--pipeline-root",
            str(root),
            "--param",
            f"marker={marker}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    return proc, marker, root


def wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 400) -> dict:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the task never started:\n{out[-2000:]}\n{err[-2000:]}")
        time.sleep(0.2)
    return json.loads(marker.read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def check_nothing_published(root: Path, task: dict) -> None:
    assert not Path(task["out"]).exists(), "the killed task's output was published"
    leftovers = [p for p in root.rglob("*") if ".staging-" in p.name]
    assert not leftovers, leftovers
    # the task before it is untouched
    done = [p for p in root.rglob("done") if p.parent.name == "out"]
    assert len(done) == 1 and done[0].read_text() == "ok"


@pytest.mark.pipeline
def test_killed_task_fails_in_one_line_naming_it_and_publishes_nothing(tmp_path):
    proc, marker, root = start_run(tmp_path, "killable")
    task = wait_for(marker, proc)
    assert task["tf_loaded"], "the task was not forked from the warm worker"
    os.kill(task["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    last = err.strip().splitlines()[-1]
    assert last == (
        f"tfkfp: error: slow: the task's process (pid {task['pid']}) was killed by SIGKILL"
    ), err
    assert "Traceback" not in err
    check_nothing_published(root, task)
    assert not alive(task["parent"]), "the warm worker outlived the run"


@pytest.mark.pipeline
def test_killed_warm_worker_fails_its_task_and_stops_it(tmp_path):
    proc, marker, root = start_run(tmp_path, "killable")
    task = wait_for(marker, proc)
    os.kill(task["parent"], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert err.strip().splitlines()[-1] == (
        "tfkfp: error: slow: the warm worker process died during the task"
    ), err
    deadline = time.monotonic() + 30
    while alive(task["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(task["pid"]), "the task's process outlived its worker"
    check_nothing_published(root, task)


@pytest.mark.pipeline
def test_ctrl_c_stops_the_run_and_leaves_nothing_half_published(tmp_path):
    proc, marker, root = start_run(tmp_path, "killable")
    task = wait_for(marker, proc)
    proc.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends the run
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert err.strip().splitlines()[-1].startswith("tfkfp: interrupted"), err
    assert not alive(task["pid"]) and not alive(task["parent"])
    check_nothing_published(root, task)
    log = next(root.rglob("logs/slow.log")).read_text()
    assert "KeyboardInterrupt" in log  # the task itself was interrupted and cleaned up


@pytest.mark.pipeline
def test_each_task_gets_its_keras_flavour_decided_before_tensorflow(tmp_path):
    proc, marker, _ = start_run(tmp_path, "flavours")
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, out + err
    legacy, keras3, later = (
        json.loads(Path(f"{marker}.{name}").read_text()) for name in ("first", "keras3", "later")
    )
    assert legacy["legacy"] == "1" and legacy["keras"].startswith("tf_keras"), legacy
    assert keras3["legacy"] == "0" and keras3["keras"].startswith("keras"), keras3
    assert not keras3["keras"].startswith("tf_keras")
    # The first heavy task starts once its own imports are done; what later stages need (TFMA)
    # is imported while it runs, so a later task of the same worker finds it loaded.
    assert not legacy["tfma"] and later["tfma"], (legacy, later)
    assert later["legacy"] == "1" and later["pid"] != legacy["pid"]


def test_task_parts_reads_kfp_commands():
    from kfp import dsl
    from kfp.local import subprocess_task_handler

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def hello(name: str, keras: str = "tf_keras"):
        print(name)

    spec = hello.pipeline_spec.deployment_spec["executors"]["exec-hello"]["container"]
    command = [*spec["command"], *spec["args"]]
    command = subprocess_task_handler.replace_python_executable(command, sys.executable)
    source, args = warm.task_parts(command)
    assert "def hello(" in source
    assert args[args.index("--function_to_execute") + 1] == "hello"
    assert warm.task_parts(["python", "-c", "pass"]) is None
    executor_input = {"inputs": {"parameterValues": {"keras": "keras3"}}, "outputs": {}}
    assert warm.keras_flavour(["--executor_input", json.dumps(executor_input)]) == "keras3"
    assert warm.keras_flavour(["--executor_input", "{}"]) == "tf_keras"


def test_heavy_tasks_wait_for_the_warm_worker_light_ones_need_not():
    for stage in ("transform", "trainer", "evaluator", "infer"):
        assert warm.needs_heavy_imports(stage), stage
    for stage in ("ingest", "pusher", "fingerprint", "infra_validate"):
        assert not warm.needs_heavy_imports(stage), stage
    # a user's own component: what its source imports
    assert warm.needs_heavy_imports("mine", "def mine():\n    import tensorflow as tf\n")
    assert not warm.needs_heavy_imports("mine", "def mine():\n    import tensorflow_metadata\n")
    # a user's task named like one of containers/' packages is still the user's own
    for name in ("train", "store", "model", "push", "evaluation", "views"):
        assert not warm.needs_heavy_imports(name, f"def {name}():\n    pass\n"), name


def test_each_stage_declares_the_heavy_libraries_it_imports():
    # LIBRARIES is what warm runs trust; it must name exactly the heavy packages the module imports.
    import ast
    import importlib

    from tfkfp.components import STAGES

    heavy = {"tensorflow", "apache_beam", "tensorflow_transform", "tensorflow_model_analysis"}
    for component in STAGES:
        module = importlib.import_module(
            component.python_func.__module__.replace("components", "containers")
        )
        tree = ast.parse(open(module.__file__, encoding="utf-8").read())
        imported = {
            name.split(".")[0]
            for node in ast.walk(tree)
            for name in (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
        }
        found = imported & heavy
        # TensorFlow comes with tf.Transform, TFMA and Beam's TF model handler.
        declared = set(module.LIBRARIES) | set(getattr(module, "CHILD_LIBRARIES", ()))
        assert declared == found | ({"tensorflow"} if found else set()), module.__name__
