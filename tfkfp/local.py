"""Running pipelines with kfp.local, in this environment or in the tfkfp images."""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tfkfp.containers.runtime import log
from tfkfp.progress import Display


def _patch_condition_channels() -> None:
    """Lets kfp.local resolve `dsl.If` on a named output of a multi-output task.

    kfp 2.17's local orchestrator reads the channel `pipelinechannel--evaluator-blessed` as a
    pipeline input, because it only recognises outputs named `Output`; the condition then reads
    as False and the gated task is skipped. A KFP cluster resolves it from the task output, so we
    do the same here: try each `<task>-<output>` split of the name against the task outputs.
    """
    from kfp.local.orchestrator import enhanced_dag_orchestrator as dag

    evaluator = dag.ConditionEvaluator
    if getattr(evaluator, "_tfkfp_patched", False):
        return
    original = evaluator._resolve_pipeline_channel

    def resolve(channel_ref: str, io_store) -> Any:
        ref = channel_ref.removeprefix("pipelinechannel--")
        if "--" not in ref and not ref.endswith("-Output"):
            for i, char in enumerate(ref):
                if char != "-":
                    continue
                try:
                    return io_store.get_task_output(ref[:i], ref[i + 1 :])
                except (ValueError, KeyError):
                    continue
        return original(channel_ref, io_store)

    evaluator._resolve_pipeline_channel = staticmethod(resolve)
    evaluator._tfkfp_patched = True
    evaluator._tfkfp_unpatched = staticmethod(original)  # tests show kfp's bug is still there


def _patch_oneof_artifacts() -> None:
    """Lets kfp.local resolve `dsl.OneOf` over artifacts (e.g. the model of the trainer that ran).

    kfp 2.17 resolves a OneOf over parameters locally but rejects one over artifacts ("Expected
    1 artifact in ArtifactSelectorSpec"). A KFP cluster picks the selector whose producer ran;
    so do we.
    """
    from kfp.local.orchestrator import orchestrator_utils

    utils = orchestrator_utils.OrchestratorUtils
    if getattr(utils, "_tfkfp_patched", False):
        return
    original = utils.__dict__["get_dag_output_artifacts"]

    def get_dag_output_artifacts(cls, dag_outputs_spec, io_store) -> dict[str, Any]:
        outputs = {}
        for key, selector_spec in dag_outputs_spec.artifacts.items():
            found = []
            for selector in selector_spec.artifact_selectors:
                try:
                    found.append(
                        io_store.get_task_output(
                            selector.producer_subtask, selector.output_artifact_key
                        )
                    )
                except (KeyError, ValueError):
                    continue  # that branch did not run
            if len(found) != 1:
                raise ValueError(
                    f"DAG output {key!r}: expected exactly one branch to produce it, "
                    f"{len(found)} did"
                )
            outputs[key] = found[0]
        return outputs

    utils.get_dag_output_artifacts = classmethod(get_dag_output_artifacts)
    utils._tfkfp_patched = True
    utils._tfkfp_unpatched = original  # tests show kfp's bug is still there


def branch_tasks(pipeline_spec) -> dict[str, list[str]]:
    """What each of KFP's group tasks holds: `{"condition-3": ["data-not-valid"], ...}`.

    kfp.local logs a skipped `dsl.If` branch by its compiled group name (`condition-N`,
    `condition-branches-N`); the display names it by the tasks it skipped instead (their
    display names, as the KFP UI shows them).
    """
    components = pipeline_spec.components
    found: dict[str, list[str]] = {}

    def leaves(component_name: str) -> list[str]:
        tasks = components[component_name].dag.tasks
        depth: dict[str, int] = {}

        def depth_of(key: str) -> int:  # run order: after what it depends on
            if key not in depth:
                depth[key] = 0
                upstream = [d for d in tasks[key].dependent_tasks if d in tasks]
                depth[key] = 1 + max(map(depth_of, upstream), default=-1)
            return depth[key]

        names: list[str] = []
        for key in sorted(tasks, key=lambda k: (depth_of(k), k)):
            task = tasks[key]
            child = task.component_ref.name
            if child in components and components[child].HasField("dag"):
                inside = leaves(child)
                found.setdefault(key, inside)
                names += inside
            else:
                names.append(task.task_info.name or key)
        return names

    for key, task in pipeline_spec.root.dag.tasks.items():
        child = task.component_ref.name
        if child in components and components[child].HasField("dag"):
            found.setdefault(key, leaves(child))
    return found


