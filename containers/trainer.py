"""trainer: calls the user's TFX-style `run_fn(fn_args)` under a strategy the trainer picks.

The strategy rules (auto, mirrored, multi_worker, default; a TFX module's own
`tf.distribute.MirroredStrategy()` is the trainer's) live in `strategy`, shared with the tuner.

In a multi-worker job only the chief publishes `model` and `model_run`. Every other worker runs
the same `run_fn` (collective ops need all of them) with `serving_model_dir` and `model_run_dir`
in a scratch folder that is deleted at the end, and leaves its own output paths untouched, so a
path shared with the chief is never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

from tfkfp.containers import events
from tfkfp.containers.model import user_module
from tfkfp.containers.runtime import KERAS_FLAVOURS, InputError, log, select_keras, without_nulls
from tfkfp.containers.store.layout import TFX_SERVING
from tfkfp.containers.store.publish import outputs
from tfkfp.containers.train import hyperparameters as hp_layout
from tfkfp.containers.train import launch
from tfkfp.containers.train import strategy as strategies
from tfkfp.containers.train.fn_args import common_fn_args
from tfkfp.containers.train.launch import LaunchResult

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ("tensorflow",)
# The values each enumerated parameter takes: compiled pipelines list them (KFP's `literals`).
CHOICES: dict[str, tuple[str, ...]] = {
    "keras": KERAS_FLAVOURS,
    "strategy": strategies.STRATEGIES,
    "backend": launch.BACKENDS,
}


def _base_model_path(base_model_dir: str) -> str:
    """The SavedModel folder in a model artifact: ours, or TFX's `Format-Serving` layout."""
    tfx_layout = os.path.join(base_model_dir, TFX_SERVING)
    path = tfx_layout if os.path.isdir(tfx_layout) else base_model_dir
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise InputError(f"base_model: no SavedModel (saved_model.pb) in {base_model_dir}")
    return path


def check_saved_model(model_dir: str) -> None:
    """Fails unless `model_dir` holds a SavedModel whose serving_default takes serialized examples."""
    from tensorflow.core.framework import types_pb2

    from tfkfp.containers.evaluation.checks import model_signatures

    if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        raise InputError(f"run_fn: wrote no SavedModel to fn_args.serving_model_dir ({model_dir})")
    signatures = model_signatures(model_dir, "run_fn")
    if "serving_default" not in signatures:
        raise InputError(
            f"run_fn: the SavedModel has no serving_default signature (has {sorted(signatures)})"
        )
    inputs = signatures["serving_default"].inputs
    described = ", ".join(
        f"{name}: {types_pb2.DataType.Name(info.dtype)}" for name, info in sorted(inputs.items())
    )
    tensor = next(iter(inputs.values())) if len(inputs) == 1 else None
    rank_ok = tensor is not None and (
        tensor.tensor_shape.unknown_rank or len(tensor.tensor_shape.dim) == 1
    )
    if tensor is None or tensor.dtype != types_pb2.DT_STRING or not rank_ok:
        raise InputError(
            "run_fn: serving_default must take one 1-D string tensor of serialized tf.Example, "
            f"takes ({described})"
        )


def _load_run_fn(module_file: str):
    """The module's run_fn and the sha256 of the module file's bytes; an Estimator-era module
    (trainer_fn only) is told what to write."""
    module = user_module.load(module_file)
    run_fn = getattr(module, "run_fn", None)
    if callable(run_fn):
        return run_fn, user_module.file_sha256(module)
    if callable(getattr(module, "trainer_fn", None)):
        raise InputError(
            f"module_file: {module_file} defines trainer_fn() (TFX's Estimator trainer) but no "
            "run_fn(fn_args); TensorFlow >= 2.16 ships no Estimator: write a Keras run_fn, see "
            "docs/coming-from-tfx.md"
        )
    raise InputError(f"module_file: {module_file} defines no function run_fn()")


