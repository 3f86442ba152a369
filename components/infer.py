from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from tfkfp.components.images import CPU_IMAGE

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "BulkInferrer"


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def infer(
    inference_result: Output[Artifact],
    predictions: Output[Dataset],
    model: Input[Model] | None = None,
    model_from: str = "",
    examples: Input[Dataset] | None = None,
    schema: Input[Artifact] | None = None,
    data_uri: str = "",
    data_fingerprint: str = "",
    splits: list = [],
    input_format: str = "auto",
    blessing: Input[Artifact] | None = None,
    signature_name: str = "serving_default",
    parquet: bool = False,
    batch_size: int = 0,
    beam_pipeline_args: list = [],
) -> NamedTuple("Outputs", [("inferred", bool), ("rows", int)]):
    """Batch inference (TFX's BulkInferrer) with Beam's RunInference and its TF model handler.

    Args:
        inference_result: `prediction_logs-*.gz`: PredictionLog TFRecords (TFX's layout).
        predictions: With parquet, `predictions-*.parquet`: each example's features beside
            the model's outputs; empty otherwise.
        model: SavedModel (ours or TFX's Format-Serving layout); wins over model_from.
        model_from: Push destination (folder, gs://, s3://) whose newest complete version is
            the model.
        examples: Examples artifact (ingest's or TFX's Split-<name>/ layout).
        schema: The examples' schema (ingest's), which types the Parquet input columns.
            Without it, a pass over every example types them; with data_uri, the data's
            own schema as ingest infers it.
        data_uri: Instead of examples: any file, folder or glob ingest reads (CSV, TFRecord,
            Parquet), read in this task.
        data_fingerprint: The fingerprint step's hash of the files at data_uri. Not read: as
            an input it makes new data at the same data_uri a new cache key for this task.
        splits: Splits of examples to infer on; empty: all of them.
        input_format: For data_uri: auto, csv, tfrecord or parquet.
        blessing: Evaluator's or infra_validate's blessing; an unblessed model is skipped.
        signature_name: Signature that takes serialized tf.Examples.
        parquet: Also write the predictions output as Parquet.
        batch_size: Largest batch RunInference sends the model; 0: Beam decides.
        beam_pipeline_args: Beam options; DirectRunner by default. A remote runner's workers
            get the artifacts' URIs (gs:// or a shared filesystem).

    Returns:
        inferred: False when skipped (unblessed).
        rows: Examples inferred.
    """
    from collections import namedtuple
    from dataclasses import asdict

    from tfkfp.containers import infer as stage
    from tfkfp.containers.runtime import entrypoint, without_nulls

    result = entrypoint(
        stage.run,
        inference_result=inference_result.path,
        predictions=predictions.path,
        model=model.path if model else None,
        model_from=model_from,
        examples=examples.path if examples else None,
        schema=schema.path if schema else None,
        data_uri=data_uri,
        splits=splits,
        input_format=input_format,
        blessing=blessing.path if blessing else None,
        signature_name=signature_name,
        parquet=parquet,
        batch_size=batch_size,
        beam_pipeline_args=beam_pipeline_args,
        model_uri=model.uri if model else "",
        examples_uri=examples.uri if examples else "",
        inference_result_uri=inference_result.uri,
        predictions_uri=predictions.uri,
    )
    inference_result.metadata.update(without_nulls(asdict(result)))
    if data_fingerprint:
        inference_result.metadata["data_fingerprint"] = data_fingerprint
    return namedtuple("Outputs", ["inferred", "rows"])(result.inferred, result.rows)
