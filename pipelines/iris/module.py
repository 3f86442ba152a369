"""Iris: the TF2 guide's "module file without Transform" (a run_fn only, on raw examples).

The trainer gets the raw examples and the schema ingest inferred (`fn_args.schema_path`); the
model normalizes its own inputs and its serving signature parses raw tf.Examples, so the
evaluator and the server need nothing else. Works unchanged with TFX's Trainer (no imports
of tfkfp).
"""

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import schema_utils
from tfx_bsl.public import tfxio

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
LABEL = "variety"
CLASSES = 3


def _schema(path: str) -> schema_pb2.Schema:
    """TFX's `io_utils.parse_pbtxt_file(path, schema_pb2.Schema())`, without TFX."""
    with tf.io.gfile.GFile(path) as fh:
        return text_format.Parse(fh.read(), schema_pb2.Schema())


def _dataset(fn_args, files, schema, batch_size):
    return fn_args.data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL), schema
    ).repeat()


def _build_model(train, learning_rate):
    keras = tf.keras
    inputs = {k: keras.Input(shape=(1,), name=k, dtype=tf.float32) for k in FEATURES}
    x = keras.layers.Concatenate()([inputs[k] for k in FEATURES])
    # Without Transform the model scales its own inputs, from a sample of the train split.
    norm = keras.layers.Normalization()
    norm.adapt(train.take(10).map(lambda f, _: tf.concat([f[k] for k in FEATURES], axis=1)))
    x = norm(x)
    for units in (8, 8):
        x = keras.layers.Dense(units, activation="relu")(x)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def _export(model, schema, serving_model_dir):
    """serving_default: serialized raw tf.Examples (`examples`) -> class probabilities."""
    spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    spec = {k: v for k, v in spec.items() if k != LABEL}  # a client sends no label

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        features = tf.io.parse_example(examples, spec)
        return {"probabilities": model({k: features[k] for k in FEATURES})}

    # tf.saved_model.save works under tf_keras and Keras 3 alike (Keras 3 refuses
    # model.save(dir, save_format="tf")).
    tf.saved_model.save(model, serving_model_dir, signatures={"serving_default": serve})


def run_fn(fn_args):
    """Trains a small DNN on the raw examples and exports a raw-example signature."""
    hp = fn_args.hyperparameters or {}
    schema = _schema(fn_args.schema_path)
    batch_size = int(hp.get("batch_size", 16))
    train = _dataset(fn_args, fn_args.train_files, schema, batch_size)
    evaluation = _dataset(fn_args, fn_args.eval_files, schema, batch_size)
    model = _build_model(train, float(hp.get("learning_rate", 0.01)))
    epochs = 5 if fn_args.train_steps and fn_args.train_steps >= 5 else 1
    model.fit(
        train,
        epochs=epochs,
        steps_per_epoch=fn_args.train_steps // epochs,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)],
        verbose=2,
    )
    _export(model, schema, fn_args.serving_model_dir)
