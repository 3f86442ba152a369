"""Penguin species: the canonical tfkfp module file (works unchanged with TFX's Trainer).

`preprocessing_fn` runs in tf.Transform; `run_fn` in the trainer. Neither imports tfkfp.
"""

import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
LABEL = "species"
OOV = 1


def _dense(x, default):
    """[batch, 1] dense tensor; a VarLen (sometimes missing) feature arrives as a SparseTensor."""
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default
        )
    return x


def preprocessing_fn(inputs):
    """Z-scores numerics (missing -> the mean), vocabularies for strings, species -> id."""
    outputs = {}
    for key in NUMERIC:
        value = inputs[key]
        if isinstance(value, tf.sparse.SparseTensor):
            value = tf.SparseTensor(
                value.indices, tf.cast(value.values, tf.float32), value.dense_shape
            )
        else:
            value = tf.cast(value, tf.float32)
        # scale_to_z_score keeps sparsity; a missing value then becomes 0, the mean.
        outputs[key] = _dense(tft.scale_to_z_score(value), 0.0)
    for key in CATEGORICAL:
        outputs[key] = tft.compute_and_apply_vocabulary(
            _dense(inputs[key], ""), num_oov_buckets=OOV, vocab_filename=key
        )
    outputs[LABEL] = tft.compute_and_apply_vocabulary(
        _dense(inputs[LABEL], ""), vocab_filename=LABEL
    )
    return outputs


def dataset(fn_args, files, tft_output, batch_size):
    return fn_args.data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL),
        tft_output.transformed_metadata.schema,
    )


def build_model(tft_output, hidden_units, learning_rate):
    keras = tf.keras
    inputs, encoded = {}, []
    for key in NUMERIC:
        inputs[key] = keras.Input(shape=(1,), name=key, dtype=tf.float32)
        encoded.append(inputs[key])
    for key in CATEGORICAL:
        inputs[key] = keras.Input(shape=(1,), name=key, dtype=tf.int64)
        depth = tft_output.vocabulary_size_by_name(key) + OOV
        encoded.append(
            keras.layers.CategoryEncoding(num_tokens=depth, output_mode="one_hot")(inputs[key])
        )
    x = keras.layers.Concatenate()(encoded)
    for units in hidden_units:
        x = keras.layers.Dense(units, activation="relu")(x)
    n_classes = tft_output.vocabulary_size_by_name(LABEL)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def _export(model, tft_output, serving_model_dir):
    """serving_default: serialized raw tf.Examples (`examples`) -> class probabilities."""
    # Keeping the layer on the model makes the SavedModel track the transform graph's assets.
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    serving_spec = {k: v for k, v in raw_spec.items() if k != LABEL}
    features = NUMERIC + CATEGORICAL

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
    """Trains a small DNN on the transformed examples and exports a raw-example signature."""
    hp = fn_args.hyperparameters or {}
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    batch_size = int(hp.get("batch_size", 32))
    train = dataset(fn_args, fn_args.train_files, tft_output, batch_size)
    evaluation = dataset(fn_args, fn_args.eval_files, tft_output, batch_size)
    model = build_model(
        tft_output, hp.get("hidden_units", [16, 8]), float(hp.get("learning_rate", 0.01))
    )
    if fn_args.base_model:
        # Warm start from the weights only: the base model's optimizer state (its learning
        # rate included) must not override this run's hyperparameters.
        base = tf.saved_model.load(fn_args.base_model).trainable_variables
        if [v.shape for v in base] != [v.shape for v in model.trainable_variables]:
            raise ValueError(f"base_model {fn_args.base_model} has another architecture")
        for variable, value in zip(model.trainable_variables, base, strict=True):
            variable.assign(value)
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
