"""trainer: calls the user's TFX-style `run_fn(fn_args)` under a strategy the trainer picks.

`auto` picks MultiWorkerMirroredStrategy when TF_CONFIG lists several workers (as Kubeflow's
Training Operator sets it), MirroredStrategy over every GPU (or over `cpu_replicas` logical CPUs,
for tests) when there is more than one device, else the default strategy. `run_fn` gets it as
`fn_args.strategy` and runs in its scope; a TFX module's own `tf.distribute.MirroredStrategy()`
is that same strategy (see `_strategy_for_run_fn`), so both kinds of module train on every
device without a flag.

In a multi-worker job only the chief publishes `model` and `model_run`. Every other worker runs
the same `run_fn` (collective ops need all of them) with `serving_model_dir` and `model_run_dir`
in a scratch folder that is deleted at the end, and leaves its own output paths untouched, so a
path shared with the chief is never overwritten.

Over ~400 lines until the tuner (issue 16) moves the strategy code into strategy.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from typing import Any

from tfkfp.containers import user_module
from tfkfp.containers.fn_args import FnArgs, make_data_accessor
from tfkfp.containers.layout import TFX_SERVING, schema_file
from tfkfp.containers.runtime import (
    InputError,
    log,
    publishing,
    require_split,
    select_keras,
)

STRATEGIES = ("auto", "mirrored", "multi_worker", "default")
# TF_CONFIG task types that train; "master" is the legacy name of the chief (as in TFX).
_TRAINING_TASKS = ("chief", "master", "worker")


def _cluster() -> tuple[int, bool, str]:
    """Training workers in TF_CONFIG, whether this task is the chief, and its `type:index`."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return 1, True, "local"
    try:
        config = json.loads(raw)
        cluster = config.get("cluster") or {}
        task = config.get("task") or {}
        members = {kind: list(cluster.get(kind, [])) for kind in _TRAINING_TASKS}
        task_type, index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(
            "TF_CONFIG: expected JSON with cluster (lists of host:port) and task.type/task.index, "
            f"got {raw[:80]!r} ({type(err).__name__}: {err})"
        ) from None
    if "ps" in cluster:
        raise InputError(
            "TF_CONFIG: parameter servers (ps) are not supported; use chief/worker replicas"
        )
    if task_type not in _TRAINING_TASKS:
        raise InputError(f"TF_CONFIG: task type {task_type!r} is not one of chief, master, worker")
    if index < 0 or index >= len(members[task_type]):
        raise InputError(f"TF_CONFIG: task {task_type}:{index} is not in the cluster spec")
    workers = sum(len(m) for m in members.values())
    has_chief = bool(members["chief"] or members["master"])
    # Without a chief task, worker 0 is the chief (TensorFlow's multi-worker convention).
    is_chief = task_type in ("chief", "master") or (
        task_type == "worker" and index == 0 and not has_chief
    )
    return workers, is_chief, f"{task_type}:{index}"


def _split_cpu(tf, cpu_replicas: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_replicas)]
        )
    except RuntimeError as err:  # TF refuses once its runtime is initialised
        current = len(tf.config.list_logical_devices("CPU"))
        if current != cpu_replicas:
            raise InputError(
                f"cpu_replicas: cannot split the CPU into {cpu_replicas} devices after TensorFlow "
                f"initialised ({current} now); run the trainer in a fresh process ({err})"
            ) from None


