"""Digits pipeline: images as fixed-length lists, a CNN, TFLite, both models evaluated, both pushed."""

import os

from kfp import dsl

from tfkfp.components import evaluator, infra_validate, pusher, tflite, trainer
from tfkfp.pipelines.steps import checked_examples, stop_on_anomalies


def _eval_config(lower_bound: float) -> dict:
    """TFMA EvalConfig: overall accuracy at least `lower_bound`; the label is a raw column."""
    return {
        "model_specs": [{"signature_name": "serving_default", "label_key": "image_class"}],
        "slicing_specs": [{}],
        "metrics_specs": [
            {
                "metrics": [
                    {"class_name": "ExampleCount"},
                    {
                        "class_name": "SparseCategoricalAccuracy",
                        "per_slice_thresholds": [
                            {
                                "slicing_specs": [{}],
                                "threshold": {"value_threshold": {"lower_bound": lower_bound}},
                            }
                        ],
                    },
                ]
            }
        ],
    }


# The same bar for both: the TFLite model is the one the app runs. The evaluator sets TFMA's
# model_type tf_lite itself for a TFLite model.
EVAL_CONFIG = _eval_config(0.9)
TFLITE_EVAL_CONFIG = _eval_config(0.9)


@dsl.pipeline(
    name="mnist",
    description="8x8 digits: a CNN on fixed-length pixel lists, TFLite, both evaluated and pushed.",
)
def mnist(
    data_uri: str,
    push_destination: str,
    module_file: str = "tfkfp.pipelines.mnist.module",
    train_steps: int = 300,
    eval_steps: int = 5,
    eval_config: dict = EVAL_CONFIG,
    tflite_eval_config: dict = TFLITE_EVAL_CONFIG,
    beam_pipeline_args: list = [],
    schema_uri: str = "",
    previous_statistics_uri: str = "",
    train_fraction: float = 0.75,
    keras: str = "tf_keras",
):
    """Trains a CNN, converts it to TFLite, evaluates both and pushes both when both pass.

    Args:
        data_uri: Parquet or TFRecord of tf.Example with `image_floats` (64 floats per row)
            and `image_class` (a gs://, s3:// or /gcs/ path on a cluster).
        push_destination: Serving folder, gs:// or s3://bucket/path; versions go below it,
            each with `model.tflite` beside the SavedModel.
        module_file: Path, gs:// or s3:// URI or dotted module name with run_fn.
        train_steps: Training steps.
        eval_steps: Validation steps during training.
        eval_config: TFMA EvalConfig of the SavedModel (config_pb2 JSON form).
        tflite_eval_config: TFMA EvalConfig of the TFLite model.
        beam_pipeline_args: Beam options for the evaluators.
        schema_uri: A curated schema.pbtxt the data must match (empty: inferred).
        previous_statistics_uri: Statistics of an earlier run, for drift (empty: none).
        train_fraction: Share of rows ingest hashes into train, the rest into eval (TFX's
            default 2:1 split is 0.667).
        keras: tf_keras or keras3.
    """
    examples, checked = checked_examples(
        data_uri, schema_uri, previous_statistics_uri, train_fraction
    )
    with dsl.If(checked.outputs["valid"] == True):  # noqa: E712 (compiles to a CEL condition)
        trained = trainer(
            examples=examples.outputs["examples"],
            schema=examples.outputs["schema"],
            module_file=module_file,
            train_steps=train_steps,
            eval_steps=eval_steps,
            keras=keras,
        )
        model = trained.outputs["model"]
        evaluated = evaluator(
            model=model,
            examples=examples.outputs["examples"],
            schema=examples.outputs["schema"],
            eval_config=eval_config,
            baseline_from=push_destination,
            beam_pipeline_args=beam_pipeline_args,
        )
        # The raw-pixel signature with TFLite's builtins only: no Flex delegate in the app.
        converted = tflite(
            model=model, examples=examples.outputs["examples"], signature_name="serving_raw"
        )
        lite = converted.outputs["tflite_model"]
        lite_evaluated = evaluator(
            model=lite,
            examples=examples.outputs["examples"],
            schema=examples.outputs["schema"],
            eval_config=tflite_eval_config,
            beam_pipeline_args=beam_pipeline_args,
        ).set_display_name("evaluator (TFLite)")
        with dsl.If(evaluated.outputs["blessed"] == True):  # noqa: E712
            with dsl.If(lite_evaluated.outputs["blessed"] == True):  # noqa: E712
                infra = infra_validate(model=model, examples=examples.outputs["examples"])
                with dsl.If(infra.outputs["blessed"] == True):  # noqa: E712
                    pusher(
                        model=model,
                        blessing=evaluated.outputs["blessing"],
                        infra_blessing=infra.outputs["blessing"],
                        tflite_model=lite,
                        push_format="both",
                        destination=push_destination,
                        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                        run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                        pipeline_name="mnist",
                    )
    with dsl.Else():
        stop_on_anomalies(checked)


def local_arguments() -> dict:
    """What `tfkfp run mnist --local` uses unless told otherwise: the bundled digits, ./serving."""
    from importlib import resources

    data = resources.files("tfkfp.pipelines.mnist") / "data" / "digits.parquet"
    return {"data_uri": str(data), "push_destination": os.path.abspath("serving/mnist")}
