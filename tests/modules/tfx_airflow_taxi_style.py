"""A module written for TFX in the style of TFX's airflow_workshop taxi module (taxi_utils.py).

Like that module it imports a callback from the `keras` package (`from keras.callbacks import
LambdaCallback`) and builds its model with `tf.keras`: under TFX both named the same Keras.
It also reaches `keras.layers` and `tensorflow.keras.callbacks` lazily, inside run_fn.
"""

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
from keras.callbacks import LambdaCallback
from tfx_bsl.public import tfxio

# TFX would say: from tfx import v1 as tfx; FnArgs = tfx.components.FnArgs
FnArgs = Any

_FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
_LABEL_KEY = "species"


def _input_fn(file_pattern, data_accessor, tf_transform_output, batch_size=20):
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=_LABEL_KEY),
        tf_transform_output.transformed_metadata.schema,
    ).repeat()


def _get_serve_tf_examples_fn(model, tf_transform_output):
    model.tft_layer = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve_tf_examples_fn(serialized_tf_examples):
        feature_spec = tf_transform_output.raw_feature_spec()
        feature_spec.pop(_LABEL_KEY)
        parsed_features = tf.io.parse_example(serialized_tf_examples, feature_spec)
        transformed_features = model.tft_layer(parsed_features)
        return model({k: transformed_features[k] for k in _FEATURES})

    return serve_tf_examples_fn


def _build_keras_model(n_classes):
    inputs = [tf.keras.layers.Input(shape=(1,), name=f) for f in _FEATURES]
    d = tf.keras.layers.concatenate(inputs)
    d = tf.keras.layers.Dense(8, activation="relu")(d)
    outputs = tf.keras.layers.Dense(n_classes)(d)
    model = tf.keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-2),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def run_fn(fn_args: FnArgs):
    assert fn_args.schema_file and fn_args.schema_file.endswith("schema.pbtxt")
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size = (fn_args.custom_config or {}).get("batch_size", 20)
    train_dataset = _input_fn(
        fn_args.train_files, fn_args.data_accessor, tf_transform_output, batch_size
    )
    eval_dataset = _input_fn(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, batch_size
    )
    model = _build_keras_model(tf_transform_output.vocabulary_size_by_name(_LABEL_KEY))
    tensorboard_callback = tf.keras.callbacks.TensorBoard(
        log_dir=fn_args.model_run_dir, update_freq="epoch"
    )
    from tensorflow.keras.callbacks import History

    batches = []
    batch_log_callback = LambdaCallback(on_batch_end=lambda batch, logs: batches.append(batch))
    model.fit(
        train_dataset,
        steps_per_epoch=fn_args.train_steps,
        validation_data=eval_dataset,
        validation_steps=fn_args.eval_steps,
        callbacks=[tensorboard_callback, batch_log_callback, History()],
        verbose=2,
    )
    assert batches, "LambdaCallback was not called"
    import keras

    assert isinstance(keras.layers.Dense(1), tf.keras.layers.Layer)  # one Keras for every name
    signatures = {
        "serving_default": _get_serve_tf_examples_fn(model, tf_transform_output),
    }
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures)
