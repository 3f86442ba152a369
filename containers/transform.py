"""transform: the user's `preprocessing_fn` on tf.Transform + Beam, analyzed on `train` only.

Outputs follow TFX's Transform layout so TFX-era code reads them unchanged:
`transform_graph/{transform_fn,transformed_metadata,metadata}` (the last one is the raw schema,
which `WriteTransformFn` does not write) and `transformed_examples/Split-<split>/*.gz`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass

from tfkfp.containers import events
from tfkfp.containers.model import user_module
from tfkfp.containers.runtime import log, select_keras
from tfkfp.containers.store import examples as manifest
from tfkfp.containers.store.beam import beam_location, beam_options, runs_remotely
from tfkfp.containers.store.examples import require_split
from tfkfp.containers.store.layout import MIN_SHARDS, SPLITS, load_schema, split_dir, split_pattern
from tfkfp.containers.store.publish import outputs, writing_at

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ("tensorflow", "apache_beam", "tensorflow_transform")


@dataclass(frozen=True)
class TransformResult:
    """What the stage wrote: transformed rows per split."""

    rows: dict[str, int]


def _temp_location(beam_pipeline_args: list[str]) -> str | None:
    for i, arg in enumerate(beam_pipeline_args):
        if arg.startswith("--temp_location="):
            return arg.split("=", 1)[1]
        if arg == "--temp_location" and i + 1 < len(beam_pipeline_args):
            return beam_pipeline_args[i + 1]
    return None


def run(
    examples: str,
    schema: str,
    module_file: str,
    transform_graph: str,
    transformed_examples: str,
    beam_pipeline_args: list[str] | None = None,
    examples_uri: str = "",
    transform_graph_uri: str = "",
    transformed_examples_uri: str = "",
) -> TransformResult:
    """Analyzes `train` with tf.Transform, transforms every split, writes graph and examples.

    Parameters are the component's (documented in tfkfp.components.transform); artifacts
    arrive as local paths, `<artifact>_uri` as their URIs for a remote runner's workers.

    Returns:
        Transformed rows per split.
    """
    select_keras("tf_keras")  # before the user module imports TensorFlow
    beam_pipeline_args = list(beam_pipeline_args or [])
    patterns = {s: require_split(examples, s, "examples") for s in SPLITS}
    raw_schema = load_schema(schema)
    # The inputs are checked; Beam, TensorFlow and tf.Transform load next (seconds).
    log.info(
        "transform: %d raw features; loading the module file %s and tf.Transform",
        len(raw_schema.feature),
        module_file,
    )
    total_rows = manifest.records(examples, SPLITS)
    options = beam_options(beam_pipeline_args, rows=total_rows)
    remote = runs_remotely(options)
    if remote:
        # The workers are elsewhere: they read and write the artifacts' URIs, not pod paths.
        examples_at = beam_location(examples, examples_uri, "examples")
        patterns = {s: split_pattern(examples_at, s) for s in SPLITS}
        graph_out = writing_at(
            beam_location(transform_graph, transform_graph_uri, "transform_graph"),
            "transform_graph",
        )
        examples_out = writing_at(
            beam_location(transformed_examples, transformed_examples_uri, "transformed_examples"),
            "transformed_examples",
        )
    else:  # staged locally with outputs(): both or neither
        graph_out = examples_out = contextlib.nullcontext(None)
    preprocessing_fn = user_module.load_function(module_file, "preprocessing_fn")
    # The in-process runner hands a stage's whole input to a worker as one bundle, and Beam's
    # default writes a file per bundle: one file, which a multi-worker trainer cannot
    # FILE-shard. As many shards as the input has (at least MIN_SHARDS); a remote runner's
    # bundles are its own.
    shards = dict.fromkeys(SPLITS, 0)
    if not remote:
        import glob

        shards = {s: max(MIN_SHARDS, len(glob.glob(patterns[s]))) for s in SPLITS}

    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from apache_beam.io.filesystem import CompressionTypes
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
    from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder
    from tfx_bsl.public import tfxio

    log.info(
        "transform: analyzing train, transforming %s (beam args %s)", SPLITS, beam_pipeline_args
    )
    counters = {s: beam.metrics.Metrics.counter("tfkfp.transform", f"{s}_rows") for s in SPLITS}
    progress = events.Progress(
        "transform",
        "{done}{of_total} rows transformed",
        total=total_rows,
        detail="{done:,} rows transformed",
    )

    def encode(batch_and_passthrough, split):
        batch, _ = batch_and_passthrough
        counters[split].inc(batch.num_rows)
        progress.add(batch.num_rows)
        return RecordBatchToExamplesEncoder().encode(batch)

    staged = contextlib.nullcontext(None) if remote else outputs()
    with staged as out, examples_out as examples_at, graph_out as graph_at:
        examples_tmp = examples_at or out.folder(transformed_examples, "transformed_examples")
        graph_tmp = graph_at or out.folder(transform_graph, "transform_graph")
        # Analyzers write temporary files the workers share; TFX's default place for them.
        temp_dir = _temp_location(beam_pipeline_args) or (
            os.path.join(graph_tmp, ".temp_path")
            if remote
            else tempfile.mkdtemp(prefix="tfkfp-tft-")
        )
        pipeline = beam.Pipeline(options=options)
        with pipeline, tft_beam.Context(temp_dir=temp_dir):
            sources = {
                s: tfxio.TFExampleRecord(file_pattern=patterns[s], schema=raw_schema)
                for s in SPLITS
            }
            raw = {s: pipeline | f"Read{s}" >> sources[s].BeamSource() for s in SPLITS}
            (train_data, _), transform_fn = (
                raw["train"],
                sources["train"].TensorAdapterConfig(),
            ) | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(
                preprocessing_fn, output_record_batches=True
            )
            eval_data, _ = (
                (raw["eval"], sources["eval"].TensorAdapterConfig()),
                transform_fn,
            ) | "TransformEval" >> tft_beam.TransformDataset(output_record_batches=True)
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(graph_tmp)
            for split, data in (("train", train_data), ("eval", eval_data)):
                _ = (
                    data
                    | f"Encode{split}" >> beam.FlatMap(encode, split)
                    | f"Write{split}"
                    >> beam.io.WriteToTFRecord(
                        os.path.join(split_dir(examples_tmp, split), "transformed_examples"),
                        file_name_suffix=".gz",
                        compression_type=CompressionTypes.GZIP,
                        num_shards=shards[split],
                    )
                )
        result = pipeline.result
        # WriteTransformFn keeps only the transformed schema; readers of raw examples need this.
        metadata_io.write_metadata(
            dataset_metadata.DatasetMetadata(raw_schema), os.path.join(graph_tmp, "metadata")
        )
        counts = {}
        for split in SPLITS:
            found = result.metrics().query(beam.metrics.MetricsFilter().with_name(f"{split}_rows"))
            counts[split] = int(sum(c.committed or 0 for c in found["counters"]))
        manifest.write(examples_tmp, counts)
    events.result(
        "transform",
        "wrote %s",
        ", ".join(f"{k}={v}" for k, v in counts.items()),
        summary="rows " + events.figures(counts),
        rows=counts,
    )
    return TransformResult(rows=counts)
