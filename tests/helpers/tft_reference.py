"""tf.Transform's own apply phase, for comparison: `TransformDataset` on Beam with a saved graph."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile


def transform_dataset(graph: str, examples: str, schema: str, splits=("train", "eval")) -> dict:
    """{split: serialized transformed tf.Examples} as tf.Transform's TransformDataset writes them.

    The graph is read back with `ReadTransformFn` (the same analyzed graph the stage applied);
    each split is read with the same TFXIO source and encoded with the same encoder the stage's
    remote-runner path uses.
    """
    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_transform.beam as tft_beam
    from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder
    from tfx_bsl.public import tfxio

    from tfkfp.containers.store.beam import IN_PROCESS_RUNNER
    from tfkfp.containers.store.layout import load_schema, split_pattern

    raw_schema = load_schema(schema)
    out = tempfile.mkdtemp(prefix="tfkfp-tft-reference-")
    with (
        beam.Pipeline(runner=IN_PROCESS_RUNNER) as pipeline,
        tft_beam.Context(temp_dir=os.path.join(out, "tmp")),
    ):
        transform_fn = pipeline | tft_beam.ReadTransformFn(graph)
        for split in splits:
            source = tfxio.TFExampleRecord(
                file_pattern=split_pattern(examples, split), schema=raw_schema
            )
            data, _ = (
                (pipeline | f"Read{split}" >> source.BeamSource(), source.TensorAdapterConfig()),
                transform_fn,
            ) | f"Transform{split}" >> tft_beam.TransformDataset(output_record_batches=True)
            _ = (
                data
                | f"Encode{split}"
                >> beam.FlatMap(lambda b: RecordBatchToExamplesEncoder().encode(b[0]))
                | f"Write{split}" >> beam.io.WriteToTFRecord(os.path.join(out, split))
            )
    found = {}
    for split in splits:
        files = sorted(glob.glob(os.path.join(out, f"{split}-*")))
        found[split] = [r.numpy() for r in tf.data.TFRecordDataset(files)]
    shutil.rmtree(out, ignore_errors=True)
    return found


def written(examples: str, splits=("train", "eval")) -> dict:
    """{split: serialized tf.Examples} of a transformed_examples artifact."""
    import tensorflow as tf

    from tfkfp.containers.store.layout import split_pattern

    return {
        s: [
            r.numpy()
            for r in tf.data.TFRecordDataset(sorted(glob.glob(split_pattern(examples, s))), "GZIP")
        ]
        for s in splits
    }


def canonical(records: list[bytes]) -> list[tuple]:
    """Examples as sorted, hashable tuples of (feature, kind, values' exact bytes).

    Floats are compared by their float32 bit patterns: exact, NaN included.
    """
    import numpy as np
    import tensorflow as tf

    rows = []
    for record in records:
        example = tf.train.Example.FromString(record)
        row = []
        for name in sorted(example.features.feature):
            feature = example.features.feature[name]
            kind = feature.WhichOneof("kind")
            if kind == "float_list":
                value = np.asarray(feature.float_list.value, np.float32).tobytes()
            elif kind == "int64_list":
                value = tuple(feature.int64_list.value)
            elif kind == "bytes_list":
                value = tuple(feature.bytes_list.value)
            else:
                value = None
            row.append((name, kind, value))
        rows.append(tuple(row))
    return sorted(rows)
