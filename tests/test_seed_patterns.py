"""Module files written from TFX 1.x / Keras 2 seeds fail in one line naming the change to make.

Each runs the real trainer entrypoint in a fresh process (the Keras flavour is chosen before
TensorFlow loads, as in a KFP task): exit 2, one line, no traceback, no model published.
"""

import pytest

from tests.helpers import write_module
from tests.helpers.trainer import finish_trainer, trainer_process

# The Generic Trainer RFC's conversion recipe: run_fn calls the Estimator-era trainer_fn.
TRAINER_FN_FROM_RUN_FN = """
import tensorflow as tf

def trainer_fn(trainer_fn_args, schema):
    model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    estimator = tf.keras.estimator.model_to_estimator(keras_model=model)
    return {"estimator": estimator}

def run_fn(fn_args):
    spec = trainer_fn(fn_args, None)
    tf.estimator.train_and_evaluate(spec["estimator"], None, None)
"""

# Every TFX example module's export line, run under Keras 3.
SAVE_FORMAT_TF = """
import tensorflow as tf

def run_fn(fn_args):
    model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(1)])
    model.save(fn_args.serving_model_dir, save_format="tf", signatures={})
"""

SAVE_DIR_KERAS3 = """
import tensorflow as tf

def run_fn(fn_args):
    model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(1)])
    model.save(fn_args.serving_model_dir)
"""

PARAMETER_SERVER = """
import tensorflow as tf

def run_fn(fn_args):
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    strategy = tf.distribute.experimental.ParameterServerStrategy(resolver)
    with strategy.scope():
        pass
"""

CASES = {
    "trainer_fn": (TRAINER_FN_FROM_RUN_FN, "tf_keras", "calls model_to_estimator (a trainer_fn)"),
    "save_format": (SAVE_FORMAT_TF, "keras3", "model.save(dir, save_format=...) writes no"),
    "save_dir": (SAVE_DIR_KERAS3, "keras3", "tf.saved_model.save(model, fn_args.serving_model"),
    "parameter_server": (PARAMETER_SERVER, "tf_keras", "ParameterServerStrategy, which the"),
}


@pytest.fixture(scope="module")
def refused(tmp_path_factory, ingested, transformed) -> dict[str, tuple]:
    """Every case's trainer process, started together (each pays its own TensorFlow import)."""
    procs = {}
    for name, (source, keras, _) in CASES.items():
        out = tmp_path_factory.mktemp(name)
        module = write_module(out / f"{name}_module.py", source)
        procs[name] = (
            out,
            trainer_process(out, ingested, transformed, module_file=module, keras=keras),
        )
    return {name: (out, *finish_trainer(proc)) for name, (out, proc) in procs.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_seed_pattern_is_one_line_exit_2(refused, case):
    out, code, info, stderr = refused[case]
    assert code == 2, stderr[-3000:]
    assert info is None
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: run_fn: ") and CASES[case][2] in last, last
    assert "Traceback" not in stderr
    assert not (out / "model").exists() and not (out / "model_run").exists()
