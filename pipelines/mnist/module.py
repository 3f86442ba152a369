"""MNIST-style digits (scikit-learn's 8x8 `load_digits`): the TF2 guide's image and TFLite example.

No Transform: ingest types `image_floats` as a fixed-length list of 64 floats (shape [64]), so
the data accessor gives a dense [batch, 64] tensor that the model rescales and reshapes into
an 8x8 image for a small CNN. Two signatures: `serving_default` over serialized tf.Examples
(TF Serving, the evaluator) and `serving_raw` over the pixels themselves, which the tflite
stage converts with TFLite's builtin ops only (no ParseExample) for the app and the evaluator.
"""

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.public import tfxio

IMAGE = "image_floats"
LABEL = "image_class"
SIDE = 8  # load_digits' images are 8x8, pixels 0-16
CLASSES = 10


def _schema(path: str) -> schema_pb2.Schema:
    with tf.io.gfile.GFile(path) as fh:
        return text_format.Parse(fh.read(), schema_pb2.Schema())


def _dataset(fn_args, files, schema, batch_size):
    return fn_args.data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL), schema
    ).repeat()


def _build_model(learning_rate):
    keras = tf.keras
    pixels = keras.Input(shape=(SIDE * SIDE,), name=IMAGE, dtype=tf.float32)
    x = keras.layers.Rescaling(1.0 / 16)(pixels)
    x = keras.layers.Reshape((SIDE, SIDE, 1))(x)
    x = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", padding="same")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs=pixels, outputs=outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def _export(model, serving_model_dir):
    """serving_default: serialized tf.Examples; serving_raw: the 64 pixels (for TFLite)."""
    spec = {IMAGE: tf.io.FixedLenFeature([SIDE * SIDE], tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        return {"probabilities": model(tf.io.parse_example(examples, spec)[IMAGE])}

    @tf.function(input_signature=[tf.TensorSpec([None, SIDE * SIDE], tf.float32, name=IMAGE)])
    def serve_raw(image_floats):
        return {"probabilities": model(image_floats)}

    # tf.saved_model.save, not model.save(dir, save_format="tf"): the same under tf_keras and
    # Keras 3 (which refuses save_format="tf").
    tf.saved_model.save(
        model,
        serving_model_dir,
        signatures={"serving_default": serve, "serving_raw": serve_raw},
    )


def run_fn(fn_args):
    """Trains the CNN on the raw examples, exports both signatures."""
    hp = fn_args.hyperparameters or {}
    schema = _schema(fn_args.schema_path)
    batch_size = int(hp.get("batch_size", 32))
    train = _dataset(fn_args, fn_args.train_files, schema, batch_size)
    evaluation = _dataset(fn_args, fn_args.eval_files, schema, batch_size)
    model = _build_model(float(hp.get("learning_rate", 0.003)))
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
    _export(model, fn_args.serving_model_dir)
