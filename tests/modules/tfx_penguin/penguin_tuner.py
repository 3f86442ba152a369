"""A TFX-style module with tuner_fn: RandomSearch over two hyperparameters, as TFX writes it.

`run_fn` reads the tuned values with `keras_tuner.HyperParameters.from_config` (TFX's way) and
writes what it saw to model_run/seen.json for the tests. `max_trials` comes from custom_config.
"""

import json
import os

import keras_tuner
import penguin_base as base
import tensorflow as tf
import tensorflow_transform as tft

from tfkfp.tfx import v1 as tfx


def _get_hyperparameters() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Choice("learning_rate", [1e-1, 1e-2, 1e-3], default=1e-2)
    hp.Int("units", 4, 32, step=4, default=8)
    return hp


def _make_keras_model(hparams: keras_tuner.HyperParameters) -> tf.keras.Model:
    inputs = [tf.keras.layers.Input(shape=(1,), name=f) for f in base.FEATURE_KEYS]
    d = tf.keras.layers.concatenate(inputs)
    d = tf.keras.layers.Dense(hparams.get("units"), activation="relu")(d)
    model = tf.keras.Model(inputs=inputs, outputs=tf.keras.layers.Dense(3)(d))
    model.compile(
        optimizer=tf.keras.optimizers.Adam(hparams.get("learning_rate")),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def _datasets(fn_args):
    transform_graph = tft.TFTransformOutput(fn_args.transform_graph_path)
    train = base.input_fn(
        fn_args.train_files, fn_args.data_accessor, transform_graph, base.TRAIN_BATCH_SIZE
    )
    evaluation = base.input_fn(
        fn_args.eval_files, fn_args.data_accessor, transform_graph, base.EVAL_BATCH_SIZE
    )
    return transform_graph, train, evaluation


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    tuner = keras_tuner.RandomSearch(
        _make_keras_model,
        max_trials=(fn_args.custom_config or {}).get("max_trials", 6),
        hyperparameters=_get_hyperparameters(),
        allow_new_entries=False,
        objective=keras_tuner.Objective("val_sparse_categorical_accuracy", "max"),
        directory=fn_args.working_dir,
        project_name="penguin_tuning",
    )
    _, train, evaluation = _datasets(fn_args)
    return tfx.components.TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": train,
            "validation_data": evaluation,
            "steps_per_epoch": fn_args.train_steps,
            "validation_steps": fn_args.eval_steps,
        },
    )


def run_fn(fn_args: tfx.components.FnArgs):
    transform_graph, train, evaluation = _datasets(fn_args)
    if fn_args.hyperparameters:
        hparams = keras_tuner.HyperParameters.from_config(fn_args.hyperparameters)
    else:
        hparams = _get_hyperparameters()
    model = _make_keras_model(hparams)
    model.fit(
        train,
        steps_per_epoch=fn_args.train_steps,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        verbose=2,
    )
    signatures = base.make_serving_signatures(model, transform_graph)
    tf.saved_model.save(model, fn_args.serving_model_dir, signatures=signatures)
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    with open(os.path.join(fn_args.model_run_dir, "seen.json"), "w") as fh:
        json.dump({"hyperparameters": hparams.values}, fh)
