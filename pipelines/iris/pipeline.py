"""Iris pipeline without Transform: checked data, trainer on raw examples, evaluator, pusher."""

import os

from kfp import dsl

from tfkfp.components import evaluator, trainer
from tfkfp.pipelines.steps import checked_examples, checked_push, stop_on_anomalies

# TFMA EvalConfig (config_pb2 JSON). The label is a raw column, so TFMA reads it from the eval
# examples as they are (no transform_features signature). The threshold gates the overall slice.
EVAL_CONFIG = {
    "model_specs": [{"signature_name": "serving_default", "label_key": "variety"}],
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
                            "threshold": {"value_threshold": {"lower_bound": 0.8}},
                        }
                    ],
                },
            ]
        }
    ],
}


@dsl.pipeline(
    name="iris",
    description="Iris classifier without Transform: Keras on raw examples, TFMA, push.",
)
def iris(
    data_uri: str,
    push_destination: str,
    module_file: str = "tfkfp.pipelines.iris.module",
    train_steps: int = 200,
    eval_steps: int = 5,
    eval_config: dict = EVAL_CONFIG,
    beam_pipeline_args: list = [],
    schema_uri: str = "",
    previous_statistics_uri: str = "",
    train_fraction: float = 0.75,
    keras: str = "tf_keras",
):
    """Trains on raw examples with the schema, evaluates and (when blessed) pushes.

    Args:
        data_uri: CSV file or folder (a gs://, s3:// or /gcs/ path on a cluster).
        push_destination: Serving folder, gs:// or s3://bucket/path; versions go below it.
        module_file: Path, gs:// or s3:// URI or dotted module name with run_fn (no
            preprocessing_fn: there is no Transform).
        train_steps: Training steps.
        eval_steps: Validation steps during training.
        eval_config: TFMA EvalConfig (config_pb2 JSON form).
        beam_pipeline_args: Beam options for the evaluator.
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
        # No transform_graph: run_fn reads the raw examples with the raw schema.
        trained = trainer(
            examples=examples.outputs["examples"],
            schema=examples.outputs["schema"],
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
            beam_pipeline_args=beam_pipeline_args,
        )
        checked_push(
            "iris",
            model=trained.outputs["model"],
            examples=examples.outputs["examples"],
            evaluated=evaluated,
            destination=push_destination,
        )
    with dsl.Else():
        stop_on_anomalies(checked)


def local_arguments() -> dict:
    """What `tfkfp run iris --local` uses unless told otherwise: the bundled CSV, ./serving."""
    from importlib import resources

    data = resources.files("tfkfp.pipelines.iris") / "data" / "iris.csv"
    return {"data_uri": str(data), "push_destination": os.path.abspath("serving/iris")}