@dataclass(frozen=True)
class TrainerResult:
    """How the model was trained: what the component records as model metadata.

    module_file, module_file_sha256 (`sha256:<hex>` of the module file's bytes) and
    hyperparameters (what run_fn got; a KerasTuner config's values) reach the model card.
    """

    strategy: str
    replicas: int
    built_in: list[str]
    workers: int
    task: str
    is_chief: bool
    keras: str
    tensorflow: str
    run_fn_seconds: float
    module_file: str
    module_file_sha256: str
    hyperparameters: dict[str, Any]
    # Each training curve's last value (`train/loss`, `validation/<metric>`), the chief's.
    final_metrics: dict[str, float]

    def to_json(self) -> str:
        """The chief's result as a launched job's chief writes it for the launcher."""
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> TrainerResult:
        """What `to_json` wrote."""
        return cls(**json.loads(text))


def kfp_metrics(info: TrainerResult | LaunchResult[TrainerResult]) -> dict[str, float]:
    """Every number the trainer reports, for its KFP Metrics artifact (the chief's when a
    multi-node job trained): the curves' last values, run_fn seconds, replicas, workers."""
    result = info if isinstance(info, TrainerResult) else info.result
    found = dict(result.final_metrics or {})
    found["run_fn_seconds"] = float(result.run_fn_seconds)
    found["replicas"] = float(result.replicas)
    found["workers"] = float(info.workers)
    return found


def run(
    examples: str,
    schema: str,
    module_file: str,
    model: str,
    model_run: str,
    curves: str,
    transform_graph: str | None = None,
    base_model: str | None = None,
    best_hyperparameters: str | None = None,
    train_steps: int = 1000,
    eval_steps: int = 100,
    hyperparameters: dict[str, Any] | None = None,
    custom_config: dict[str, Any] | None = None,
    keras: str = "tf_keras",
    strategy: str = "auto",
    cpu_replicas: int = 0,
    workers: int = 1,
    backend: str = "jobset",
    gpus_per_node: int = 0,
    task_config: dict[str, Any] | None = None,
) -> TrainerResult | LaunchResult[TrainerResult]:
    """Builds FnArgs, runs `run_fn` under the chosen strategy, checks the export.

    Parameters are the component's (documented in tfkfp.components.trainer); artifacts
    arrive as local paths (`best_hyperparameters` may also be any location of one). With
    `workers != 1` they are object-store URIs and this process only launches the job that
    trains (tfkfp.containers.train.launch).

    Returns:
        What the component records as model metadata.
    """
    launch.check(workers, backend, gpus_per_node, task_config)  # refused even when this task trains
    if workers != 1:
        # Named one by one: what the pods' run() gets is JSON, and nothing else may slip in.
        args = {
            "examples": examples,
            "schema": schema,
            "module_file": module_file,
            "model": model,
            "model_run": model_run,
            "curves": curves,
            "transform_graph": transform_graph,
            "base_model": base_model,
            "best_hyperparameters": best_hyperparameters,
            "train_steps": train_steps,
            "eval_steps": eval_steps,
            "hyperparameters": hyperparameters,
            "custom_config": custom_config,
            "keras": keras,
            "strategy": strategy,
            "cpu_replicas": cpu_replicas,
        }
        return launch.launch(
            "trainer",
            workers,
            backend,
            args,
            TrainerResult,
            gpus_per_node,
            task_config=task_config,
        )
    select_keras(keras)  # before anything (the user module included) imports TensorFlow
    # TF reads this when it first initialises the GPUs; an explicit user setting wins.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    strategies.check(strategy, cpu_replicas)
    workers, is_chief, task = strategies.cluster()
    fn_args = common_fn_args(
        examples,
        schema,
        transform_graph,
        train_steps,
        eval_steps,
        custom_config,
        num_workers=workers,
    )
    base_model_path = _base_model_path(base_model) if base_model else None
    hp_name = "hyperparameters"
    if best_hyperparameters:
        hp_name = "best_hyperparameters"
        hyperparameters = hp_layout.read(best_hyperparameters)
        log.info("trainer: hyperparameters from %s (they win over the dict)", best_hyperparameters)
    # The inputs are checked; TensorFlow and the module file load next (seconds).
    log.info("trainer: %d train steps, %d eval steps; loading TensorFlow", train_steps, eval_steps)

    import tensorflow as tf

    # Before the user module: MultiWorkerMirroredStrategy and logical devices must be set up
    # before any other TensorFlow op, and a module may run ops when it is imported.
    dist, strategy_name = strategies.make(strategy, cpu_replicas, workers)
    # After the strategy: checking a KerasTuner config imports keras_tuner (and TensorFlow's Keras).
    fn_args.hyperparameters = hp_layout.checked(hyperparameters, hp_name)
    fn_args.base_model = base_model_path
    fn_args.strategy = dist
    with (
        user_module.keras_names(),
        strategies.refusing_parameter_servers(tf),
        strategies.adopted(tf, dist, strategy_name) as built_in,
    ):
        run_fn, module_sha256 = _load_run_fn(module_file)
        collective = workers > 1 and strategy_name == "MultiWorkerMirroredStrategy"
        timings = _train(
            run_fn, is_chief, task, model, model_run, curves, fn_args, keras, collective=collective
        )
    log.info(
        "trainer: run_fn created its variables under %s", "; then ".join(built_in) or "nothing"
    )
    final_metrics: dict[str, float] = {}
    if is_chief:
        from tfkfp.containers.views import charts

        final_metrics = charts.final_values(model_run)
    return TrainerResult(
        strategy=strategy_name,
        replicas=int(dist.num_replicas_in_sync),
        built_in=built_in,
        workers=workers,
        task=task,
        is_chief=is_chief,
        keras=keras,
        tensorflow=tf.__version__,
        run_fn_seconds=timings["run_fn_seconds"],
        module_file=module_file,
        module_file_sha256=module_sha256,
        hyperparameters=_recorded(fn_args.hyperparameters),
        final_metrics=final_metrics,
    )


