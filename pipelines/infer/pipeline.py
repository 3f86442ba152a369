"""Batch inference (TFX's BulkInferrer): the newest pushed model over the data at data_uri."""

import os

from kfp import dsl

from tfkfp.components import fingerprint, infer


@dsl.pipeline(
    name="infer",
    description="Batch inference with the newest pushed model: PredictionLogs and Parquet.",
)
def batch_infer(
    data_uri: str,
    model_from: str,
    input_format: str = "auto",
    parquet: bool = True,
    signature_name: str = "serving_default",
    beam_pipeline_args: list = [],
):
    """Runs the newest complete version under model_from over the data at data_uri.

    Args:
        data_uri: CSV, TFRecord or Parquet file, folder or glob (local, gs://, s3://).
        model_from: Push destination (folder, gs:// or s3://); its newest complete version runs.
        input_format: auto, csv, tfrecord or parquet.
        parquet: Also write Parquet: the input columns beside the model's outputs.
        signature_name: Signature taking serialized tf.Examples.
        beam_pipeline_args: Beam options (DirectRunner by default).
    """
    # Never cached: new data at the same data_uri must give new predictions.
    data = fingerprint(data_uri=data_uri).set_caching_options(False)
    # Not cached either: a newer version pushed to model_from must be the one that runs.
    infer(
        data_uri=data_uri,
        data_fingerprint=data.output,
        model_from=model_from,
        input_format=input_format,
        parquet=parquet,
        signature_name=signature_name,
        beam_pipeline_args=beam_pipeline_args,
    ).set_caching_options(False)


def local_arguments() -> dict:
    """`tfkfp run infer --local`: the bundled penguins over the demo's ./serving/penguins."""
    from importlib import resources

    data = resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv"
    return {"data_uri": str(data), "model_from": os.path.abspath("serving/penguins")}