def _make_strategy(choice: str, cpu_replicas: int, workers: int):
    """Creates the tf.distribute strategy (and its public name) before any other TF op."""
    import tensorflow as tf

    if cpu_replicas > 1:
        _split_cpu(tf, cpu_replicas)
    gpus = tf.config.list_physical_devices("GPU")
    if choice == "auto":
        if workers > 1:
            choice = "multi_worker"
        elif gpus or cpu_replicas > 1:
            # Over every GPU; with one it costs nothing and keeps a single code path.
            choice = "mirrored"
        else:
            choice = "default"
    if choice == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        name = "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
    elif choice == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if not devices:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        name = "MirroredStrategy"
    else:
        strategy = tf.distribute.get_strategy()
        name = "default"
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has none to report
        devices = [d.name for d in tf.config.list_logical_devices()[:1]]
    log.info(
        "trainer: strategy %s, %d replica(s) in sync, devices on this worker: %s; GPUs visible: %s",
        name,
        strategy.num_replicas_in_sync,
        ", ".join(devices),
        ", ".join(g.name for g in gpus) or "none",
    )
    return strategy, name


# What a TFX module file calls to get "every GPU of this machine" (or every worker's).
_ADOPTED = (
    ("MirroredStrategy",),
    ("MultiWorkerMirroredStrategy",),
    ("experimental", "MultiWorkerMirroredStrategy"),
)


def _describe(tf, strategy, dist, dist_name: str) -> str:
    if strategy is dist:
        return f"{dist_name} ({strategy.num_replicas_in_sync} replica(s), the trainer's)"
    if not tf.distribute.has_strategy():
        return "default (no tf.distribute strategy)"
    return f"{type(strategy).__name__} ({strategy.num_replicas_in_sync} replica(s), run_fn's own)"


@contextlib.contextmanager
def _strategy_for_run_fn(tf, dist, dist_name: str):
    """The trainer's strategy in scope for the module and run_fn, whichever kind it is.

    A run_fn that builds its model plainly trains under the trainer's strategy (its scope is
    entered). TFX's module files instead create `tf.distribute.MirroredStrategy()` and enter its
    scope; TensorFlow refuses a second strategy inside another's scope ("Mixing different
    tf.distribute.Strategy objects"), so while the module loads and run_fn runs, that call (and
    `MultiWorkerMirroredStrategy()`), made without arguments, returns the trainer's strategy:
    the one TFX's user asked for, all GPUs here, every worker in a multi-worker job. The default
    strategy needs no scope; then nothing is replaced and run_fn's own strategy is used as is.

    Yields:
        The strategies variables were created in, in order (the model's, its optimizer's, ...).
    """
    built: list[str] = []

    def record(next_creator, **kwargs):
        where = _describe(tf, tf.distribute.get_strategy(), dist, dist_name)
        if where not in built:
            built.append(where)
        return next_creator(**kwargs)

    default = dist is tf.distribute.get_strategy()
    with contextlib.ExitStack() as stack:
        stack.enter_context(tf.variable_creator_scope(record))
        if not default:
            for path in _ADOPTED:
                stack.enter_context(_returning(tf.distribute, path, dist, dist_name))
            stack.enter_context(dist.scope())
        try:
            yield built
        except RuntimeError as err:
            if "Mixing different tf.distribute.Strategy" not in str(err):
                raise
            raise InputError(
                f"run_fn: enters a tf.distribute strategy of its own inside the trainer's "
                f"{dist_name}; create it without arguments (tf.distribute.MirroredStrategy()) "
                "to get the trainer's, or run the trainer with strategy=default"
            ) from err