def _recorded(hyperparameters: dict[str, Any] | None) -> dict[str, Any]:
    """The hyperparameters as the model card records them: a KerasTuner config's values,
    without nulls (KFP's backend cannot record a null in artifact metadata)."""
    hp = dict(hyperparameters or {})
    if {"space", "values"} <= hp.keys() and isinstance(hp["values"], dict):
        hp = hp["values"]
    return without_nulls(hp)


# What the model carries forward from its examples' metadata (ingest's, through transform's).
UPSTREAM = ("data_fingerprint", "rows")


def upstream(examples_metadata: dict[str, Any]) -> dict[str, Any]:
    """The data facts the model artifact carries on to the pusher's model card: the data
    fingerprint and the rows per split, from the training examples' KFP metadata."""
    return {k: examples_metadata[k] for k in UPSTREAM if examples_metadata.get(k) is not None}


@contextlib.contextmanager
def _progress_lines(fitted: list | None = None):
    """Every `tf.keras.Model.fit` in run_fn reports `trainer: step s/n` and `trainer: epoch e/E: ...`.

    A callback is added to each fit call rather than asked of run_fn: module files written for
    TFX run unchanged, and their own `verbose` setting is left alone. `tfkfp run --local` shows
    the reports (containers/events.py) as its progress display; on a cluster they are the task's log.
    """
    import tensorflow as tf

    keras = tf.keras
    original = keras.Model.fit

    class ProgressLines(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            # Keras would otherwise turn each batch's logs into numbers, a device sync per step.
            self._supports_tf_logs = True
            self.epochs, self.steps, self.epoch, self.last = 1, None, 1, time.monotonic()

        def on_train_begin(self, logs=None):
            self.epochs = self.params.get("epochs") or 1
            self.steps = self.params.get("steps")

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch, logs=None):
            if time.monotonic() - self.last >= events.PROGRESS_EVERY:
                self.last = time.monotonic()
                total = f"/{self.steps}" if self.steps else ""
                events.progress(
                    "trainer",
                    "step %d%s, epoch %d/%d",
                    batch + 1,
                    total,
                    self.epoch,
                    self.epochs,
                    completed=batch + 1 if self.steps else None,
                    total=self.steps,
                    detail=f"step {batch + 1}{total}",
                )

        def on_epoch_end(self, epoch, logs=None):
            values = {k: float(v) for k, v in (logs or {}).items()}
            figures = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
            events.progress(
                "trainer",
                "epoch %d/%d: %s",
                epoch + 1,
                self.epochs,
                figures,
                completed=epoch + 1,
                total=self.epochs,
                detail=f"epoch {epoch + 1}/{self.epochs}  {events.figures(values)}".rstrip(),
                summary=events.figures(values),
            )

    def fit(self, *args, callbacks=None, **kwargs):
        if fitted is not None:  # the model a chief-only save leaves the other workers to save
            fitted[:] = [self]
        if len(args) >= 6:  # callbacks given by position (x, y, batch_size, epochs, verbose, ...)
            return original(self, *args, **kwargs)
        return original(self, *args, callbacks=[*(callbacks or []), ProgressLines()], **kwargs)

    keras.Model.fit = fit
    try:
        yield
    finally:
        keras.Model.fit = original


