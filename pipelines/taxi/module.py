"""Chicago taxi "big tipper": a wide-and-deep model on tf.Transform features (TFX-compatible).

The label is computed from raw columns (`tips > 0.2 * fare`), so the model also exports a
`transform_features` signature for TFMA. Neither function imports tfkfp.
"""

import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

# z-scored; a missing value becomes 0, the mean
NUMERIC = ["trip_miles", "fare", "trip_seconds"]
# quantile buckets; a missing value gets its own bucket (index LATLONG_BUCKETS)
LATLONG = ["pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude"]
LATLONG_BUCKETS = 10
# vocabularies of the most frequent values; the rest share OOV buckets, missing is ""
VOCAB = {"payment_type": 5, "company": 20}
OOV = 2
# small integer categories used as ids (0 = missing for the community areas, 1..77)
IDENTITY = {
    "trip_start_hour": 24,
    "trip_start_day": 8,
    "trip_start_month": 13,
    "pickup_community_area": 78,
    "dropoff_community_area": 78,
}
LABEL = "big_tipper"
RAW_LABEL_COLUMNS = ["tips"]  # read by preprocessing_fn for the label, absent at serving


def xf(key):
    """Transformed feature name: raw names stay free for TFMA's slicing on raw values."""
    return f"{key}_xf"


def _fill(x, default):
    """[batch] dense tensor; a VarLen (sometimes missing) feature arrives as a SparseTensor."""
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default
        )
    return tf.squeeze(x, axis=1)


def _float(x):
    if isinstance(x, tf.sparse.SparseTensor):
        return tf.SparseTensor(x.indices, tf.cast(x.values, tf.float32), x.dense_shape)
    return tf.cast(x, tf.float32)


def preprocessing_fn(inputs):
    """z-scores, lat/long buckets, top-k vocabularies, id columns and the big_tipper label."""
    outputs = {}
    for key in NUMERIC:
        # scale_to_z_score keeps sparsity, so the mean ignores missing values
        outputs[xf(key)] = _fill(tft.scale_to_z_score(_float(inputs[key])), 0.0)
    for key in LATLONG:
        buckets = tft.bucketize(_float(inputs[key]), LATLONG_BUCKETS)
        outputs[xf(key)] = _fill(buckets, tf.constant(LATLONG_BUCKETS, buckets.dtype))
    for key, top_k in VOCAB.items():
        outputs[xf(key)] = tft.compute_and_apply_vocabulary(
            _fill(inputs[key], ""), top_k=top_k, num_oov_buckets=OOV, vocab_filename=key
        )
    for key, size in IDENTITY.items():
        ids = _fill(inputs[key], tf.constant(0, tf.int64))
        outputs[xf(key)] = tf.clip_by_value(ids, 0, size - 1)
    tips = _fill(_float(inputs["tips"]), 0.0)
    fare = _fill(_float(inputs["fare"]), 0.0)
    outputs[LABEL] = tf.cast(tips > 0.2 * fare, tf.int64)
    return outputs


def _depths(tft_output):
    """One-hot depth of every categorical transformed feature."""
    depths = {xf(k): LATLONG_BUCKETS + 1 for k in LATLONG}
    depths.update({xf(k): tft_output.vocabulary_size_by_name(k) + OOV for k in VOCAB})
    depths.update({xf(k): size for k, size in IDENTITY.items()})
    return depths


def _build_model(tft_output, hidden_units, learning_rate):
    """Wide (linear over one-hot categories) and deep (DNN over everything) with one logit."""
    keras = tf.keras
    inputs, numeric, one_hot = {}, [], []
    for key in NUMERIC:
        inputs[xf(key)] = keras.Input(shape=(), name=xf(key), dtype=tf.float32)
        numeric.append(keras.layers.Reshape((1,))(inputs[xf(key)]))
    for key, depth in _depths(tft_output).items():
        inputs[key] = keras.Input(shape=(), name=key, dtype=tf.int64)
        one_hot.append(keras.layers.CategoryEncoding(depth, output_mode="one_hot")(inputs[key]))
    wide = keras.layers.Concatenate()(one_hot)
    deep = keras.layers.Concatenate()(numeric + one_hot)
    for units in hidden_units:
        deep = keras.layers.Dense(units, activation="relu")(deep)
    logit = keras.layers.Add()([keras.layers.Dense(1)(wide), keras.layers.Dense(1)(deep)])
    output = keras.layers.Activation("sigmoid", name="probabilities")(logit)
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(), keras.metrics.AUC(name="auc")],
    )
    return model


def _dataset(fn_args, files, tft_output, batch_size):
    return fn_args.data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL),
        tft_output.transformed_metadata.schema,
    )


def _export(model, tft_output, serving_model_dir):
    """serving_default: serialized raw tf.Examples (`examples`) -> P(big tipper)."""
    # Keeping the layer on the model makes the SavedModel track the transform graph's assets.
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    serving_spec = {k: v for k, v in raw_spec.items() if k not in RAW_LABEL_COLUMNS}
    features = [xf(k) for k in NUMERIC] + list(_depths(tft_output))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        transformed = model.tft_layer(tf.io.parse_example(examples, serving_spec))
        return {"probabilities": model({k: transformed[k] for k in features})}

    # TFMA applies this to raw eval examples to get the label computed in preprocessing_fn.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples):
        return model.tft_layer(tf.io.parse_example(examples, raw_spec))

    tf.saved_model.save(
        model,
        serving_model_dir,
        signatures={"serving_default": serve, "transform_features": transform_features},
    )


def run_fn(fn_args):
    """Trains the wide-and-deep model on transformed examples; exports raw-example signatures."""
    hp = fn_args.hyperparameters or {}
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    batch_size = int(hp.get("batch_size", 64))
    train = _dataset(fn_args, fn_args.train_files, tft_output, batch_size)
    evaluation = _dataset(fn_args, fn_args.eval_files, tft_output, batch_size)
    model = _build_model(
        tft_output, hp.get("hidden_units", [32, 16]), float(hp.get("learning_rate", 0.005))
    )
    # The same steps in a few epochs: the trainer's curves page gets a point per epoch.
    epochs = 5 if fn_args.train_steps and fn_args.train_steps >= 5 else 1
    model.fit(
        train,
        epochs=epochs,
        steps_per_epoch=fn_args.train_steps // epochs if fn_args.train_steps else None,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)],
        verbose=2,
    )
    _export(model, tft_output, fn_args.serving_model_dir)
