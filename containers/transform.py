"""transform: the user's `preprocessing_fn` on tf.Transform + Beam, analyzed on `train` only.

Outputs follow TFX's Transform layout so TFX-era code reads them unchanged:
`transform_graph/{transform_fn,transformed_metadata,metadata}` (the last one is the raw schema,
which `WriteTransformFn` does not write) and `transformed_examples/Split-<split>/*.gz`.

On the in-process runner only the analyzers run on Beam (`AnalyzeDataset`); the apply phase
(transformed examples for each split) runs outside Beam, shard by shard in worker processes,
with tf.Transform's own pieces (the TFXIO decoder and TensorAdapter, the saved graph's loader,
the tensor-to-Arrow converter, the Arrow-to-tf.Example encoder): the in-process runner keeps
whole PCollections between fused stages, so its memory grew with the rows, and it ran on one
core. A remote runner keeps tf.Transform's own `TransformDataset`.
"""

from __future__ import annotations

import contextlib
import glob
import math
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


# Rows per batch of the apply phase: what one worker holds at a time (raw, tensors, encoded).
APPLY_BATCH = 4096


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
    # The in-process runner: each input shard gives its own output shards (at least MIN_SHARDS
    # per split, so a multi-worker trainer's FILE sharding gives every worker its own); a
    # remote runner's bundles are its own.
    inputs = {} if remote else {s: sorted(glob.glob(patterns[s])) for s in SPLITS}

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
            if remote:
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
                for split, data in (("train", train_data), ("eval", eval_data)):
                    _ = (
                        data
                        | f"Encode{split}" >> beam.FlatMap(encode, split)
                        | f"Write{split}"
                        >> beam.io.WriteToTFRecord(
                            os.path.join(split_dir(examples_tmp, split), "transformed_examples"),
                            file_name_suffix=".gz",
                            compression_type=CompressionTypes.GZIP,
                        )
                    )
            else:
                transform_fn = (
                    pipeline | "Readtrain" >> sources["train"].BeamSource(),
                    sources["train"].TensorAdapterConfig(),
                ) | "Analyze" >> tft_beam.AnalyzeDataset(preprocessing_fn)
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(graph_tmp)
        result = pipeline.result
        # WriteTransformFn keeps only the transformed schema; readers of raw examples need this.
        metadata_io.write_metadata(
            dataset_metadata.DatasetMetadata(raw_schema), os.path.join(graph_tmp, "metadata")
        )
        if remote:
            counts = {}
            for split in SPLITS:
                found = result.metrics().query(
                    beam.metrics.MetricsFilter().with_name(f"{split}_rows")
                )
                counts[split] = int(sum(c.committed or 0 for c in found["counters"]))
        else:
            counts = apply_graph(
                graph_tmp,
                inputs,
                examples_tmp,
                raw_schema,
                module_file=module_file,
                workers=_apply_workers(options, total_rows),
                progress=progress,
            )
        manifest.write(examples_tmp, counts)
    events.result(
        "transform",
        "wrote %s",
        ", ".join(f"{k}={v}" for k, v in counts.items()),
        summary="rows " + events.figures(counts),
        rows=counts,
    )
    return TransformResult(rows=counts)


def _apply_workers(options, rows: int | None) -> int:
    """Processes for the apply phase: the Beam worker count the options give (the user's own
    `--direct_num_workers`, else the pod's limits as beam_options set them)."""
    from apache_beam.options.pipeline_options import DirectOptions

    from tfkfp.containers.store import pod_limits

    given = options.view_as(DirectOptions).direct_num_workers
    # 0 is Beam's "one per core of the node": the pod's own limits instead (tfx#1376).
    return given if given and given > 0 else pod_limits.workers(rows=rows)