ESTIMATOR_HINT = (
    "TensorFlow >= 2.16 ships no Estimator: build, fit and save the Keras model in run_fn "
    "itself, see docs/coming-from-tfx.md#estimator-era-modules"
)


@contextlib.contextmanager
def _seed_patterns(keras: str, collective_chief: bool = False):
    """Errors of code written for TFX 1.x / Keras 2 as one line naming the change to make.

    - A run_fn that calls the module's `trainer_fn` (the Generic Trainer RFC's conversion
      recipe) reaches `tf.keras.estimator.model_to_estimator` or `tf.estimator`, gone since
      TensorFlow 2.16.
    - `model.save(dir, save_format='tf')` (every TFX example module) is Keras 2 only.
    """
    try:
        with _collective_failures(collective_chief):
            yield
    except NotImplementedError as err:
        if "model_to_estimator" not in str(err):
            raise
        raise InputError(
            f"run_fn: calls model_to_estimator (a trainer_fn); {ESTIMATOR_HINT}"
        ) from err
    except AttributeError as err:
        if "has no attribute 'estimator'" not in str(err):
            raise
        raise InputError(f"run_fn: uses tf.estimator (a trainer_fn); {ESTIMATOR_HINT}") from err
    except ValueError as err:
        text = str(err)
        if isinstance(err, InputError) or not (
            "`save_format` argument is deprecated in Keras 3" in text
            or "Invalid filepath extension for saving" in text
        ):
            raise
        raise InputError(
            f"run_fn: model.save(dir{', save_format=...' if 'save_format' in text else ''}) "
            f"writes no SavedModel under keras={keras} (Keras 3): save with "
            "tf.saved_model.save(model, fn_args.serving_model_dir, signatures=...) (works in "
            "both Keras flavours) or model.export(fn_args.serving_model_dir), or run the "
            "trainer with keras=tf_keras"
        ) from err


CHIEF_ONLY_SAVE = (
    "under MultiWorkerMirroredStrategy saving is collective: save on every worker, not only "
    "`if _is_chief()` (fn_args.serving_model_dir is a scratch folder on the others)"
)


@contextlib.contextmanager
def _collective_failures(collective_chief: bool):
    """On the chief of a multi-worker job, a collective op aborted because another worker left
    it (most often: that worker skipped a collective save, `if _is_chief(): model.save(...)`)
    is one line naming the fix."""
    try:
        yield
    except Exception as err:
        if not collective_chief or "Collective" not in str(err):
            raise
        if type(err).__name__ not in ("UnavailableError", "CancelledError", "AbortedError"):
            raise
        raise InputError(
            f"run_fn: a collective op failed on the chief because another worker left it "
            f"({type(err).__name__}); if only the chief saves, {CHIEF_ONLY_SAVE}"
        ) from err


