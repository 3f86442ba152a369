"""Chicago taxi pipeline: the advanced example, with the trainer on a GPU when asked."""

import os

from kfp import dsl

from tfkfp.components import evaluator, trainer, transform
from tfkfp.components.images import GPU_IMAGE
from tfkfp.pipelines.steps import (
    checked_examples,
    checked_push,
    stop_on_anomalies,
    transformed_inputs,
)

# TFMA EvalConfig (config_pb2 JSON). The label is computed by preprocessing_fn, so TFMA gets it
# from the model's transform_features signature. Metrics are reported overall and per hour and
# payment type; the AUC threshold gates the overall slice only, because a spec-wide threshold
# applies to every slice and tiny slices (a 1-trip payment type) would block a good model.
# As TFX's taxi pipeline resolves the latest blessed model as its baseline, the change threshold
# compares with the newest model pushed before (`baseline_from`): a retrained model may not lose
# more than 5 points of AUC; on a first run it is skipped.
EVAL_CONFIG = {
    "model_specs": [
        {
            "signature_name": "serving_default",
            "label_key": "big_tipper",
            "preprocessing_function_names": ["transform_features"],
        }
    ],
    "slicing_specs": [
        {},
        {"feature_keys": ["trip_start_hour"]},
        {"feature_keys": ["payment_type"]},
    ],
    "metrics_specs": [
        {
            "metrics": [
                {"class_name": "ExampleCount"},
                {"class_name": "BinaryAccuracy"},
                {"class_name": "Precision"},
                {"class_name": "Recall"},
                {"class_name": "AUCPrecisionRecall"},
                {"class_name": "ConfusionMatrixPlot"},
                {
                    "class_name": "AUC",
                    "per_slice_thresholds": [
                        {
                            "slicing_specs": [{}],
                            "threshold": {
                                "value_threshold": {"lower_bound": 0.7},
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
    name="taxi",
    description="Chicago taxi big-tipper classifier: tf.Transform, wide-and-deep Keras, TFMA, push.",
)
def taxi(
    data_uri: str,
    push_destination: str,
    module_file: str = "tfkfp.pipelines.taxi.module",
    train_steps: int = 300,
    eval_steps: int = 20,
    eval_config: dict = EVAL_CONFIG,
    beam_pipeline_args: list = [],
    schema_uri: str = "",
    previous_statistics_uri: str = "",
    train_fraction: float = 0.75,
    use_gpu: bool = False,
):
    """Trains, evaluates (sliced by hour and payment type), infra-validates, pushes a blessed model.

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
        use_gpu: Train in the GPU image with one nvidia.com/gpu (cluster only).
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
        training = dict(
            **transformed_inputs(examples, transformed),
            module_file=module_file,
            train_steps=train_steps,
            eval_steps=eval_steps,
        )
        # KFP fixes a task's image and resources before it runs, so the choice is two trainer
        # tasks under a condition; dsl.OneOf hands on the model of whichever one ran.
        with dsl.If(use_gpu == False):  # noqa: E712 (compiles to a CEL condition)
            on_cpu = trainer(**training)
        with dsl.Else():
            on_gpu = (
                trainer(**training)
                .set_display_name("trainer (GPU)")
                .set_container_image(GPU_IMAGE)
                .set_accelerator_type("nvidia.com/gpu")
                .set_accelerator_limit(1)
            )
        model = dsl.OneOf(on_cpu.outputs["model"], on_gpu.outputs["model"])
        evaluated = evaluator(
            model=model,
            examples=examples.outputs["examples"],
            schema=examples.outputs["schema"],
            eval_config=eval_config,
            baseline_from=push_destination,
            beam_pipeline_args=beam_pipeline_args,
        )
        checked_push(
            "taxi",
            model=model,
            examples=examples.outputs["examples"],
            evaluated=evaluated,
            destination=push_destination,
        )
    with dsl.Else():
        stop_on_anomalies(checked)


def local_arguments() -> dict:
    """What `tfkfp run taxi --local` uses unless told otherwise: the bundled CSV, ./serving/taxi."""
    from importlib import resources

    data = resources.files("tfkfp.pipelines.taxi") / "data" / "chicago_taxi.csv"
    return {"data_uri": str(data), "push_destination": os.path.abspath("serving/taxi")}
