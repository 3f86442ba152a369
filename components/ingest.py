from kfp import dsl
from kfp.dsl import Artifact, Dataset, Output

from tfkfp.components.images import CPU_IMAGE

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "CsvExampleGen, SchemaGen, ImportSchemaGen"


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def ingest(
    data_uri: str,
    examples: Output[Dataset],
    schema: Output[Artifact],
    train_fraction: float = 0.75,
    input_format: str = "auto",
    data_fingerprint: str = "",
    schema_uri: str = "",
    delimiter: str = "",
):
    """CSV, TFRecord of tf.Example or Parquet -> gzip TFRecord splits train/eval and schema.pbtxt.

    Args:
        data_uri: A file, folder or glob of CSV (header row), TFRecord or Parquet files: a local
            or KFP-mounted path, gs:// or s3://.
        examples: `Split-train/` and `Split-eval/` of gzip TFRecords of tf.Example.
        schema: `schema.pbtxt` (tensorflow_metadata), inferred TFX-style.
        train_fraction: Share of rows hashed into train.
        input_format: auto (by file suffix), csv, tfrecord or parquet.
        data_fingerprint: The fingerprint step's hash of the files at data_uri. Not read: as
            an input it makes new data at the same data_uri a new cache key for this task.
        schema_uri: A curated schema.pbtxt (local, KFP mount, gs://, s3://) that the data must
            match; it becomes the schema output. Empty: inferred.
        delimiter: The CSV field delimiter (one character; `\\t` or `tab` for tab). Empty:
            detected per file (tab for .tsv, else the one of `,` `;` tab that splits the
            header into the most columns).
    """
    import json

    from tfkfp.containers import ingest as stage
    from tfkfp.containers.runtime import entrypoint

    counts = entrypoint(
        stage.run,
        data_uri=data_uri,
        examples=examples.path,
        schema=schema.path,
        train_fraction=train_fraction,
        input_format=input_format,
        schema_uri=schema_uri,
        delimiter=delimiter,
    ).rows
    examples.metadata["split_names"] = json.dumps(list(counts))
    examples.metadata["rows"] = counts
    if data_fingerprint:
        examples.metadata["data_fingerprint"] = data_fingerprint
