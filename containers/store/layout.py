"""Where things live inside tfkfp's artifacts and push destinations: the one place for names.

Examples artifact (ingest, transform; TFX's layout)::

    Split-train/*.gz  Split-eval/*.gz  tfkfp_manifest.json

Each split is one or more gzip TFRecord files (shards, `data_tfrecord-00000-of-00004.gz`, ...);
readers take every `*.gz` file of the split's folder, so one-file splits read as before.

Schema artifact: `schema.pbtxt`. Statistics and anomalies: `Split-<split>/FeatureStats.pb`,
`Split-<split>/SchemaDiff.pb`. Blessing artifact: `BLESSED` or `NOT_BLESSED` and
`blessing.json`. Push destination: one folder per integer version, complete once it holds
`PUSHED.json` (written last); `PUSHED.json` and the other BOOKKEEPING files at a version's top
level are tfkfp's, not the model's: a push of a pushed version leaves them out. A TFX model
artifact keeps its SavedModel in `Format-Serving/`.
Inference result (infer): `prediction_logs-*.gz`, PredictionLog TFRecords. Infra blessing
(infra_validate): `INFRA_BLESSED` or `INFRA_NOT_BLESSED` and `infra_validation.json`.
"""

from __future__ import annotations

import os

from tfkfp.containers.runtime import InputError

SPLITS = ("train", "eval")
# Shards per split that ingest and transform write at least: a multi-worker trainer's tf.data
# FILE sharding needs a file per worker.
MIN_SHARDS = 4
SCHEMA_FILE = "schema.pbtxt"
STATS_FILE = "FeatureStats.pb"  # DatasetFeatureStatisticsList, one per split (StatisticsGen)
ANOMALIES_FILE = "SchemaDiff.pb"  # Anomalies, one per split (ExampleValidator)
MANIFEST = "tfkfp_manifest.json"
BLESSED = "BLESSED"
NOT_BLESSED = "NOT_BLESSED"
BLESSING_FILE = "blessing.json"
PUSHED = "PUSHED.json"
# Files tfkfp writes at a pushed version's top level beside the model: never part of a model's
# files or content hash, so promoting `<staging>/<version>` pushes the model alone.
CARD_JSON = "model_card.json"  # the model card beside PUSHED.json (containers/push/model_card.py)
CARD_MD = "model_card.md"
BOOKKEEPING = (PUSHED, CARD_JSON, CARD_MD)
TFX_SERVING = "Format-Serving"
INFRA_BLESSED = "INFRA_BLESSED"  # infra_validate's markers (TFX's InfraValidator)
INFRA_NOT_BLESSED = "INFRA_NOT_BLESSED"
INFRA_FILE = "infra_validation.json"
PREDICTION_LOGS = "prediction_logs"  # infer: prediction_logs-*.gz (TFX's BulkInferrer)
PREDICTIONS_PARQUET = "predictions"  # infer: predictions-*.parquet
TFX_TFLITE = "Format-TFLite"  # tflite: Format-TFLite/tflite (TFX's rewriter layout)
TFLITE_FILE = "tflite"


def split_folder(split: str) -> str:
    """The folder of one split inside an artifact: `Split-<split>`."""
    return f"Split-{split}"


def split_dir(artifact: str, split: str) -> str:
    """One split's folder in an artifact (a local path or a URI)."""
    return os.path.join(artifact, split_folder(split))


def split_pattern(examples: str, split: str) -> str:
    """Glob of one split's gzip TFRecord files in an examples artifact."""
    return os.path.join(split_dir(examples, split), "*.gz")


def schema_file(schema: str) -> str:
    """Path of the schema file in a schema artifact folder (or the file itself)."""
    return schema if schema.endswith(".pbtxt") else os.path.join(schema, SCHEMA_FILE)


def blessing_marker(blessed: bool) -> str:
    """The marker file's name in a blessing artifact."""
    return BLESSED if blessed else NOT_BLESSED


def is_bookkeeping(rel: str) -> bool:
    """Whether a path relative to a version (or model) folder is a tfkfp bookkeeping file."""
    return rel in BOOKKEEPING


def is_version(name: str) -> bool:
    """Whether a folder name in a push destination is a version (a non-negative integer).

    ASCII digits only: `str.isdigit` also accepts `①` or `²`, which int() refuses.
    """
    return name.isascii() and name.isdigit()


def load_schema(location: str, what: str = "schema"):
    """The one reader of a tensorflow_metadata Schema in text format, for every stage.

    Args:
        location: A `schema.pbtxt` file or a folder holding one (a schema artifact), local, a
            KFP mount, gs:// or s3://.
        what: The input's name for error messages.

    Raises:
        InputError: in one line naming the input, for a missing file, a folder without
            `schema.pbtxt`, an empty or binary file, text that is not a Schema, or a Schema
            without features.
    """
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from tfkfp.containers.store import storage

    uri = location
    if storage.stat(uri, what) is None:
        if not storage.exists(uri, what):
            raise InputError(
                f"{what}: no such file or folder {uri} (expected a {SCHEMA_FILE} file or a folder with one)"
            )
        uri = storage.join(uri, SCHEMA_FILE)
        if storage.stat(uri, what) is None:
            raise InputError(
                f"{what}: {location} is a folder without {SCHEMA_FILE} (expected a schema in "
                "text format, or a schema artifact folder holding one)"
            )
    data = storage.read_bytes(uri, what)
    if not data.strip():
        raise InputError(f"{what}: {uri} is empty (expected a Schema in text format)")
    try:
        schema = text_format.Parse(data.decode("utf-8"), schema_pb2.Schema())
    except (UnicodeDecodeError, text_format.ParseError) as err:
        if _binary_schema(data):
            raise InputError(
                f"{what}: {uri} is a binary Schema protobuf; expected the text format "
                "(text_format.MessageToString, tfdv.write_schema_text or `tfkfp schema`)"
            ) from None
        if isinstance(err, UnicodeDecodeError):
            detail = f"not UTF-8 text: byte {data[err.start]:#04x} at offset {err.start}"
        else:
            detail = " ".join(str(err).split())
        raise InputError(f"{what}: {uri} is not a Schema in text format ({detail})") from None
    if not schema.feature:
        raise InputError(f"{what}: {uri} is a Schema without features")
    return schema


def _binary_schema(data: bytes) -> bool:
    """Whether bytes are a serialized Schema with named features (what tfdv.write_schema gives)."""
    from google.protobuf.message import DecodeError
    from tensorflow_metadata.proto.v0 import schema_pb2

    try:
        schema = schema_pb2.Schema.FromString(data)
    except (DecodeError, ValueError):
        return False
    return bool(schema.feature) and all(f.name.isprintable() and f.name for f in schema.feature)