@contextlib.contextmanager
def _returning(namespace, path: tuple[str, ...], dist, dist_name: str):
    """Makes `namespace.<path>()` without arguments return `dist`; other calls are untouched.

    The stand-in is a subclass whose metaclass answers isinstance/issubclass as the original
    class does, so module code that checks `isinstance(s, tf.distribute.MirroredStrategy)`
    keeps working.
    """
    *parents, attr = path
    for parent in parents:
        namespace = getattr(namespace, parent)
    original = getattr(namespace, attr)

    class _Adopting(type(original)):
        def __call__(cls, *args, **kwargs):
            if cls is not stand_in:  # a module's own subclass
                return super().__call__(*args, **kwargs)
            if args or kwargs:
                return original(*args, **kwargs)
            log.info(
                "trainer: run_fn's tf.distribute.%s() is the trainer's %s",
                ".".join(path),
                dist_name,
            )
            return dist

        def __instancecheck__(cls, obj):
            if cls is stand_in:
                return isinstance(obj, original)
            return type.__instancecheck__(cls, obj)

        def __subclasscheck__(cls, sub):
            if cls is stand_in:
                return issubclass(sub, original)
            return type.__subclasscheck__(cls, sub)

    stand_in = _Adopting(original.__name__, (original,), {"__doc__": original.__doc__})
    stand_in.__module__ = original.__module__
    stand_in.__qualname__ = original.__qualname__
    setattr(namespace, attr, stand_in)
    try:
        yield
    finally:
        setattr(namespace, attr, original)


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
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(model_dir, "saved_model.pb")
    if not os.path.isfile(path):
        raise InputError(f"run_fn: wrote no SavedModel to fn_args.serving_model_dir ({model_dir})")
    from google.protobuf.message import DecodeError

    with open(path, "rb") as fh:
        data = fh.read()
    try:
        saved = saved_model_pb2.SavedModel.FromString(data)
    except DecodeError as err:
        raise InputError(
            f"run_fn: {path} is not a SavedModel protobuf ({len(data)} bytes; {err})"
        ) from None
    signatures = saved.meta_graphs[0].signature_def if saved.meta_graphs else {}
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


def _whole_numbers(value: Any) -> Any:
    """`value` with floats that hold whole numbers as int, in nested dicts and lists.

    KFP carries dict parameters as JSON numbers and hands every one over as a float (8 arrives
    as 8.0), where Keras layers, range() and KerasTuner's Int want an int.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def _hyperparameters(value: Any) -> dict[str, Any] | None:
    """`fn_args.hyperparameters`: a dict (a KerasTuner config is one), or None when empty."""
    if value is not None and not isinstance(value, dict) and hasattr(value, "get_config"):
        value = value.get_config()  # a keras_tuner.HyperParameters object
    if value is not None and not isinstance(value, dict):
        raise InputError(
            "hyperparameters: expected a dict, e.g. a KerasTuner HyperParameters.get_config(), "
            f"got {type(value).__name__} {str(value)[:60]!r}"
        )
    return _whole_numbers(dict(value)) if value else None


def _check_keras_tuner_config(config: dict[str, Any]) -> None:
    """Fails unless KerasTuner reads the config back, as run_fn's from_config() will."""
    import keras_tuner

    try:
        keras_tuner.HyperParameters.from_config(config)
    except Exception as err:  # KerasTuner raises many types for a config it cannot read
        raise InputError(
            "hyperparameters: has the keys of a KerasTuner config (space, values) but "
            f"HyperParameters.from_config() rejects it: {type(err).__name__}: {err}"
        ) from None


def _load_run_fn(module_file: str):
    """The module's run_fn; an Estimator-era module (trainer_fn only) is told what to write."""
    module = user_module.load(module_file)
    run_fn = getattr(module, "run_fn", None)
    if callable(run_fn):
        return run_fn
    if callable(getattr(module, "trainer_fn", None)):
        raise InputError(
            f"module_file: {module_file} defines trainer_fn() (TFX's Estimator trainer) but no "
            "run_fn(fn_args); TensorFlow >= 2.16 ships no Estimator: write a Keras run_fn, see "
            "README 'Coming from TFX'"
        )
    raise InputError(f"module_file: {module_file} defines no function run_fn()")


