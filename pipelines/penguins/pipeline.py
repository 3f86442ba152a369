"""Penguin species pipeline: checked data, transform, trainer, evaluator, a gated pusher."""

import os

from kfp import dsl

from tfkfp.components import evaluator, trainer, transform
from tfkfp.pipelines.steps import (
    checked_examples,
    checked_push,
    stop_on_anomalies,
    transformed_inputs,
)

# TFMA EvalConfig (config_pb2 JSON). The label is computed by preprocessing_fn, so TFMA gets it
# from the model's transform_features signature. The threshold gates the overall slice only:
# per-island slices are reported, not gated (a spec-wide threshold would apply to every slice).
# The change threshold compares with the newest model pushed before (`baseline_from`): a
# retrained model may not lose more than 5 points of accuracy; on a first run it is skipped.
EVAL_CONFIG = {
    "model_specs": [
        {
            "signature_name": "serving_default",
            "label_key": "species",
            "preprocessing_function_names": ["transform_features"],
        }
    ],
    "slicing_specs": [{}, {"feature_keys": ["island"]}],
    "metrics_specs": [
        {
            "metrics": [
                {"class_name": "ExampleCount"},
                {
                    "class_name": "SparseCategoricalAccuracy",
                    "per_slice_thresholds": [
                        {
                            "slicing_specs": [{}],
                            "threshold": {
                                "value_threshold": {"lower_bound": 0.8},
                                "change_threshold": {
                                    "direction": "HIGHER_IS_BETTER",
                                    "absolute": -0.05,
                                },
                            },
                        }
                    ],
                },
            ]
        }
    ],
}


@dsl.pipeline(
    name="penguins",
    description="Palmer penguins species classifier: tf.Transform, Keras, TFMA, push.",
)
def penguins(
    data_uri: str,
    push_destination: str,
    module_file: str = "tfkfp.pipelines.penguins.module",
    train_steps: int = 200,
    eval_steps: int = 10,
    eval_config: dict = EVAL_CONFIG,
    beam_pipeline_args: list = [],
    schema_uri: str = "",
    previous_statistics_uri: str = "",
    train_fraction: float = 0.75,
    keras: str = "tf_keras",
    push_tflite: bool = False,
):
    """Trains, evaluates and (when blessed and infra-validated) pushes a penguin species model.

    Args:
        data_uri: CSV file or folder (a gs://, s3:// or /gcs/ path on a cluster).
        push_destination: Serving folder, gs:// or s3://bucket/path; versions go below it.
        module_file: Path, gs:// or s3:// URI or dotted module name with preprocessing_fn and
            run_fn.
        train_steps: Training steps.
        eval_steps: Validation steps during training.
        eval_config: TFMA EvalConfig (config_pb2 JSON form).
        beam_pipeline_args: Beam options for transform and evaluator.
        schema_uri: A curated schema.pbtxt the data must match (empty: inferred).
        previous_statistics_uri: Statistics of an earlier run, for drift (empty: none).
        train_fraction: Share of rows ingest hashes into train, the rest into eval (TFX's
            default 2:1 split is 0.667).
        keras: tf_keras or keras3.
        push_tflite: Also convert the model to TFLite (with TensorFlow ops: the app needs
            the Flex delegate) and push `model.tflite` beside the SavedModel.
    """
    examples, checked = checked_examples(
        data_uri, schema_uri, previous_statistics_uri, train_fraction
    )
    # Anomalies stop the run before any training: a failed task says so in one line, the
    # validate task's Markdown report lists them.
    with dsl.If(checked.outputs["valid"] == True):  # noqa: E712 (compiles to a CEL condition)
        transformed = transform(
            examples=examples.outputs["examples"],
            schema=examples.outputs["schema"],
            module_file=module_file,
            beam_pipeline_args=beam_pipeline_args,
        )
        trained = trainer(
            **transformed_inputs(examples, transformed),
            module_file=module_file,
            train_steps=train_steps,
            eval_steps=eval_steps,
            keras=keras,
        )
        evaluated = evaluator(
            model=trained.outputs["model"],
            examples=examples.outputs["examples"],
            schema=examples.outputs["schema"],
            eval_config=eval_config,
            baseline_from=push_destination,
            beam_pipeline_args=beam_pipeline_args,
        )
        checked_push(
            "penguins",
            model=trained.outputs["model"],
            examples=examples.outputs["examples"],
            evaluated=evaluated,
            destination=push_destination,
            push_tflite=push_tflite,
        )
    with dsl.Else():
        stop_on_anomalies(checked)


def local_arguments() -> dict:
    """What `tfkfp run penguins --local` uses unless told otherwise: the bundled CSV, ./serving."""
    from importlib import resources

    data = resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv"
    return {"data_uri": str(data), "push_destination": os.path.abspath("serving/penguins")}