def _save_for_the_chief(fitted: list, serving_dir: str, task: str) -> None:
    """A non-chief whose run_fn saved nothing (the RFC's `if _is_chief(): model.save(...)`)
    saves the model it fit to its scratch folder, so the chief's collective save completes."""
    import tensorflow as tf

    if not fitted:
        raise InputError(
            f"run_fn: saved no model on {task} and fit no Keras model the trainer could save "
            f"for it; {CHIEF_ONLY_SAVE}"
        )
    log.info(
        "trainer: run_fn saved no model on %s (a chief-only save): saving the model it fit to "
        "a scratch folder on its behalf, which the chief's save needs",
        task,
    )
    tf.saved_model.save(fitted[0], serving_dir)


def _all_done(dist, ok: bool, task: str) -> None:
    """Every worker says whether it finished (one all-reduce); a worker fails unless all did.

    The chief joins after its export is checked, so a worker never reports success for a run
    whose chief failed; a chief that died instead fails this collective on the others.
    """
    import tensorflow as tf

    try:
        done = dist.reduce(
            tf.distribute.ReduceOp.SUM,
            dist.run(lambda: tf.constant(1 if ok else 0, tf.int32)),
            axis=None,
        )
        done = int(done)
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.InternalError) as err:
        if not ok:
            return  # this worker fails anyway, with its own error
        raise RuntimeError(
            f"trainer: {task}: another worker (the chief?) stopped before the end: see its log "
            f"({_first_line(err)})"
        ) from None
    if ok and done < dist.num_replicas_in_sync:
        raise RuntimeError(
            f"trainer: {task}: the chief failed to export the model (see its log); this "
            "worker's training is discarded"
        )


def _first_line(err: Exception) -> str:
    """The first line of a TensorFlow error, without its op details."""
    return str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__


def _train(
    run_fn,
    is_chief,
    task,
    model_dir,
    model_run_dir,
    curves,
    fn_args,
    keras: str = "tf_keras",
    collective: bool = False,
) -> dict[str, float]:
    """Runs run_fn with scratch and staged output folders; only the chief publishes.

    With `collective` (MultiWorkerMirroredStrategy over several workers) a non-chief whose
    run_fn saved nothing saves for it, and every worker waits for the others at the end.
    """
    scratch = tempfile.mkdtemp(prefix="tfkfp-trainer-")
    timings: dict[str, float] = {}
    fitted: list = []

    def call_run_fn(serving_dir: str, run_dir: str) -> None:
        fn_args.working_dir = scratch
        fn_args.serving_model_dir = serving_dir
        fn_args.eval_model_dir = os.path.join(scratch, "eval_model")
        fn_args.model_run_dir = run_dir
        log.info(
            "trainer: run_fn(train_steps=%s, eval_steps=%s) as %s%s",
            fn_args.train_steps,
            fn_args.eval_steps,
            task,
            "" if is_chief else " (not the chief: its export goes to a scratch folder)",
        )
        started = time.perf_counter()
        with _progress_lines(fitted), _seed_patterns(keras, collective and is_chief):
            run_fn(fn_args)
        timings["run_fn_seconds"] = round(time.perf_counter() - started, 3)

    try:
        if is_chief:
            from tfkfp.containers.views import charts

            with outputs() as out:  # the model, its run logs and curves: all or none
                model_tmp = out.folder(model_dir, "model")
                run_tmp = out.folder(model_run_dir, "model_run")
                call_run_fn(model_tmp, run_tmp)
                try:
                    check_saved_model(model_tmp)
                except InputError:
                    if collective:
                        _all_done(fn_args.strategy, False, task)
                    raise
                if collective:
                    _all_done(fn_args.strategy, True, task)
                out.file(curves, charts.training_curves(run_tmp), "curves")
            log.info("trainer: exported SavedModel to %s", model_dir)
        else:
            serving = os.path.join(scratch, "serving")
            call_run_fn(serving, os.path.join(scratch, "model_run"))
            if collective and not os.path.isfile(os.path.join(serving, "saved_model.pb")):
                _save_for_the_chief(fitted, serving, task)
            if collective:
                _all_done(fn_args.strategy, True, task)
            log.info("trainer: %s done; %s left to the chief", task, model_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return timings
