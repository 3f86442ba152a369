"""The tf.distribute strategy a stage runs the user's function under (trainer and tuner).

`auto` picks MultiWorkerMirroredStrategy when TF_CONFIG lists several workers (as Kubeflow's
Training Operator sets it), MirroredStrategy over every GPU (or over `cpu_replicas` logical CPUs,
for tests) when there is more than one device, else the default strategy. The user's function
(`run_fn`, `tuner_fn`) gets it as `fn_args.strategy` and runs in its scope; a TFX module's own
`tf.distribute.MirroredStrategy()` is that same strategy (see `adopted`), so both kinds of
module use every device without a flag.
"""

from __future__ import annotations

import contextlib
import json
import os

from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.train import cluster_config

STRATEGIES = ("auto", "mirrored", "multi_worker", "default")
# TF_CONFIG task types that train; "master" is the legacy name of the chief (as in TFX).
_TRAINING_TASKS = ("chief", "master", "worker")


def check(strategy: str, cpu_replicas: int, choices: tuple[str, ...] = STRATEGIES) -> None:
    """Fails on an unknown strategy name or a negative cpu_replicas, before any work."""
    if strategy not in choices:
        raise InputError(f"strategy: expected one of {', '.join(choices)}, got {strategy!r}")
    if cpu_replicas < 0:
        raise InputError(
            f"cpu_replicas: expected 0 or more logical CPU devices, got {cpu_replicas}"
        )


def cluster() -> tuple[int, bool, str]:
    """Training workers in TF_CONFIG, whether this task is the chief, and its `type:index`.

    In a JobSet or TrainJob pod without TF_CONFIG, it is derived first (cluster_config).
    """
    if cluster_config.ensure_tf_config():
        log.info("TF_CONFIG derived from the JobSet environment: %s", os.environ["TF_CONFIG"])
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return 1, True, "local"
    try:
        config = json.loads(raw)
        spec = config.get("cluster") or {}
        task = config.get("task") or {}
        members = {kind: list(spec.get(kind, [])) for kind in _TRAINING_TASKS}
        task_type, index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(
            "TF_CONFIG: expected JSON with cluster (lists of host:port) and task.type/task.index, "
            f"got {raw[:80]!r} ({type(err).__name__}: {err})"
        ) from None
    if "ps" in spec:
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


def _split_cpu(tf, cpu_replicas: int, stage: str) -> None:
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
                f"initialised ({current} now); run the {stage} in a fresh process ({err})"
            ) from None


def make(choice: str, cpu_replicas: int, workers: int, stage: str = "trainer"):
    """Creates the tf.distribute strategy (and its public name) before any other TF op."""
    import tensorflow as tf

    if cpu_replicas > 1:
        _split_cpu(tf, cpu_replicas, stage)
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
        "%s: strategy %s, %d replica(s) in sync, devices on this worker: %s; GPUs visible: %s",
        stage,
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


def _describe(tf, strategy, dist, dist_name: str, stage: str, fn: str) -> str:
    if strategy is dist:
        return f"{dist_name} ({strategy.num_replicas_in_sync} replica(s), the {stage}'s)"
    if not tf.distribute.has_strategy():
        return "default (no tf.distribute strategy)"
    return f"{type(strategy).__name__} ({strategy.num_replicas_in_sync} replica(s), {fn}'s own)"


