"""Chicago taxi "big tipper" module file for the trainer benchmark (TFX's taxi example, cut down).

A plain TFX-style module: `preprocessing_fn` for tf.Transform, `run_fn(fn_args)` for the trainer.
It imports nothing from tfkfp. The official taxi pipeline lives elsewhere; this one only feeds
`bench/trainer.py`.
"""

import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

DENSE_FLOAT = ["fare", "trip_miles", "trip_seconds"]
# Small integer features used as categories directly: name -> number of values.
IDENTITY = {"trip_start_hour": 24, "trip_start_day": 8, "trip_start_month": 13}
VOCAB = ["payment_type", "company"]
OOV = 1
LABEL = "big_tipper"
RAW_LABEL = "tips"


def _dense(x, default):
    """[batch, 1] dense tensor; a sometimes-missing feature arrives as a SparseTensor."""
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default
        )
    return x


def preprocessing_fn(inputs):
    """Z-scores the numbers, vocabularies for strings, label: tip above 20% of the fare."""
    outputs = {}
    for key in DENSE_FLOAT:
        outputs[key] = tft.scale_to_z_score(tf.cast(_dense(inputs[key], 0), tf.float32))
    for key, size in IDENTITY.items():
        outputs[key] = tf.clip_by_value(tf.cast(_dense(inputs[key], 0), tf.int64), 0, size - 1)
    for key in VOCAB:
        outputs[key] = tft.compute_and_apply_vocabulary(
            _dense(inputs[key], ""), num_oov_buckets=OOV, vocab_filename=key
        )
    fare = tf.cast(_dense(inputs["fare"], 0.0), tf.float32)
    tips = tf.cast(_dense(inputs[RAW_LABEL], 0.0), tf.float32)
    outputs[LABEL] = tf.cast(tips > 0.2 * fare, tf.int64)
    return outputs


def _dataset(fn_args, files, tft_output, batch_size):
    return fn_args.data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL),
        tft_output.transformed_metadata.schema,
    )


def _build_model(tft_output, hidden_units):
    keras = tf.keras
    inputs, encoded = {}, []
    for key in DENSE_FLOAT:
        inputs[key] = keras.Input(shape=(1,), name=key, dtype=tf.float32)
        encoded.append(inputs[key])
    sizes = dict(IDENTITY)
    sizes.update({k: tft_output.vocabulary_size_by_name(k) + OOV for k in VOCAB})
    for key, size in sizes.items():
        inputs[key] = keras.Input(shape=(1,), name=key, dtype=tf.int64)
        encoded.append(
            keras.layers.CategoryEncoding(num_tokens=size, output_mode="one_hot")(inputs[key])
        )
    x = keras.layers.Concatenate()(encoded)
    for units in hidden_units:
        x = keras.layers.Dense(units, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="binary_crossentropy")
    return model


def run_fn(fn_args):
    """Trains a small DNN and exports `serving_default` over serialized raw tf.Examples."""
    hp = fn_args.hyperparameters or {}
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    batch_size = int(hp.get("batch_size", 256))
    model = _build_model(tft_output, hp.get("hidden_units", [32, 16]))
    model.fit(
        _dataset(fn_args, fn_args.train_files, tft_output, batch_size),
        steps_per_epoch=fn_args.train_steps,
        validation_data=_dataset(fn_args, fn_args.eval_files, tft_output, batch_size),
        validation_steps=fn_args.eval_steps,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)],
        verbose=0,
    )
    model.tft_layer = tft_output.transform_features_layer()
    serving_spec = {k: v for k, v in tft_output.raw_feature_spec().items() if k != RAW_LABEL}
    features = DENSE_FLOAT + list(IDENTITY) + VOCAB

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        transformed = model.tft_layer(tf.io.parse_example(examples, serving_spec))
        return {"probability": model({k: transformed[k] for k in features})}

    tf.saved_model.save(model, fn_args.serving_model_dir, signatures={"serving_default": serve})
