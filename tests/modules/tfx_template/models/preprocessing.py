"""preprocessing_fn, as the taxi template's models/preprocessing.py writes it."""

import tensorflow as tf
import tensorflow_transform as tft

from models import features


def _fill_in_missing(x, default):
    """[batch, 1]; a feature missing in some rows arrives as a SparseTensor."""
    if not isinstance(x, tf.sparse.SparseTensor):
        return x
    return tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default)


def preprocessing_fn(inputs):
    outputs = {}
    for key in features.NUMERIC_FEATURE_KEYS:
        value = tf.cast(_fill_in_missing(inputs[key], 0), tf.float32)
        outputs[features.transformed_name(key)] = tft.scale_to_z_score(value)
    for key in features.CATEGORICAL_FEATURE_KEYS:
        outputs[features.transformed_name(key)] = tft.compute_and_apply_vocabulary(
            _fill_in_missing(inputs[key], ""), num_oov_buckets=features.OOV_SIZE, vocab_filename=key
        )
    outputs[features.transformed_name(features.LABEL_KEY)] = tft.compute_and_apply_vocabulary(
        _fill_in_missing(inputs[features.LABEL_KEY], ""), vocab_filename=features.LABEL_KEY
    )
    return outputs
