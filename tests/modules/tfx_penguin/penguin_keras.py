"""A module file as TFX's penguin example writes it (penguin_utils_keras), moved to tfkfp.

One line differs from the TFX version: `from tfx import v1 as tfx` is now
`from tfkfp.tfx import v1 as tfx`. Everything else is TFX's style: `import keras_tuner` at the
top, `tuner_fn` annotated with `tfx.components.TunerFnResult`, tuned hyperparameters read with
`keras_tuner.HyperParameters.from_config`, a `tf.distribute.MirroredStrategy()` of its own in
`run_fn`, and a helper module next to it imported by name.
"""

import json
import os

import keras_tuner
import penguin_base as base
import tensorflow as tf
import tensorflow_transform as tft

from tfkfp.tfx import v1 as tfx

preprocessing_fn = base.preprocessing_fn


def _get_hyperparameters() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Choice("learning_rate", [1e-2, 1e-3], default=1e-2)
    hp.Int("num_layers", 1, 3, default=2)
    hp.Int("units", 8, 32, step=8, default=16)
    return hp


def _make_keras_model(hparams: keras_tuner.HyperParameters) -> tf.keras.Model:
    inputs = [tf.keras.layers.Input(shape=(1,), name=f) for f in base.FEATURE_KEYS]
    d = tf.keras.layers.concatenate(inputs)
    for _ in range(hparams.get("num_layers")):
        d = tf.keras.layers.Dense(hparams.get("units"), activation="relu")(d)
    outputs = tf.keras.layers.Dense(3)(d)
    model = tf.keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(hparams.get("learning_rate")),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    tuner = keras_tuner.RandomSearch(
        _make_keras_model,
        max_trials=6,
        hyperparameters=_get_hyperparameters(),
        allow_new_entries=False,
        objective=keras_tuner.Objective("val_sparse_categorical_accuracy", "max"),
        directory=fn_args.working_dir,
        project_name="penguin_tuning",
    )
    transform_graph = tft.TFTransformOutput(fn_args.transform_graph_path)
    train_dataset = base.input_fn(
        fn_args.train_files, fn_args.data_accessor, transform_graph, base.TRAIN_BATCH_SIZE
    )
    eval_dataset = base.input_fn(
        fn_args.eval_files, fn_args.data_accessor, transform_graph, base.EVAL_BATCH_SIZE
    )
    return tfx.components.TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": train_dataset,
            "validation_data": eval_dataset,
            "steps_per_epoch": fn_args.train_steps,
            "validation_steps": fn_args.eval_steps,
        },
    )


def run_fn(fn_args: tfx.components.FnArgs):
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train_dataset = base.input_fn(
        fn_args.train_files, fn_args.data_accessor, tf_transform_output, base.TRAIN_BATCH_SIZE
    )
    eval_dataset = base.input_fn(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, base.EVAL_BATCH_SIZE
    )
    if fn_args.hyperparameters:
        hparams = keras_tuner.HyperParameters.from_config(fn_args.hyperparameters)
    else:
        hparams = _get_hyperparameters()

    mirrored_strategy = tf.distribute.MirroredStrategy()
    with mirrored_strategy.scope():
        model = _make_keras_model(hparams)

    tensorboard_callback = tf.keras.callbacks.TensorBoard(
        log_dir=fn_args.model_run_dir, update_freq="epoch"
    )
    model.fit(
        train_dataset,
        steps_per_epoch=fn_args.train_steps,
        validation_data=eval_dataset,
        validation_steps=fn_args.eval_steps,
        callbacks=[tensorboard_callback],
        verbose=2,
    )
    signatures = base.make_serving_signatures(model, tf_transform_output)
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures)

    # Not in TFX's module: what the tests check (hyperparameters used, strategy built in).
    with open(os.path.join(fn_args.model_run_dir, "seen.json"), "w") as fh:
        json.dump(
            {
                "hyperparameters": hparams.values,
                "strategy": type(mirrored_strategy).__name__,
                "replicas": mirrored_strategy.num_replicas_in_sync,
                "model_strategy": type(model.distribute_strategy).__name__,
                "is_trainer_strategy": mirrored_strategy is fn_args.strategy,
            },
            fh,
        )
