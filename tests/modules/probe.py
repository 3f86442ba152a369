"""A run_fn that trains nothing: it records what it was given and exports a tiny valid model.

The export dtype comes from custom_config so one module covers the good and the bad export.
"""

import json
import os

import tensorflow as tf


class _Model(tf.Module):
    def __init__(self, dtype):
        super().__init__()
        self.serve = tf.function(
            lambda examples: {"n": tf.size(examples)},
            input_signature=[tf.TensorSpec([None], dtype, name="examples")],
        )


def run_fn(fn_args):
    config = fn_args.custom_config or {}
    seen = {
        name: getattr(fn_args, name)
        for name in (
            "working_dir",
            "train_files",
            "eval_files",
            "train_steps",
            "eval_steps",
            "schema_path",
            "schema_file",
            "transform_graph_path",
            "transform_output",
            "serving_model_dir",
            "eval_model_dir",
            "model_run_dir",
            "base_model",
            "hyperparameters",
            "custom_config",
        )
    }
    seen["strategy"] = type(fn_args.strategy).__name__
    seen["strategy_in_scope"] = type(tf.distribute.get_strategy()).__name__
    seen["replicas"] = fn_args.strategy.num_replicas_in_sync
    seen["gpu_allow_growth"] = os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH")
    seen["keras"] = tf.keras.__name__ if hasattr(tf.keras, "__name__") else str(tf.keras)
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    with open(os.path.join(fn_args.model_run_dir, "fn_args.json"), "w") as fh:
        json.dump(seen, fh)
    if config.get("export", "good") == "none":
        return
    dtype = tf.float32 if config.get("export") == "float_input" else tf.string
    model = _Model(dtype)
    tf.saved_model.save(
        model, fn_args.serving_model_dir, signatures={"serving_default": model.serve}
    )