def _steps(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if value < 0:
        raise InputError(f"{name}: expected a non-negative number of steps, got {value}")
    # TFX passes 0 as None ("until the data ends"); Keras rejects steps_per_epoch=0.
    return value or None


def run(
    examples: str,
    schema: str,
    module_file: str,
    model: str,
    model_run: str,
    transform_graph: str | None = None,
    base_model: str | None = None,
    train_steps: int = 1000,
    eval_steps: int = 100,
    hyperparameters: dict[str, Any] | None = None,
    custom_config: dict[str, Any] | None = None,
    keras: str = "tf_keras",
    strategy: str = "auto",
    cpu_replicas: int = 0,
) -> dict[str, Any]:
    """Builds FnArgs, runs `run_fn` under the chosen strategy, checks the export.

    Parameters are the component's (documented in tfkfp.components.trainer); artifacts
    arrive as local paths.

    Returns:
        What the component records as model metadata.
    """
    select_keras(keras)  # before anything (the user module included) imports TensorFlow
    # TF reads this when it first initialises the GPUs; an explicit user setting wins.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if strategy not in STRATEGIES:
        raise InputError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if cpu_replicas < 0:
        raise InputError(
            f"cpu_replicas: expected 0 or more logical CPU devices, got {cpu_replicas}"
        )
    train_steps = _steps("train_steps", train_steps)
    eval_steps = _steps("eval_steps", eval_steps)
    train_files = [require_split(examples, "train", "examples")]
    eval_files = [require_split(examples, "eval", "examples")]
    if transform_graph and not os.path.isdir(os.path.join(transform_graph, "transform_fn")):
        raise InputError(f"transform_graph: no transform_fn/ in {transform_graph}")
    base_model_path = _base_model_path(base_model) if base_model else None
    hyperparameters = _hyperparameters(hyperparameters)
    custom_config = _whole_numbers(dict(custom_config)) if custom_config else None
    workers, is_chief, task = _cluster()

    import tensorflow as tf

    # Before the user module: MultiWorkerMirroredStrategy and logical devices must be set up
    # before any other TensorFlow op, and a module may run ops when it is imported.
    dist, strategy_name = _make_strategy(strategy, cpu_replicas, workers)
    if hyperparameters and {"space", "values"} <= hyperparameters.keys():
        _check_keras_tuner_config(hyperparameters)
    with _strategy_for_run_fn(tf, dist, strategy_name) as built_in:
        run_fn = _load_run_fn(module_file)
        timings = _train(
            run_fn,
            is_chief,
            task,
            model,
            model_run,
            FnArgs(
                train_files=train_files,
                eval_files=eval_files,
                train_steps=train_steps,
                eval_steps=eval_steps,
                schema_path=schema_file(schema),
                transform_graph_path=transform_graph,
                data_accessor=make_data_accessor(workers),
                base_model=base_model_path,
                hyperparameters=hyperparameters,
                custom_config=custom_config,
                strategy=dist,
            ),
        )
    log.info(
        "trainer: run_fn created its variables under %s", "; then ".join(built_in) or "nothing"
    )
    return {
        "strategy": strategy_name,
        "replicas": int(dist.num_replicas_in_sync),
        "built_in": built_in,
        "workers": workers,
        "task": task,
        "is_chief": is_chief,
        "keras": keras,
        "tensorflow": tf.__version__,
        **timings,
    }


def _train(run_fn, is_chief, task, model_dir, model_run_dir, fn_args) -> dict[str, float]:
    """Runs run_fn with scratch and staged output folders; only the chief publishes."""
    scratch = tempfile.mkdtemp(prefix="tfkfp-trainer-")
    timings: dict[str, float] = {}

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
        run_fn(fn_args)
        timings["run_fn_seconds"] = round(time.perf_counter() - started, 3)

    try:
        if is_chief:
            with publishing(model_dir) as model_tmp, publishing(model_run_dir) as run_tmp:
                call_run_fn(model_tmp, run_tmp)
                check_saved_model(model_tmp)
            log.info("trainer: exported SavedModel to %s", model_dir)
        else:
            call_run_fn(os.path.join(scratch, "serving"), os.path.join(scratch, "model_run"))
            log.info("trainer: %s done; %s left to the chief", task, model_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return timings
