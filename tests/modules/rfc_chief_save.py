"""The Generic Trainer RFC's multi-worker run_fn: build under the strategy, save on the chief only."""

import json
import os

import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

LABEL = "species"
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def _is_chief():
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task", {})
    return task.get("type") in (None, "chief") or (
        task.get("type") == "worker"
        and task.get("index") == 0
        and "chief" not in tf_config.get("cluster", {})
    )


def run_fn(fn_args):
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    train = fn_args.data_accessor.tf_dataset_factory(
        fn_args.train_files,
        tfxio.TensorFlowDatasetOptions(batch_size=8, label_key=LABEL),
        tft_output.transformed_metadata.schema,
    ).repeat()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        inputs = {k: tf.keras.Input(shape=(1,), name=k) for k in FEATURES}
        x = tf.keras.layers.Concatenate()(list(inputs.values()))
        out = tf.keras.layers.Dense(3, activation="softmax")(x)
        model = tf.keras.Model(inputs, out)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, steps_per_epoch=fn_args.train_steps, epochs=1, verbose=2)
    spec = {k: v for k, v in tft_output.raw_feature_spec().items() if k != LABEL}
    model.tft_layer = tft_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        t = model.tft_layer(tf.io.parse_example(examples, spec))
        return {"probabilities": model({k: t[k] for k in FEATURES})}

    if _is_chief():
        model.save(
            fn_args.serving_model_dir, save_format="tf", signatures={"serving_default": serve}
        )