@contextlib.contextmanager
def adopted(
    tf, dist, dist_name: str, stage: str = "trainer", fn: str = "run_fn", scope: bool = True
):
    """The stage's strategy in scope for the module and its function, whichever kind it is.

    A function that builds its model plainly runs under the stage's strategy (its scope is
    entered). TFX's module files instead create `tf.distribute.MirroredStrategy()` and enter its
    scope; TensorFlow refuses a second strategy inside another's scope ("Mixing different
    tf.distribute.Strategy objects"), so while the module loads and the function runs, that call
    (and `MultiWorkerMirroredStrategy()`), made without arguments, returns the stage's strategy:
    the one TFX's user asked for, all GPUs here, every worker in a multi-worker job. The default
    strategy needs no scope; then nothing is replaced and the module's own strategy is used as is.

    Args:
        tf: The tensorflow module.
        dist: The stage's strategy (from `make`).
        dist_name: Its public name.
        stage: The stage's name in log lines and errors (trainer, tuner).
        fn: The user function's name in log lines and errors (run_fn, tuner_fn).
        scope: Enter the strategy's scope (and record variable creation). Without it only the
            module's strategy calls are answered, for code that enters the scope itself
            (KerasTuner builds each trial's model in its `distribution_strategy`, and its
            `clear_session()` between trials empties TensorFlow's scope stack).

    Yields:
        The strategies variables were created in, in order (the model's, its optimizer's, ...).
    """
    built: list[str] = []

    def record(next_creator, **kwargs):
        where = _describe(tf, tf.distribute.get_strategy(), dist, dist_name, stage, fn)
        if where not in built:
            built.append(where)
        return next_creator(**kwargs)

    default = dist is tf.distribute.get_strategy()
    with contextlib.ExitStack() as stack:
        if scope:
            stack.enter_context(tf.variable_creator_scope(record))
        if not default:
            for path in _ADOPTED:
                stack.enter_context(_returning(tf.distribute, path, dist, dist_name, stage, fn))
            if scope:
                stack.enter_context(dist.scope())
        try:
            yield built
        except RuntimeError as err:
            if "Mixing different tf.distribute.Strategy" not in str(err):
                raise
            raise InputError(
                f"{fn}: enters a tf.distribute strategy of its own inside the {stage}'s "
                f"{dist_name}; create it without arguments (tf.distribute.MirroredStrategy()) "
                f"to get the {stage}'s, or run the {stage} with strategy=default"
            ) from err


@contextlib.contextmanager
def _returning(namespace, path: tuple[str, ...], dist, dist_name: str, stage: str, fn: str):
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
                "%s: %s's tf.distribute.%s() is the %s's %s",
                stage,
                fn,
                ".".join(path),
                stage,
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


# Where TensorFlow 2.21 exposes ParameterServerStrategy (tf.distribute and its experimental alias).
_PARAMETER_SERVER = (("ParameterServerStrategy",), ("experimental", "ParameterServerStrategy"))


@contextlib.contextmanager
def refusing_parameter_servers(tf, stage: str = "trainer", fn: str = "run_fn"):
    """`tf.distribute.ParameterServerStrategy(...)` fails in one line while the function runs.

    Parameter servers need `ps` tasks and a coordinator, which tfkfp's jobs (chief/worker
    replicas) never start; TensorFlow would fail later with a cluster-spec traceback.
    """
    with contextlib.ExitStack() as stack:
        for path in _PARAMETER_SERVER:
            *parents, attr = path
            namespace = tf.distribute
            for parent in parents:
                namespace = getattr(namespace, parent, None)
            original = getattr(namespace, attr, None) if namespace is not None else None
            if original is None:
                continue

            dotted = ".".join(path)

            class _Refusing(type(original)):
                # isinstance/issubclass answer as the original class does (Keras checks them).
                def __call__(cls, *args, _path=dotted, **kwargs):
                    raise InputError(
                        f"{fn}: creates tf.distribute.{_path}, which the {stage} does not run "
                        "(no parameter servers, only chief/worker replicas): use "
                        "fn_args.strategy or tf.distribute.MirroredStrategy(), and workers=N "
                        "for several machines"
                    )

                def __instancecheck__(cls, obj, _original=original):
                    return isinstance(obj, _original)

                def __subclasscheck__(cls, sub, _original=original):
                    return issubclass(sub, _original)

            refuse = _Refusing(original.__name__, (original,), {"__doc__": original.__doc__})
            setattr(namespace, attr, refuse)
            stack.callback(setattr, namespace, attr, original)
        yield
