"""`tfkfp schema`: the schema ingest infers, written for review."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def write_schema(data: str, output: str, input_format: str = "auto", delimiter: str = "") -> str:
    """Writes the schema ingest infers for `data` to `output` (text format); returns the path."""
    from google.protobuf import text_format

    from tfkfp.containers.store import sources

    schema = sources.infer_schema(data, input_format, delimiter)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    Path(output).write_text(text_format.MessageToString(schema))
    return os.path.abspath(output)


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    p.description = (
        "Infers DATA's schema as ingest does (no TensorFlow) and writes it in text format; pass "
        "the reviewed file to ingest's schema_uri."
    )
    p.add_argument("data", help="a CSV/TFRecord/Parquet file, folder or glob (local, gs://, s3://)")
    p.add_argument("-o", "--output", required=True, help="schema.pbtxt to write")
    p.add_argument("--input-format", default="auto", help="auto, csv, tfrecord or parquet")
    p.add_argument("--delimiter", default="", help="CSV delimiter (default: detected, as ingest)")


def handle(name: str, args: argparse.Namespace) -> int:
    from tfkfp.cli.common import require_runtime
    from tfkfp.cli.pipelines import check_output

    require_runtime("schema")
    check_output(args.output, kind="a schema.pbtxt file path")
    print(write_schema(args.data, args.output, args.input_format, args.delimiter))
    return 0
