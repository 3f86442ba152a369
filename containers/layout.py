"""Where things live inside tfkfp's artifacts and push destinations: the one place for names.

Examples artifact (ingest, transform; TFX's layout)::

    Split-train/*.gz  Split-eval/*.gz  tfkfp_manifest.json

Schema artifact: `schema.pbtxt`. Statistics and anomalies: `Split-<split>/FeatureStats.pb`,
`Split-<split>/SchemaDiff.pb`. Blessing artifact: `BLESSED` or `NOT_BLESSED` and
`blessing.json`. Push destination: one folder per integer version, complete once it holds
`PUSHED.json` (written last). A TFX model artifact keeps its SavedModel in `Format-Serving/`.
Inference result (infer): `prediction_logs-*.gz`, PredictionLog TFRecords. Infra blessing
(infra_validate): `INFRA_BLESSED` or `INFRA_NOT_BLESSED` and `infra_validation.json`.
"""

from __future__ import annotations

import os

SPLITS = ("train", "eval")
SCHEMA_FILE = "schema.pbtxt"
STATS_FILE = "FeatureStats.pb"  # DatasetFeatureStatisticsList, one per split (StatisticsGen)
ANOMALIES_FILE = "SchemaDiff.pb"  # Anomalies, one per split (ExampleValidator)
MANIFEST = "tfkfp_manifest.json"
BLESSED = "BLESSED"
NOT_BLESSED = "NOT_BLESSED"
BLESSING_FILE = "blessing.json"
PUSHED = "PUSHED.json"
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


def is_version(name: str) -> bool:
    """Whether a folder name in a push destination is a version (a non-negative integer)."""
    return name.isdigit()
