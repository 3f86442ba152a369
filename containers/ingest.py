"""ingest: CSV, TFRecord of tf.Example or Parquet -> sharded gzip TFRecord splits + schema.pbtxt.

Two streaming passes, so memory is a block of rows whatever the data's size: the first keeps
only per-column facts (missing cells, whether every value is an integer or a number, list
lengths) and decides the schema over every row; the second types, encodes and writes the rows
as it reads them. Each split goes to several gzip shards (shard_count): a gzip file cannot be
split, so shards are what every Beam worker and every trainer worker reads a part of.

Reads from any location the storage layer takes (a local path, a KFP mount, gs://, s3://): a
file, a folder (every file under it, hidden ones skipped) or a glob, streamed from object
stores without a full download. Progress every PROGRESS_EVERY seconds
(containers/events.py): files, bytes, rows.

Schema inference (TFX's CSV convention, Parquet's own types) is described where it is done,
in containers/store/sources.py.

The readers are containers/store/sources.py (infer reads a `data_uri` with them too), the
TFRecord framing containers/store/examples.py. No TensorFlow: that saves the 4-6 s TensorFlow
import and makes large inputs several times faster.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from tfkfp.containers import events
from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import examples as examples_io
from tfkfp.containers.store import pod_limits, sources
from tfkfp.containers.store.layout import MIN_SHARDS, SCHEMA_FILE, SPLITS, load_schema, split_dir
from tfkfp.containers.store.publish import outputs

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ()
# The values each enumerated parameter takes: compiled pipelines list them (KFP's `literals`).
CHOICES: dict[str, tuple[str, ...]] = {"input_format": sources.FORMATS}


# Shards per split: one per SHARD_BYTES of input data, or per core, whichever is more.
SHARD_BYTES = 64 << 20


@dataclass(frozen=True)
class IngestResult:
    """What the stage wrote: rows per split."""

    rows: dict[str, int]


def shard_count(split_bytes: int, split_rows: int, cpus: float | None) -> int:
    """Shards of one split: one per SHARD_BYTES of input or per core, whichever is more.

    Each shard is its own gzip file, the unit a Beam runner (local or remote) and a
    multi-worker trainer's FILE sharding hand to one worker; at least MIN_SHARDS so a trainer
    with that many workers gets one each, never more than the split's rows.
    """
    by_size = -(-split_bytes // SHARD_BYTES)
    wanted = max(MIN_SHARDS, int(cpus or 1), by_size)
    return max(1, min(wanted, split_rows))


class _SplitWriter:
    """One split as `n` gzip TFRecord shards, rows dealt round-robin (a shard per worker).

    Shards that got no row are dropped at close and the rest named
    `data_tfrecord-<i>-of-<n>.gz` (TFX's names), so no reader meets an empty file.
    """

    def __init__(self, folder: str, n: int):
        self.folder = folder
        self.rows = 0
        self._shards = [
            examples_io.TFRecordWriter(os.path.join(folder, f".part-{i:05d}.gz")) for i in range(n)
        ]

    def write(self, record: bytes) -> None:
        self._shards[self.rows % len(self._shards)].write(record)
        self.rows += 1

    def close(self) -> None:
        for shard in self._shards:
            shard.close()
        kept = [s for s in self._shards if s.records]
        for shard in self._shards:
            if not shard.records:
                os.remove(shard.path)
        for i, shard in enumerate(kept):
            name = f"data_tfrecord-{i:05d}-of-{len(kept):05d}.gz"
            os.replace(shard.path, os.path.join(self.folder, name))


def _is_train(key: bytes, train_fraction: float) -> bool:
    # A content hash: the same row always lands in the same split, whatever the file order,
    # process or machine (unlike hash()).
    bucket = int.from_bytes(hashlib.md5(key).digest()[:8], "big") % 10_000
    return bucket < train_fraction * 10_000


def run(
    data_uri: str,
    examples: str,
    schema: str,
    train_fraction: float = 0.75,
    input_format: str = "auto",
    schema_uri: str = "",
    delimiter: str = "",
) -> IngestResult:
    """Reads CSV, TFRecord or Parquet data; writes hash-split gzip TFRecords and a schema.

    Parameters are the component's (documented in tfkfp.components.ingest); artifacts
    arrive as local paths. `schema_uri` is a parameter (a curated schema's location), not the
    schema artifact's URI.

    Returns:
        Rows per split.
    """
    if not 0.0 < train_fraction < 1.0:
        raise InputError(f"train_fraction: expected a number between 0 and 1, got {train_fraction}")
    curated = load_schema(schema_uri, "schema_uri") if schema_uri else None
    source = sources.read(data_uri, input_format, delimiter)
    inferred = source.schema
    if curated is not None:
        sources.check_columns(curated, inferred, schema_uri)
    written = curated if curated is not None else inferred

    from google.protobuf import text_format

    counts = dict.fromkeys(SPLITS, 0)
    with outputs() as out:  # the examples and the schema: both or neither
        ex_tmp = out.folder(examples, "examples")
        schema_tmp = out.folder(schema, "schema")
        writers = {}
        cpus = pod_limits.limits().cpus
        for split in SPLITS:
            os.makedirs(split_dir(ex_tmp, split))
            share = train_fraction if split == "train" else 1 - train_fraction
            n = shard_count(int(source.size * share), int(source.rows * share) or 1, cpus)
            writers[split] = _SplitWriter(split_dir(ex_tmp, split), n)
        # The second pass: every PROGRESS_EVERY seconds, against the first pass's row count.
        progress = events.Progress(
            "ingest",
            "{done}{of_total} rows written",
            total=source.rows,
            detail="{done:,} rows written",
        )
        try:
            for keys, records in source.chunks():
                for key, record in zip(keys, records, strict=True):
                    split = "train" if _is_train(key, train_fraction) else "eval"
                    writers[split].write(record)
                    counts[split] += 1
                progress.add(len(records))
        finally:
            for writer in writers.values():
                writer.close()
        for split, n in counts.items():
            if n == 0:
                raise InputError(
                    f"train_fraction: {train_fraction} leaves the '{split}' split empty "
                    f"({sum(counts.values())} rows)"
                )
        examples_io.write(ex_tmp, counts)
        with open(os.path.join(schema_tmp, SCHEMA_FILE), "w") as fh:
            fh.write(text_format.MessageToString(written))
    events.result(
        "ingest",
        "wrote %s",
        ", ".join(f"{k}={v}" for k, v in counts.items()),
        summary="rows " + events.figures(counts),
        rows=counts,
    )
    return IngestResult(rows=counts)
