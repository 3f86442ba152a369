"""ingest: CSV or TFRecord of tf.Example -> gzip TFRecord splits `train`/`eval` + schema.pbtxt.

Schema inference follows TFX's CSV convention: a column with no decimal point is INT, one that
parses as a number FLOAT, otherwise BYTES; a column missing in some rows is VarLen (sparse in
`preprocessing_fn`), one always present is fixed-length. Unlike TFX, `NA` is missing too.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tfkfp.containers.runtime import InputError, log, publishing

MISSING = ("", "NA")
SPLITS = ("train", "eval")
_INT = re.compile(r"^[+-]?\d+$")
_TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".gz", ".tfrecord.gz")


@dataclass
class _Column:
    name: str
    kind: str = "INT"  # narrows INT -> FLOAT -> BYTES as values are seen
    missing: int = 0
    seen: int = 0
    values_per_row: set[int] = field(default_factory=set)

    def observe(self, value: str) -> None:
        if value in MISSING:
            self.missing += 1
            return
        self.seen += 1
        if self.kind == "INT" and not _INT.match(value):
            self.kind = "FLOAT"
        if self.kind == "FLOAT":
            try:
                float(value)
            except ValueError:
                self.kind = "BYTES"


def _resolve_files(data_uri: str) -> list[str]:
    if not data_uri:
        raise InputError("data_uri: expected a CSV/TFRecord file, folder or glob, got ''")
    if os.path.isdir(data_uri):
        files = sorted(f for f in glob.glob(os.path.join(data_uri, "*")) if os.path.isfile(f))
    elif any(c in data_uri for c in "*?["):
        files = sorted(glob.glob(data_uri))
    else:
        files = [data_uri] if os.path.exists(data_uri) else []
    if not files:
        raise InputError(f"data_uri: no such file, folder or matching files: {data_uri!r}")
    for f in files:
        if not os.access(f, os.R_OK):
            raise InputError(f"data_uri: cannot read {f!r} (permission denied)")
    return files


def _format_of(files: list[str], input_format: str) -> str:
    if input_format != "auto":
        if input_format not in ("csv", "tfrecord"):
            raise InputError(f"input_format: expected auto, csv or tfrecord, got {input_format!r}")
        return input_format
    kinds = {"tfrecord" if f.endswith(_TFRECORD_SUFFIXES) else "csv" for f in files}
    if len(kinds) > 1:
        raise InputError(f"data_uri: mixes CSV and TFRecord files: {files}")
    return kinds.pop()


def _read_csv(files: list[str]) -> tuple[list[str], list[list[str]]]:
    header: list[str] | None = None
    rows: list[list[str]] = []
    for path in files:
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                file_header = next(reader, None)
                if file_header is None:
                    continue
                if header is None:
                    header = [h.strip() for h in file_header]
                    if len(set(header)) != len(header) or "" in header:
                        raise InputError(f"data_uri: {path} has an empty or repeated column name")
                elif [h.strip() for h in file_header] != header:
                    raise InputError(f"data_uri: {path} has a different header than {files[0]}")
                for row in reader:
                    if not row:
                        continue
                    if len(row) != len(header):
                        raise InputError(
                            f"data_uri: {path} line {reader.line_num} has {len(row)} fields, "
                            f"expected {len(header)}"
                        )
                    rows.append(row)
        except UnicodeDecodeError as err:
            raise InputError(f"data_uri: {path} is not UTF-8 CSV ({err.reason})") from err
        except csv.Error as err:
            raise InputError(f"data_uri: {path} is not valid CSV ({err})") from err
    if header is None or not rows:
        raise InputError(
            f"data_uri: no data rows in {', '.join(files)} (expected a header and rows)"
        )
    return header, rows


def _schema_from_columns(columns: Iterable[_Column], n_rows: int):
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    for col in columns:
        feature = schema.feature.add(name=col.name, type=getattr(schema_pb2, col.kind))
        if col.missing == 0 and col.values_per_row <= {1}:
            feature.presence.min_fraction = 1.0
            feature.presence.min_count = 1
            feature.shape.dim.add(size=1)
        else:
            feature.presence.min_count = 1 if col.seen else 0
            if col.values_per_row:
                feature.value_count.min = min(col.values_per_row)
                feature.value_count.max = max(col.values_per_row)
    return schema


def _csv_examples(header: list[str], rows: list[list[str]]) -> tuple[object, Iterator]:
    columns = [_Column(name) for name in header]
    for row in rows:
        for col, value in zip(columns, row, strict=True):
            col.observe(value.strip())
    for col in columns:
        if col.seen == 0:
            col.kind = "BYTES"  # no value to type it by
        col.values_per_row = {1} if col.seen else set()
    schema = _schema_from_columns(columns, len(rows))

    def examples() -> Iterator[tuple[bytes, bytes]]:
        import tensorflow as tf

        for row in rows:
            feats = {}
            for col, raw in zip(columns, row, strict=True):
                value = raw.strip()
                if value in MISSING:
                    continue
                if col.kind == "INT":
                    feats[col.name] = tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[int(value)])
                    )
                elif col.kind == "FLOAT":
                    feats[col.name] = tf.train.Feature(
                        float_list=tf.train.FloatList(value=[float(value)])
                    )
                else:
                    feats[col.name] = tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[value.encode()])
                    )
            serialized = tf.train.Example(
                features=tf.train.Features(feature=feats)
            ).SerializeToString()
            yield ",".join(row).encode(), serialized

    return schema, examples()


def _tfrecord_examples(files: list[str]) -> tuple[object, Iterator]:
    import tensorflow as tf

    records: list[bytes] = []
    for path in files:
        compression = "GZIP" if path.endswith(".gz") else ""
        try:
            records.extend(
                r.numpy() for r in tf.data.TFRecordDataset(path, compression_type=compression)
            )
        except tf.errors.OpError as err:
            raise InputError(
                f"data_uri: {path} is not a readable TFRecord file ({err.message})"
            ) from err
    if not records:
        raise InputError(f"data_uri: no records in {', '.join(files)}")
    columns: dict[str, _Column] = {}
    kinds = {"int64_list": "INT", "float_list": "FLOAT", "bytes_list": "BYTES"}
    for i, record in enumerate(records):
        try:
            example = tf.train.Example.FromString(record)
        except Exception as err:
            raise InputError(f"data_uri: record {i} is not a tf.Example ({err})") from err
        for name, feat in example.features.feature.items():
            kind = feat.WhichOneof("kind")
            if kind is None:
                continue
            col = columns.setdefault(name, _Column(name, kind=kinds[kind]))
            n = len(getattr(feat, kind).value)
            if n == 0:
                continue
            col.seen += 1
            col.values_per_row.add(n)
    for col in columns.values():
        col.missing = len(records) - col.seen
    schema = _schema_from_columns(sorted(columns.values(), key=lambda c: c.name), len(records))
    return schema, ((r, r) for r in records)


def _is_train(key: bytes, train_fraction: float) -> bool:
    # Deterministic across runs and machines (unlike hash()), so a split never moves a row.
    bucket = int.from_bytes(hashlib.md5(key).digest()[:8], "big") % 10_000
    return bucket < train_fraction * 10_000


def run(
    data_uri: str,
    examples_dir: str,
    schema_dir: str,
    train_fraction: float = 0.75,
    input_format: str = "auto",
) -> dict[str, int]:
    """Reads CSV or TFRecord data, writes hash-split gzip TFRecords and an inferred schema.

    Args:
        data_uri: A file, a folder of files, or a glob.
        examples_dir: Output folder; receives `Split-train/` and `Split-eval/`.
        schema_dir: Output folder; receives `schema.pbtxt`.
        train_fraction: Share of rows hashed into `train` (0 < f < 1).
        input_format: `auto` (by file suffix), `csv` or `tfrecord`.

    Returns:
        Row counts per split.
    """
    if not 0.0 < train_fraction < 1.0:
        raise InputError(f"train_fraction: expected a number between 0 and 1, got {train_fraction}")
    files = _resolve_files(data_uri)
    fmt = _format_of(files, input_format)
    log.info("ingest: reading %d %s file(s) from %s", len(files), fmt, data_uri)
    if fmt == "csv":
        schema, examples = _csv_examples(*_read_csv(files))
    else:
        schema, examples = _tfrecord_examples(files)

    import tensorflow as tf
    from google.protobuf import text_format

    counts = dict.fromkeys(SPLITS, 0)
    with publishing(examples_dir) as ex_tmp, publishing(schema_dir) as schema_tmp:
        writers = {}
        for split in SPLITS:
            os.makedirs(os.path.join(ex_tmp, f"Split-{split}"))
            writers[split] = tf.io.TFRecordWriter(
                os.path.join(ex_tmp, f"Split-{split}", "data_tfrecord-00000-of-00001.gz"),
                options="GZIP",
            )
        try:
            for key, serialized in examples:
                split = "train" if _is_train(key, train_fraction) else "eval"
                writers[split].write(serialized)
                counts[split] += 1
        finally:
            for writer in writers.values():
                writer.close()
        for split, n in counts.items():
            if n == 0:
                raise InputError(
                    f"train_fraction: {train_fraction} leaves the '{split}' split empty "
                    f"({sum(counts.values())} rows)"
                )
        with open(os.path.join(schema_tmp, "schema.pbtxt"), "w") as fh:
            fh.write(text_format.MessageToString(schema))
    log.info("ingest: wrote %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
    return counts
