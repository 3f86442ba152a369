"""A module's Keras names (`tf.keras`, `keras`, `tensorflow.keras`) are one Keras in the trainer."""

import os
import sys

import pytest

from tests.helpers import TRAINER_MODULES
from tests.helpers.tuner import tuner_process
from tfkfp.containers import trainer
from tfkfp.containers.model import user_module


@pytest.mark.slow  # a further training
def test_module_mixing_keras_and_tf_keras_callbacks_trains(tmp_path, ingested, transformed):
    """TFX's airflow_workshop taxi module: `from keras.callbacks import LambdaCallback`."""
    keras_before = sys.modules.get("keras")
    info = trainer.run(
        examples=transformed.examples,
        schema=ingested.schema,
        module_file=str(TRAINER_MODULES / "tfx_airflow_taxi_style.py"),
        model=str(tmp_path / "model"),
        model_run=str(tmp_path / "model_run"),
        curves=str(tmp_path / "curves.html"),
        transform_graph=transformed.graph,
        train_steps=4,
        eval_steps=1,
    )
    assert info.keras == "tf_keras"
    assert (tmp_path / "model" / "saved_model.pb").is_file()
    # the process's own `keras` is back afterwards
    assert sys.modules.get("keras") is keras_before


def test_keras_names_point_at_tf_keras_only_inside():
    import importlib

    import tensorflow as tf

    assert tf.keras.__file__.startswith(
        os.path.dirname(importlib.util.find_spec("tf_keras").origin)
    )
    with user_module.keras_names():
        import keras
        from keras.callbacks import LambdaCallback

        assert keras is importlib.import_module("tf_keras")
        assert LambdaCallback is tf.keras.callbacks.LambdaCallback
        assert keras.Model is tf.keras.Model and keras.layers.Dense is tf.keras.layers.Dense
        assert sys.modules["keras.callbacks"] is sys.modules["tf_keras.callbacks"]
        assert sys.modules["tf_keras"].__spec__.name == "tf_keras"  # its own spec kept
    import keras

    assert not keras.__name__.startswith("tf_keras")


@pytest.mark.slow  # a further training
def test_tuner_fn_with_a_keras_package_callback_tunes(tmp_path, ingested, transformed):
    module = str(TRAINER_MODULES / "tfx_penguin" / "penguin_tuner_lambda.py")
    code, result, stderr = tuner_process(
        tmp_path, ingested, transformed, module_file=module, custom_config={"max_trials": 1}
    )
    assert code == 0, stderr[-3000:]
    assert result["trials"][0]["status"] == "COMPLETED"
    assert "lambda callback: epoch end" in stderr
