"""`tfkfp schema`: the schema ingest infers, written for review."""

from __future__ import annotations

import os
from pathlib import Path


def write_schema(data: str, output: str, input_format: str = "auto", delimiter: str = "") -> str:
    """Writes the schema ingest infers for `data` to `output` (text format); returns the path."""
    from google.protobuf import text_format

    from tfkfp.containers import ingest

    schema = ingest.infer_schema(data, input_format, delimiter)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    Path(output).write_text(text_format.MessageToString(schema))
    return os.path.abspath(output)
