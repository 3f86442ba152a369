"""Helper module of penguin_keras.py, as TFX's penguin example keeps one (penguin_utils_base).

It sits next to the module file and is imported by name (`import penguin_base as base`).
"""

import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

FEATURE_KEYS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
LABEL_KEY = "species"
TRAIN_BATCH_SIZE = 20
EVAL_BATCH_SIZE = 10


def _fill_in_missing(x):
    """Dense [batch, 1]; features missing in some rows arrive as SparseTensors."""
    if not isinstance(x, tf.sparse.SparseTensor):
        return x
    default = "" if x.dtype == tf.string else 0
    return tf.sparse.to_dense(
        tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default
    )


def preprocessing_fn(inputs):
    outputs = {}
    for key in FEATURE_KEYS:
        value = tf.cast(_fill_in_missing(inputs[key]), tf.float32)
        # Same names as the raw features (TFX's examples add `_xf`): the tests reuse the
        # demo module's transform output, which names them so.
        outputs[key] = tft.scale_to_z_score(value)
    outputs[LABEL_KEY] = tft.compute_and_apply_vocabulary(
        _fill_in_missing(inputs[LABEL_KEY]), vocab_filename=LABEL_KEY
    )
    return outputs


def input_fn(file_pattern, data_accessor, tf_transform_output, batch_size=200):
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY),
        tf_transform_output.transformed_metadata.schema,
    ).repeat()


def make_serving_signatures(model, tf_transform_output):
    model.tft_layer = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve_tf_examples_fn(serialized_tf_example):
        raw_feature_spec = tf_transform_output.raw_feature_spec()
        raw_feature_spec.pop(LABEL_KEY)
        raw_features = tf.io.parse_example(serialized_tf_example, raw_feature_spec)
        transformed_features = model.tft_layer(raw_features)
        return {"outputs": model(transformed_features)}

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def transform_features_fn(serialized_tf_example):
        raw_feature_spec = tf_transform_output.raw_feature_spec()
        raw_features = tf.io.parse_example(serialized_tf_example, raw_feature_spec)
        return model.tft_layer(raw_features)

    return {"serving_default": serve_tf_examples_fn, "transform_features": transform_features_fn}