def apply_graph(
    transform_graph: str,
    inputs: dict[str, list[str]],
    transformed_examples: str,
    raw_schema,
    module_file: str = "",
    workers: int = 1,
    progress: events.Progress | None = None,
) -> dict[str, int]:
    """Writes each split's transformed examples with a saved transform graph, shard by shard.

    One task per input shard, writing its own output shard(s) (several when a split has fewer
    than MIN_SHARDS inputs, batches dealt among them), in `workers` processes; each holds one
    batch of APPLY_BATCH rows at a time, so memory does not grow with the rows.

    Args:
        transform_graph: The folder WriteTransformFn wrote (TFTransformOutput's layout).
        inputs: {split: its raw example files (gzip TFRecords)}.
        transformed_examples: Where `Split-<split>/transformed_examples-*.gz` go.
        raw_schema: The raw examples' Schema proto.
        module_file: The user's module, imported in each worker process first (ops it registers,
            e.g. tensorflow_text's, are needed to load the graph).
        workers: Processes to run; 1 runs in this process.
        progress: Rows transformed are added to it.

    Returns:
        Transformed rows per split.
    """
    tasks = []
    for split, files in inputs.items():
        folder = split_dir(transformed_examples, split)
        os.makedirs(folder, exist_ok=True)
        per = math.ceil(MIN_SHARDS / len(files)) if files else 0
        total = per * len(files)
        for i, source in enumerate(files):
            targets = [
                os.path.join(folder, f"transformed_examples-{i * per + j:05d}-of-{total:05d}.gz")
                for j in range(per)
            ]
            tasks.append((split, source, targets))
    schema_bytes = raw_schema.SerializeToString()
    counts = dict.fromkeys(inputs, 0)
    workers = max(1, min(workers, len(tasks)))

    def done(split: str, rows: int) -> None:
        counts[split] += rows

    if workers == 1:
        for split, source, targets in tasks:
            done(split, _apply_shard(transform_graph, schema_bytes, source, targets, progress))
        return counts
    import concurrent.futures
    import multiprocessing

    log.info("transform: applying the graph to %d shard(s) in %d processes", len(tasks), workers)
    # spawn: this process has TensorFlow loaded (and its threads); a fork of it is not safe.
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        # The Keras flavour this process chose (select_keras): the graph loads the same way.
        initargs=(module_file, os.environ.get("TF_USE_LEGACY_KERAS", "1") == "1"),
    ) as pool:
        futures = {
            pool.submit(_apply_shard, transform_graph, schema_bytes, source, targets): split
            for split, source, targets in tasks
        }
        for future in concurrent.futures.as_completed(futures):
            rows = future.result()
            done(futures[future], rows)
            if progress is not None:
                progress.add(rows)
    return counts


def _init_worker(module_file: str, legacy_keras: bool) -> None:
    """An apply worker's start: the parent's Keras flavour, then the user's module."""
    select_keras("tf_keras" if legacy_keras else "keras3")
    if module_file:
        user_module.load_function(module_file, "preprocessing_fn")


# One apply worker's loaded graph and converters, by transform graph folder (loading is seconds).
_LOADED: dict[tuple[str, bytes], tuple] = {}


def _loaded(transform_graph: str, schema_bytes: bytes) -> tuple:
    """(TFXIO maker, TensorAdapter, graph loader, tensor-to-Arrow converter) for a graph."""
    key = (transform_graph, schema_bytes)
    if key not in _LOADED:
        import tensorflow_transform as tft
        from tensorflow_metadata.proto.v0 import schema_pb2
        from tensorflow_transform import impl_helper
        from tensorflow_transform.saved import saved_transform_io_v2
        from tfx_bsl.public import tfxio
        from tfx_bsl.tfxio.tensor_adapter import TensorAdapter

        schema = schema_pb2.Schema.FromString(schema_bytes)

        def source(pattern: str):
            return tfxio.TFExampleRecord(file_pattern=pattern, schema=schema)

        config = source("unused").TensorAdapterConfig()
        output = tft.TFTransformOutput(transform_graph)
        # What tf.Transform's own TransformDataset does per batch (beam/impl.py _GraphStateV2).
        loader = saved_transform_io_v2.SavedModelLoader(output.transform_savedmodel_dir)
        loader.finalize(set(config.tensor_representations), set(loader.structured_outputs.keys()))
        converter = impl_helper.make_tensor_to_arrow_converter(output.transformed_metadata.schema)
        _LOADED[key] = (source, TensorAdapter(config), loader, converter)
    return _LOADED[key]


def _apply_shard(
    transform_graph: str,
    schema_bytes: bytes,
    source: str,
    targets: list[str],
    progress: events.Progress | None = None,
) -> int:
    """Transforms one input shard into `targets` (batches dealt in turn); returns its rows."""
    import tensorflow as tf
    from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder
    from tfx_bsl.public.tfxio import RecordBatchesOptions

    make_source, adapter, loader, converter = _loaded(transform_graph, schema_bytes)
    encoder = RecordBatchToExamplesEncoder()
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    writers = [tf.io.TFRecordWriter(t, options) for t in targets]
    rows = 0
    try:
        batches = make_source(source).RecordBatches(
            RecordBatchesOptions(batch_size=APPLY_BATCH, shuffle=False, num_epochs=1)
        )
        for i, batch in enumerate(batches):
            outputs = loader.apply_transform_model(
                adapter.ToBatchTensors(batch, produce_eager_tensors=True)
            )
            writer = writers[i % len(writers)]
            for example in encoder.encode(converter.convert(outputs)):
                writer.write(example)
            rows += batch.num_rows
            if progress is not None:
                progress.add(batch.num_rows)
    finally:
        for writer in writers:
            writer.close()
    return rows