# The example pipelines' failing step when validation finds anomalies (pipelines/steps.py).
VALIDATION_STOP_TASK = "data-not-valid"


class ValidationStopped(RuntimeError):
    """The run failed at the example pipelines' validation stop: the data has anomalies."""


class StageError(RuntimeError):
    """A task failed with its stage's one-line `error:` (bad input, exit 2): that line, named."""


def _stage_error(display: Display) -> str | None:
    """The one-line error of the last failed task that printed one, as `<task>: <line>`.

    kfp.local reports a task inside a condition as "Inner task failed: 'pusher' inside
    'condition-…'"; the stage's own line says what to fix.
    """
    for name in reversed(display.failed):
        task = display.tasks.get(name)
        for line in reversed(task.tail if task else ()):
            if line.startswith("error: "):
                return f"{name}: {line.removeprefix('error: ')}"
    return None


def run(
    pipeline,
    arguments: dict[str, Any],
    docker: bool = False,
    pipeline_root: str = "build/local_outputs",
    enable_caching: bool = False,
    verbose: bool = False,
    display: Display | None = None,
    warm: bool = True,
) -> None:
    """Runs `pipeline` with kfp.local: SubprocessRunner here, or DockerRunner in the images.

    With `warm` (SubprocessRunner only), each task runs in a fresh process forked from a worker
    that imported TensorFlow, Beam and TFMA once (tfkfp/warm.py), instead of a new interpreter
    that imports them again; `warm=False` is kfp.local's own runner.

    With `enable_caching`, kfp.local reuses the outputs of an identical earlier task (its cache
    lives under the pipeline root); tasks compiled with caching off always run. Each task's
    output goes to `<run folder>/logs/<task>.log`; the screen gets one line per stage start and
    end (live progress on a terminal), or everything as kfp prints it with `verbose`.
    """
    from kfp import local

    _patch_condition_channels()
    _patch_oneof_artifacts()
    runner = local.DockerRunner() if docker else local.SubprocessRunner(use_venv=False)
    root = os.path.abspath(pipeline_root)
    display = display or Display(verbose=verbose)
    display.groups = branch_tasks(pipeline.pipeline_spec)
    if verbose:
        log.info(
            "kfp.local: %s with %s, pipeline root %s", pipeline.name, type(runner).__name__, root
        )
    else:
        display.say(f"{pipeline.name}: kfp.local with {type(runner).__name__}")
    local.init(
        runner=runner, pipeline_root=root, raise_on_error=True, enable_caching=enable_caching
    )
    pool = None
    try:
        with _shown(display), _warm_tasks(warm and not docker) as pool:
            try:
                pipeline(**arguments)
            except RuntimeError as err:
                if pool and pool.died:  # say why in one line, naming the stage
                    raise RuntimeError(pool.died[-1]) from err
                raise
    except RuntimeError as err:
        task = display.tasks.get(VALIDATION_STOP_TASK)
        if VALIDATION_STOP_TASK not in display.failed or task is None:
            line = _stage_error(display)
            if line is not None and not (pool and pool.died):
                raise StageError(line) from err
            raise
        validated = display.tasks.get("validate")
        found = (validated.result or {}).get("anomalies_line") if validated else None
        raise ValidationStopped(
            f"validation stopped the run: {found or 'the data has anomalies'}"
        ) from err
    finally:
        display.close()


@contextlib.contextmanager
def _warm_tasks(enabled: bool) -> Iterator[Any]:
    """The run's warm workers (tfkfp.warm), or nothing when tasks start cold."""
    if not enabled:
        yield None
        return
    from tfkfp import warm

    with warm.patched_runner() as pool:
        yield pool


