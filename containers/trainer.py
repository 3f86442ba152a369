"""trainer: calls the user's TFX-style `run_fn(fn_args)` under a strategy the trainer picks.

`auto` picks MultiWorkerMirroredStrategy when TF_CONFIG lists several workers, MirroredStrategy
when GPUs (or logical CPU replicas, for tests) are visible, else the default strategy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from tfkfp.containers import user_module
from tfkfp.containers.fn_args import FnArgs, make_data_accessor
from tfkfp.containers.runtime import (
    InputError,
    log,
    publishing,
    require_split,
    schema_file,
    select_keras,
)

STRATEGIES = ("auto", "mirrored", "multi_worker", "default")


def _cluster() -> tuple[int, bool]:
    """Number of workers in TF_CONFIG and whether this task is the chief."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return 1, True
    try:
        config = json.loads(raw)
        cluster = config.get("cluster", {})
        task = config.get("task", {})
        workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(
            f"TF_CONFIG: expected JSON with cluster and task.type/task.index, got {raw[:80]!r} ({err})"
        ) from None
    if task_type not in cluster or index >= len(cluster[task_type]):
        raise InputError(f"TF_CONFIG: task {task_type}:{index} is not in the cluster spec")
    is_chief = task_type == "chief" or (
        task_type == "worker" and index == 0 and "chief" not in cluster
    )
    return workers, is_chief


def _make_strategy(choice: str, cpu_replicas: int, workers: int):
    import tensorflow as tf

    if cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_replicas)]
        )
    gpus = tf.config.list_physical_devices("GPU")
    if choice == "auto":
        if workers > 1:
            choice = "multi_worker"
        elif gpus or cpu_replicas > 1:
            choice = "mirrored"
        else:
            choice = "default"
    if choice == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif choice == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if not devices:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    else:
        strategy = tf.distribute.get_strategy()
    log.info(
        "trainer: strategy %s, %d replica(s), GPUs visible: %s",
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
        [g.name for g in gpus] or "none",
    )
    return strategy


def check_saved_model(model_dir: str) -> None:
    """Fails unless `model_dir` holds a SavedModel whose serving_default takes serialized examples."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(model_dir, "saved_model.pb")
    if not os.path.isfile(path):
        raise InputError(f"run_fn: wrote no SavedModel to fn_args.serving_model_dir ({model_dir})")
    saved = saved_model_pb2.SavedModel.FromString(open(path, "rb").read())
    signatures = saved.meta_graphs[0].signature_def if saved.meta_graphs else {}
    if "serving_default" not in signatures:
        raise InputError(
            f"run_fn: the SavedModel has no serving_default signature (has {sorted(signatures)})"
        )
    inputs = signatures["serving_default"].inputs
    if len(inputs) != 1 or next(iter(inputs.values())).dtype != types_pb2.DT_STRING:
        raise InputError(
            "run_fn: serving_default must take one string tensor of serialized tf.Example, "
            f"takes {sorted(inputs)}"
        )


def run(
    examples_dir: str,
    schema_dir: str,
    module_file: str,
    model_dir: str,
    model_run_dir: str,
    transform_graph_dir: str | None = None,
    train_steps: int = 1000,
    eval_steps: int = 100,
    hyperparameters: dict[str, Any] | None = None,
    custom_config: dict[str, Any] | None = None,
    base_model_dir: str | None = None,
    keras: str = "tf_keras",
    strategy: str = "auto",
    cpu_replicas: int = 0,
) -> dict[str, Any]:
    """Builds FnArgs, runs `run_fn` inside the chosen strategy's scope, checks the export.

    Args:
        examples_dir: Examples to train on (transformed ones when a transform graph is given).
        schema_dir: Raw schema artifact (`fn_args.schema_path`).
        module_file: Path, gs:// URI or dotted module name defining `run_fn(fn_args)`.
        model_dir: Output: the serving SavedModel.
        model_run_dir: Output: TensorBoard logs and whatever run_fn writes to model_run_dir.
        transform_graph_dir: Transform graph artifact (`fn_args.transform_graph_path`).
        train_steps: `fn_args.train_steps`.
        eval_steps: `fn_args.eval_steps`.
        hyperparameters: `fn_args.hyperparameters`.
        custom_config: `fn_args.custom_config`.
        base_model_dir: Optional model to warm-start from (`fn_args.base_model`).
        keras: `tf_keras` (Keras 2, what tf.Transform uses) or `keras3`.
        strategy: `auto`, `mirrored`, `multi_worker` or `default`.
        cpu_replicas: Splits the CPU into this many logical devices (tests of MirroredStrategy).

    Returns:
        What the component records as model metadata.
    """
    select_keras(keras)  # before anything (the user module included) imports TensorFlow
    if strategy not in STRATEGIES:
        raise InputError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    for name, value in (("train_steps", train_steps), ("eval_steps", eval_steps)):
        if value is not None and value < 0:
            raise InputError(f"{name}: expected a non-negative number of steps, got {value}")
    train_files = [require_split(examples_dir, "train", "examples")]
    eval_files = [require_split(examples_dir, "eval", "examples")]
    run_fn = user_module.load_function(module_file, "run_fn")
    workers, is_chief = _cluster()

    # Must be in the environment before TensorFlow initialises the GPUs.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    import tensorflow as tf

    dist = _make_strategy(strategy, cpu_replicas, workers)
    scratch = tempfile.mkdtemp(prefix="tfkfp-trainer-")
    try:
        with publishing(model_dir) as model_tmp, publishing(model_run_dir) as run_tmp:
            # Non-chief workers export too (collectives need every worker) but into scratch.
            serving_dir = model_tmp if is_chief else os.path.join(scratch, "serving")
            fn_args = FnArgs(
                working_dir=scratch,
                train_files=train_files,
                eval_files=eval_files,
                train_steps=train_steps,
                eval_steps=eval_steps,
                schema_path=schema_file(schema_dir),
                transform_graph_path=transform_graph_dir,
                data_accessor=make_data_accessor(),
                serving_model_dir=serving_dir,
                eval_model_dir=os.path.join(scratch, "eval_model"),
                model_run_dir=run_tmp if is_chief else os.path.join(scratch, "model_run"),
                base_model=base_model_dir,
                hyperparameters=dict(hyperparameters or {}),
                custom_config=dict(custom_config or {}),
                strategy=dist,
            )
            log.info("trainer: run_fn(train_steps=%s, eval_steps=%s)", train_steps, eval_steps)
            with dist.scope():
                run_fn(fn_args)
            if is_chief:
                check_saved_model(model_tmp)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("trainer: exported SavedModel to %s", model_dir)
    return {
        "strategy": type(dist).__name__,
        "replicas": int(dist.num_replicas_in_sync),
        "keras": keras,
        "is_chief": is_chief,
        "tensorflow": tf.__version__,
    }
