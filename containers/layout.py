"""Where things live inside tfkfp's artifacts and push destinations: the one place for names.

Examples artifact (ingest, transform; TFX's layout)::

    Split-train/*.gz  Split-eval/*.gz  tfkfp_manifest.json

Schema artifact: `schema.pbtxt`. Blessing artifact: `BLESSED` or `NOT_BLESSED` and
`blessing.json`. Push destination: one folder per integer version, complete once it holds
`PUSHED.json` (written last). A TFX model artifact keeps its SavedModel in `Format-Serving/`.
"""

from __future__ import annotations

import os

SPLITS = ("train", "eval")
SCHEMA_FILE = "schema.pbtxt"
MANIFEST = "tfkfp_manifest.json"
BLESSED = "BLESSED"
NOT_BLESSED = "NOT_BLESSED"
BLESSING_FILE = "blessing.json"
PUSHED = "PUSHED.json"
TFX_SERVING = "Format-Serving"


def split_folder(examples: str, split: str) -> str:
    """One split's folder in an examples artifact."""
    return os.path.join(examples, f"Split-{split}")


def split_pattern(examples: str, split: str) -> str:
    """Glob of one split's gzip TFRecord files in an examples artifact."""
    return os.path.join(split_folder(examples, split), "*.gz")


def schema_file(schema: str) -> str:
    """Path of the schema file in a schema artifact folder (or the file itself)."""
    return schema if schema.endswith(".pbtxt") else os.path.join(schema, SCHEMA_FILE)


def blessing_marker(blessed: bool) -> str:
    """The marker file's name in a blessing artifact."""
    return BLESSED if blessed else NOT_BLESSED


def is_version(name: str) -> bool:
    """Whether a folder name in a push destination is a version (a non-negative integer)."""
    return name.isdigit()