@contextlib.contextmanager
def _shown(display: Display) -> Iterator[None]:
    """Routes kfp.local's task output through `display` for the duration of a run.

    kfp 2.17 streams each task with `print` inside `logging_utils.indented_print()` (both
    runners) and logs its own lines inside `local_logger_context()`; both are looked up on the
    module at call time, so replacing them here catches everything a task prints.
    """
    from kfp.local import executor_input_utils, logging_utils, status, task_dispatcher

    saved = {
        (module, name): getattr(module, name)
        for module, name in (
            (task_dispatcher, "run_single_task_implementation"),
            (logging_utils, "indented_print"),
            (logging_utils, "local_logger_context"),
            (logging_utils, "print_horizontal_line"),
        )
    }
    run_task = task_dispatcher.run_single_task_implementation
    indented_print = logging_utils.indented_print

    def run_single_task(**kwargs):
        name = executor_input_utils.get_local_task_resource_name(kwargs["component_name"])
        display.start(name, Path(kwargs["pipeline_root"]) / kwargs["pipeline_resource_name"])
        ok = False
        try:
            outputs, task_status = run_task(**kwargs)
            ok = task_status == status.Status.SUCCESS
            return outputs, task_status
        finally:
            display.end(name, ok)

    @contextlib.contextmanager
    def captured_print(num_spaces: int = 4) -> Iterator[None]:
        original = builtins.print

        def to_display(*args, sep=" ", end="\n", file=None, flush=False):
            if file not in (None, sys.stdout):
                return original(*args, sep=sep, end=end, file=file, flush=flush)
            display.output(sep.join(map(str, args)) + end)

        if display.verbose:  # kfp's own indented streaming, and a copy in the log file
            with indented_print(num_spaces):
                streamed = builtins.print

                def both(*args, **kwargs):
                    to_display(*args, **kwargs)
                    streamed(*args, **kwargs)

                builtins.print = both
                try:
                    yield
                finally:
                    builtins.print = streamed
            return
        builtins.print = to_display
        try:
            yield
        finally:
            builtins.print = original

    @contextlib.contextmanager
    def quiet_logger() -> Iterator[None]:
        root = logging.getLogger()
        level, handlers = root.level, root.handlers[:]
        handler = _DisplayHandler(display)
        handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        try:
            yield
        finally:
            root.setLevel(level)
            root.handlers[:] = handlers

    task_dispatcher.run_single_task_implementation = run_single_task
    logging_utils.indented_print = captured_print
    root = logging.getLogger()
    root_handlers = root.handlers[:]
    if not display.verbose:
        logging_utils.local_logger_context = quiet_logger
        logging_utils.print_horizontal_line = lambda: None
        # What kfp logs outside that context too ("Cleaned up workspace: ...").
        root.handlers[:] = [_DisplayHandler(display)]
    try:
        with warnings.catch_warnings():
            if not display.verbose:
                # kfp warns, per task, that the image is no Python image: SubprocessRunner runs
                # the task in this environment, not in the image, so it does not apply.
                warnings.filterwarnings(
                    "ignore", message="You may be attemping", category=RuntimeWarning
                )
                shown = warnings.showwarning

                def to_log(message, category, filename, lineno, file=None, line=None):
                    # kfp warns, per task, that a display name or resources have no effect
                    # locally (README: ignored locally): the run's log, not the screen.
                    if "current local runner" in str(message):
                        display.kfp_line(f"{category.__name__}: {message}")
                        return
                    shown(message, category, filename, lineno, file, line)

                warnings.showwarning = to_log
            yield
    finally:
        for (module, name), value in saved.items():
            setattr(module, name, value)
        root.handlers[:] = root_handlers


class _DisplayHandler(logging.Handler):
    """kfp.local's own log lines, to the run's log files (and skips/cache hits on screen)."""

    def __init__(self, display: Display) -> None:
        super().__init__(logging.INFO)
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.display.kfp_line(self.format(record))
        except Exception:  # a display problem must not fail the run
            self.handleError(record)
