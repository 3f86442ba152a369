"""run_fn, as the taxi template's models/keras_model/model.py writes it (penguin features).

TFX's template gives Transform `preprocessing_fn='models.preprocessing.preprocessing_fn'`; a
tfkfp pipeline passes one module_file to transform and trainer, so this module re-exports it.
"""

import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from models import features
from models.keras_model import constants
from models.preprocessing import preprocessing_fn  # noqa: F401 (transform's function)

from . import constants as relative_constants  # a relative import works too

assert relative_constants is constants


def _input_fn(file_pattern, data_accessor, tf_transform_output, batch_size):
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=batch_size, label_key=features.transformed_name(features.LABEL_KEY)
        ),
        tf_transform_output.transformed_metadata.schema,
    ).repeat()


def _build_keras_model(tf_transform_output):
    keras = tf.keras
    inputs, encoded = {}, []
    for key in features.NUMERIC_FEATURE_KEYS:
        name = features.transformed_name(key)
        inputs[name] = keras.Input(shape=(1,), name=name, dtype=tf.float32)
        encoded.append(inputs[name])
    for key in features.CATEGORICAL_FEATURE_KEYS:
        name = features.transformed_name(key)
        inputs[name] = keras.Input(shape=(1,), name=name, dtype=tf.int64)
        depth = tf_transform_output.vocabulary_size_by_name(key) + features.OOV_SIZE
        encoded.append(keras.layers.CategoryEncoding(num_tokens=depth)(inputs[name]))
    x = keras.layers.Concatenate()(encoded)
    for units in constants.HIDDEN_UNITS:
        x = keras.layers.Dense(units, activation="relu")(x)
    classes = tf_transform_output.vocabulary_size_by_name(features.LABEL_KEY)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
    model.compile(
        optimizer=keras.optimizers.Adam(constants.LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def run_fn(fn_args):
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    train = _input_fn(
        fn_args.train_files, fn_args.data_accessor, tf_transform_output, constants.TRAIN_BATCH_SIZE
    )
    evaluation = _input_fn(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, constants.EVAL_BATCH_SIZE
    )
    model = _build_keras_model(tf_transform_output)
    model.fit(
        train,
        steps_per_epoch=fn_args.train_steps,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
    )
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    serving_spec = {k: v for k, v in raw_spec.items() if k != features.LABEL_KEY}
    names = [
        features.transformed_name(k)
        for k in features.NUMERIC_FEATURE_KEYS + features.CATEGORICAL_FEATURE_KEYS
    ]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        transformed = model.tft_layer(tf.io.parse_example(examples, serving_spec))
        return {"probabilities": model({k: transformed[k] for k in names})}

    tf.saved_model.save(model, fn_args.serving_model_dir, signatures={"serving_default": serve})
