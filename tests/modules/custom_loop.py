"""A run_fn with a custom training loop (GradientTape, strategy.run), TFX style.

Like TFX's examples it creates its own `tf.distribute.MirroredStrategy()` and distributes the
dataset with it; the loss is averaged over the global batch as tf.distribute asks.
"""

import json
import os

import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
LABEL = "species"
GLOBAL_BATCH = 16


def run_fn(fn_args):
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    dataset = fn_args.data_accessor.tf_dataset_factory(
        fn_args.train_files,
        tfxio.TensorFlowDatasetOptions(batch_size=GLOBAL_BATCH, label_key=LABEL),
        tft_output.transformed_metadata.schema,
    ).repeat()
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        model = tf.keras.Sequential(
            [tf.keras.layers.Dense(8, activation="relu"), tf.keras.layers.Dense(3)]
        )
        model.build((None, len(FEATURES)))
        optimizer = tf.keras.optimizers.Adam(0.01)
        loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.NONE
        )

    def step(features, label):
        x = tf.concat([tf.cast(features[k], tf.float32) for k in FEATURES], axis=1)
        with tf.GradientTape() as tape:
            per_example = loss_fn(label, model(x, training=True))
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    @tf.function
    def train_step(features, label):
        losses = strategy.run(step, args=(features, label))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    batches = iter(strategy.experimental_distribute_dataset(dataset))
    losses = [float(train_step(*next(batches))) for _ in range(fn_args.train_steps or 10)]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(examples):
        spec = {k: v for k, v in tft_output.raw_feature_spec().items() if k != LABEL}
        transformed = model.tft_layer(tf.io.parse_example(examples, spec))
        x = tf.concat([tf.cast(transformed[k], tf.float32) for k in FEATURES], axis=1)
        return {"logits": model(x)}

    model.tft_layer = tft_output.transform_features_layer()
    tf.saved_model.save(model, fn_args.serving_model_dir, signatures={"serving_default": serve})
    with open(os.path.join(fn_args.model_run_dir, "seen.json"), "w") as fh:
        json.dump(
            {
                "losses": losses,
                "strategy": type(strategy).__name__,
                "replicas": strategy.num_replicas_in_sync,
                "is_trainer_strategy": strategy is fn_args.strategy,
            },
            fh,
        )
