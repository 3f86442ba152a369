"""Baselines: tf.Transform and TFMA called directly, the way a user would without tfkfp.

Run in a fresh process by bench.scale so both sides pay the same imports:

    python -m bench.direct transform EXAMPLES_DIR SCHEMA_DIR MODULE OUT_DIR [beam args...]
    python -m bench.direct evaluate MODEL_DIR EXAMPLES_DIR CONFIG_JSON OUT_DIR [beam args...]
"""

from __future__ import annotations

import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

# The same in-process runner tfkfp names, so the comparison measures tfkfp's overhead and not
# Beam 2.77's Prism download attempt (which a default DirectRunner makes first).
IN_PROCESS = "--runner=apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def transform(examples: str, schema_dir: str, module: str, out: str, beam_args: list[str]) -> None:
    """AnalyzeAndTransformDataset on train, TransformDataset on eval, both written as TFRecords."""
    import importlib
    import tempfile

    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder
    from tfx_bsl.public import tfxio

    with open(os.path.join(schema_dir, "schema.pbtxt")) as fh:
        schema = text_format.Parse(fh.read(), schema_pb2.Schema())
    preprocessing_fn = importlib.import_module(module).preprocessing_fn
    source = {
        s: tfxio.TFExampleRecord(os.path.join(examples, f"Split-{s}", "*.gz"), schema=schema)
        for s in ("train", "eval")
    }
    with (
        beam.Pipeline(options=PipelineOptions(beam_args)) as p,
        tft_beam.Context(temp_dir=tempfile.mkdtemp()),
    ):
        raw = {s: p | f"Read{s}" >> source[s].BeamSource() for s in source}
        (train, _), fn = (raw["train"], source["train"].TensorAdapterConfig()) | (
            tft_beam.AnalyzeAndTransformDataset(preprocessing_fn, output_record_batches=True)
        )
        evaluation, _ = ((raw["eval"], source["eval"].TensorAdapterConfig()), fn) | (
            tft_beam.TransformDataset(output_record_batches=True)
        )
        _ = fn | tft_beam.WriteTransformFn(os.path.join(out, "graph"))
        for split, data in (("train", train), ("eval", evaluation)):
            _ = (
                data
                | f"Encode{split}"
                >> beam.FlatMap(lambda b: RecordBatchToExamplesEncoder().encode(b[0]))
                | f"Write{split}"
                >> beam.io.WriteToTFRecord(os.path.join(out, split, "part"), file_name_suffix=".gz")
            )


def evaluate(model: str, examples: str, config_json: str, out: str, beam_args: list[str]) -> None:
    """One run_model_analysis over the eval split, then the validation result read back."""
    import tensorflow_model_analysis as tfma
    from apache_beam.options.pipeline_options import PipelineOptions
    from google.protobuf import json_format
    from tensorflow_model_analysis.proto import config_pb2

    config = json_format.Parse(config_json, config_pb2.EvalConfig())
    tfma.run_model_analysis(
        eval_shared_model=tfma.default_eval_shared_model(model, eval_config=config),
        eval_config=config,
        data_location=os.path.join(examples, "Split-eval", "*.gz"),
        output_path=out,
        pipeline_options=PipelineOptions(beam_args),
    )
    tfma.load_validation_result(out)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    fixed, beam_args = args[:4], [IN_PROCESS, *args[4:]]
    {"transform": transform, "evaluate": evaluate}[command](*fixed, beam_args)
