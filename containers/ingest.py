"""ingest: CSV, TFRecord of tf.Example or Parquet -> gzip TFRecord splits + schema.pbtxt.

Reads from any location the storage layer takes (a local path, a KFP mount, gs://, s3://): a
file, a folder (every file under it, hidden ones skipped) or a glob, streamed from object
stores without a full download. Progress every PROGRESS_EVERY seconds
(containers/events.py): files, bytes, rows.

Schema inference follows TFX's CSV convention: a column with no decimal point is INT, one that
parses as a number FLOAT, otherwise BYTES; a column missing in some rows is VarLen (sparse in
`preprocessing_fn`), one always present with the same number N of values in every row is
fixed-length, shape [N] (TFDV's inference). Unlike TFX, `NA` is missing too, and an
integer column beyond int64 (a 20-digit id) is BYTES with a warning, kept exact (TFX makes it a
lossy FLOAT). The CSV delimiter is given or detected per file: tab for `.tsv`, else whichever of
`,` `;` tab splits the header into the most columns.
Parquet keeps its own types (integers and booleans INT, floats FLOAT, strings BYTES; lists
of one length [N], others VarLen; decimals BYTES as their exact text, with a warning); a null
is a missing value.

No TensorFlow: pyarrow reads CSV and Parquet, tfx_bsl's C++ coder encodes tf.Examples (a missing
value is an empty Feature, as in TFX's own CSV path) and the TFRecord framing is written here,
which saves the 4-6 s TensorFlow import and makes large inputs several times faster.

Over ~400 lines: three readers (CSV, Parquet, TFRecord) share the progress lines, the typed
columns, the tf.Example encoding and the TFRecord framing; a split would pass those around.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tfkfp.containers import events, manifest, storage
from tfkfp.containers.layout import SCHEMA_FILE, SPLITS, load_schema, split_dir
from tfkfp.containers.publish import outputs
from tfkfp.containers.runtime import InputError, log

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ()

MISSING = ("", "NA")
INT_PATTERN = r"^[+-]?\d+$"
CHUNK_ROWS = 50_000
FORMATS = ("auto", "csv", "tfrecord", "parquet")
_TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".gz", ".tfrecord.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
# pyarrow parses CSV in blocks; a row must fit in one. Start here, grow x4 for larger rows.
CSV_BLOCK_SIZE = 8 << 20
CSV_MAX_BLOCK_SIZE = 2 << 30
# Auto-detected delimiters, the first winning ties; `delimiter` also takes these spellings of tab.
DELIMITERS = (",", ";", "\t")
_TAB_NAMES = ("\\t", "tab", "\t")
_TSV_SUFFIXES = (".tsv", ".tab")
# Characters that suggest a file was split with the wrong delimiter when its header is one column.
_DELIMITER_LIKE = ",;\t|"


@dataclass
class IngestResult:
    """What the stage wrote: rows per split."""

    rows: dict[str, int]


@dataclass
class _Column:
    name: str
    kind: str  # INT, FLOAT or BYTES (tensorflow_metadata FeatureType names)
    missing: int  # rows without a value
    min_values: int = 1  # values per row where present
    max_values: int = 1
    empty: bool = False  # no row has a value


def _resolve_files(data_uri: str) -> list[storage.Stat]:
    if not data_uri:
        raise InputError("data_uri: expected a CSV/TFRecord/Parquet file, folder or glob, got ''")
    return storage.list_files(data_uri, "data_uri")


def _format_of(files: list[storage.Stat], input_format: str) -> str:
    if input_format != "auto":
        if input_format not in FORMATS:
            raise InputError(
                f"input_format: expected one of {', '.join(FORMATS)}, got {input_format!r}"
            )
        return input_format

    def kind(uri: str) -> str:
        if uri.endswith(_TFRECORD_SUFFIXES):
            return "tfrecord"
        return "parquet" if uri.endswith(_PARQUET_SUFFIXES) else "csv"

    kinds = {kind(f.uri) for f in files}
    if len(kinds) > 1:
        raise InputError(
            f"data_uri: mixes {' and '.join(sorted(kinds))} files: {[f.uri for f in files]}"
        )
    return kinds.pop()


def check_delimiter(delimiter: str) -> str:
    """The delimiter a user gave as one character ('' = detect); `\\t` and `tab` mean tab."""
    if delimiter in _TAB_NAMES:
        return "\t"
    if len(delimiter) > 1 or delimiter in ('"', "\n", "\r"):
        raise InputError(
            f"delimiter: expected one character such as ',' ';' or '\\t' (or empty to detect), "
            f"got {delimiter!r}"
        )
    return delimiter


def _read_header(uri: str, delimiter: str = "") -> tuple[list[str] | None, str]:
    """The CSV header row and the file's delimiter (detected when not given).

    A UTF-8 byte-order mark is not part of the first name.
    """
    import io

    with storage.errors("data_uri", uri):
        raw = storage.open_input(uri, "data_uri")
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            first = text.readline().rstrip("\r\n")
        except UnicodeDecodeError as err:
            raise InputError(f"data_uri: {uri} is not UTF-8 CSV ({err.reason})") from None
        finally:
            text.close()
    if not first:
        return None, delimiter or ","
    if not delimiter:
        if uri.lower().endswith(_TSV_SUFFIXES):
            delimiter = "\t"
        else:
            widths = {d: len(_split(first, d, uri)) for d in DELIMITERS}
            delimiter = max(DELIMITERS, key=lambda d: widths[d])  # ties: the first (",")
    header = [h.strip() for h in _split(first, delimiter, uri)]
    looks_split = [c for c in _DELIMITER_LIKE if c != delimiter and first.count(c) >= 2]
    if len(header) == 1 and looks_split:
        log.warning(
            "ingest: %s reads as one column %r although its header has several %r; "
            "if that is the delimiter, set delimiter=%r",
            uri,
            header[0][:60],
            looks_split[0],
            looks_split[0],
        )
    return header, delimiter


def _split(line: str, delimiter: str, uri: str) -> list[str]:
    import csv

    try:
        return next(csv.reader([line], delimiter=delimiter), [""])
    except csv.Error as err:
        raise InputError(f"data_uri: {uri} is not valid CSV ({err})") from None


def _read_csv_file(uri: str, header: list[str], progress: events.Progress, delimiter: str = ","):
    """One CSV file as a table of strings, streamed; the block grows for rows that need it."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    block_size = CSV_BLOCK_SIZE
    while True:
        rows = 0
        try:
            with storage.errors("data_uri", uri), storage.open_input(uri, "data_uri") as stream:
                reader = pcsv.open_csv(
                    stream,
                    read_options=pcsv.ReadOptions(
                        column_names=header, skip_rows=1, block_size=block_size
                    ),
                    parse_options=pcsv.ParseOptions(delimiter=delimiter),
                    convert_options=pcsv.ConvertOptions(
                        column_types=dict.fromkeys(header, pa.string()),
                        strings_can_be_null=False,
                        null_values=[],
                    ),
                )
                batches, done = [], 0
                for batch in reader:
                    batches.append(batch)
                    rows += batch.num_rows
                    # A stream has no position: the cells' bytes plus one separator each.
                    done += batch.num_rows * batch.num_columns + sum(
                        col.buffers()[2].size for col in batch.columns if col.buffers()[2]
                    )
                    progress.add(rows=batch.num_rows, current=done)
                return pa.Table.from_batches(batches, schema=reader.schema)
        except pa.ArrowInvalid as err:
            reason = str(err).splitlines()[0]
            progress.rows -= rows
            if "straddling" in reason and block_size < CSV_MAX_BLOCK_SIZE:
                block_size *= 4
                log.info("ingest: a row of %s is larger than the block; reading with %d MiB",
                         uri, block_size >> 20)  # fmt: skip
                continue
            if "UTF8" in reason:
                raise InputError(f"data_uri: {uri} is not UTF-8 CSV ({reason})") from None
            raise InputError(f"data_uri: {uri} is not valid CSV ({reason})") from None


def _read_csv(files: list[storage.Stat], progress: events.Progress, delimiter: str = ""):
    """All files as one pyarrow Table of trimmed strings (types are inferred afterwards)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    header: list[str] | None = None
    tables = []
    for f in files:
        file_header, file_delimiter = _read_header(f.uri, delimiter)
        if file_header is None:
            progress.add(f.size, files=1)
            continue
        if header is None:
            header = file_header
            if len(set(header)) != len(header) or "" in header:
                raise InputError(f"data_uri: {f.uri} has an empty or repeated column name")
        elif file_header != header:
            raise InputError(f"data_uri: {f.uri} has a different header than {files[0].uri}")
        tables.append(_read_csv_file(f.uri, header, progress, file_delimiter))
        progress.add(f.size, files=1)
    if header is None or not sum(t.num_rows for t in tables):
        raise InputError(
            f"data_uri: no data rows in {', '.join(f.uri for f in files)} "
            "(expected a header and rows)"
        )
    table = pa.concat_tables(tables).combine_chunks()
    return pa.table({name: pc.utf8_trim_whitespace(table[name]) for name in header})


def _typed_column(name: str, strings):
    """Infers a column's type TFX-style and returns (_Column, list array with nulls for missing)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = pc.is_in(strings, value_set=pa.array(MISSING)).to_numpy(zero_copy_only=False)
    present = pc.filter(strings, pa.array(~missing))
    if len(present) == 0:
        kind, values = "BYTES", present.cast(pa.large_binary())
    elif pc.all(pc.match_substring_regex(present, INT_PATTERN)).as_py():
        try:
            kind, values = "INT", pc.cast(present, pa.int64())
        except pa.ArrowInvalid:  # beyond int64: an id, kept exact as text
            log.warning(
                "ingest: column %r has integers beyond int64 (e.g. %s): read as BYTES (strings), "
                "exact; a FLOAT would lose digits",
                name,
                _widest(present),
            )
            kind, values = "BYTES", present.cast(pa.large_binary())
    else:
        try:
            kind, values = "FLOAT", pc.cast(pc.cast(present, pa.float64()), pa.float32())
        except pa.ArrowInvalid:
            kind, values = "BYTES", present.cast(pa.large_binary())
    offsets = np.concatenate([[0], np.cumsum(~missing, dtype=np.int64)])
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), values, mask=pa.array(missing))
    return _Column(name, kind, int(missing.sum()), empty=len(present) == 0), lists


def _widest(strings) -> str:
    import pyarrow.compute as pc

    lengths = pc.utf8_length(strings)
    return strings[pc.index(lengths, pc.max(lengths)).as_py()].as_py()


def _schema(columns: Iterable[_Column]):
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    for col in columns:
        feature = schema.feature.add(name=col.name, type=getattr(schema_pb2, col.kind))
        if col.empty:
            # As TFDV infers it: a feature no example has may stay absent, nothing else is
            # known; the data it was inferred from must satisfy the schema.
            feature.presence.min_count = 0
        elif col.missing == 0 and col.min_values == col.max_values >= 1:
            # Every row holds the same N values (a scalar, or an image's N pixels): a fixed
            # shape [N], as TFDV infers it, so TFXIO gives a dense [batch, N] tensor, not a
            # SparseTensor a Reshape cannot take.
            feature.presence.min_fraction = 1.0
            feature.presence.min_count = 1
            feature.shape.dim.add(size=col.min_values)
        else:
            feature.presence.min_count = 1
            feature.value_count.min = col.min_values
            feature.value_count.max = col.max_values
    return schema


Chunks = Iterator[tuple[list[bytes], list[bytes]]]  # (split keys, serialized tf.Examples)


def _encoded(names: list[str], lists: list, keys) -> Chunks:
    """tf.Examples of typed list columns, CHUNK_ROWS at a time, with each row's split key.

    `keys(start, n)` gives the rows' keys: their text, not the encoding (the encoder's
    feature order varies by process).
    """
    import pyarrow as pa
    from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder

    batch = pa.RecordBatch.from_arrays(lists, names=names)
    encoder = RecordBatchToExamplesEncoder()
    for start in range(0, batch.num_rows, CHUNK_ROWS):
        yield keys(start, CHUNK_ROWS), encoder.encode(batch.slice(start, CHUNK_ROWS))


def _csv_examples(
    files: list[storage.Stat], progress: events.Progress, delimiter: str = ""
) -> tuple[object, Chunks]:
    import pyarrow.compute as pc

    table = _read_csv(files, progress, delimiter)
    typed = [_typed_column(name, table[name].combine_chunks()) for name in table.column_names]

    def keys(start: int, n: int) -> list[bytes]:
        rows = table.slice(start, n)
        return [k.encode() for k in pc.binary_join_element_wise(*rows.columns, "\x1f").to_pylist()]

    chunks = _encoded(table.column_names, [arr for _, arr in typed], keys)
    return _schema(col for col, _ in typed), chunks


def _arrow_column(name: str, array):
    """A Parquet column as (_Column, list array with nulls for missing rows), by its own type."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    t = array.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        missing = array.is_null().to_numpy(zero_copy_only=False)
        lengths = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False)
        values = pc.list_flatten(array)
        if values.null_count:
            raise InputError(f"data_uri: column {name!r} has null values inside lists")
        value_type = t.value_type
    else:
        missing = array.is_null().to_numpy(zero_copy_only=False)
        lengths = (~missing).astype(np.int64)
        values = pc.drop_null(array)
        value_type = t
    if pa.types.is_dictionary(value_type):
        values, value_type = values.dictionary_decode(), value_type.value_type
    if pa.types.is_integer(value_type) or pa.types.is_boolean(value_type):
        kind, values = "INT", values.cast(pa.int64())
    elif pa.types.is_floating(value_type):
        kind, values = "FLOAT", values.cast(pa.float64()).cast(pa.float32())
    elif pa.types.is_decimal(value_type):
        # float32 keeps ~7 digits (12345678.91 -> 12345679.0): the exact text instead.
        log.warning(
            "ingest: column %r is Parquet %s: read as BYTES (its exact decimal text); "
            "cast it in preprocessing_fn (tf.strings.to_number) if a float is close enough",
            name,
            value_type,
        )
        kind, values = "BYTES", values.cast(pa.string()).cast(pa.large_binary())
    elif pa.types.is_string(value_type) or pa.types.is_large_string(value_type):
        kind, values = "BYTES", values.cast(pa.large_binary())
    elif pa.types.is_binary(value_type) or pa.types.is_large_binary(value_type):
        kind, values = "BYTES", values.cast(pa.large_binary())
    elif pa.types.is_temporal(value_type):
        kind, values = "BYTES", values.cast(pa.string()).cast(pa.large_binary())
    else:
        raise InputError(
            f"data_uri: column {name!r} has Parquet type {t}, which a tf.Example cannot hold "
            "(expected numbers, booleans, strings, bytes, times or lists of them)"
        )
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), values, mask=pa.array(missing))
    present = lengths[~missing]
    bounds = (int(present.min()), int(present.max())) if len(present) else (1, 1)
    return _Column(name, kind, int(missing.sum()), *bounds, empty=not len(present)), lists


def _row_text(lists) -> object:
    """Each row of a list column as text (values joined by \\x1e; missing: empty)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value_type = lists.type.value_type
    if pa.types.is_large_binary(value_type):
        joined = pc.binary_join(lists, pa.scalar(b"\x1e", pa.large_binary()))
    else:
        strings = lists.cast(pa.large_list(pa.large_string()))
        joined = pc.binary_join(strings, pa.scalar("\x1e", pa.large_string()))
    return joined.cast(pa.large_binary()).fill_null(b"")


def _parquet_examples(
    files: list[storage.Stat], progress: events.Progress
) -> tuple[object, Chunks]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables, schema = [], None
    for f in files:
        try:
            with (
                storage.errors("data_uri", f.uri),
                storage.open_input(f.uri, "data_uri", seekable=True) as fh,
            ):
                parquet = pq.ParquetFile(fh, pre_buffer=True)
                if schema is None:
                    schema = parquet.schema_arrow
                elif not parquet.schema_arrow.equals(schema):
                    raise InputError(
                        f"data_uri: {f.uri} has different columns or types than {files[0].uri}"
                    )
                total, read = max(parquet.metadata.num_rows, 1), 0
                for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
                    tables.append(pa.Table.from_batches([batch]))
                    read += batch.num_rows
                    progress.add(rows=batch.num_rows, current=f.size * read // total)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            reason = str(err).splitlines()[0]
            raise InputError(
                f"data_uri: {f.uri} is not a readable Parquet file ({reason})"
            ) from None
        progress.add(f.size, files=1)
    if schema is None or not sum(t.num_rows for t in tables):
        raise InputError(f"data_uri: no rows in {', '.join(f.uri for f in files)}")
    table = pa.concat_tables(tables).combine_chunks()
    typed = [_arrow_column(name, table[name].combine_chunks()) for name in table.column_names]
    lists = [arr for _, arr in typed]

    def keys(start: int, n: int) -> list[bytes]:
        texts = [_row_text(arr.slice(start, n)) for arr in lists]
        return pc.binary_join_element_wise(
            *texts, pa.scalar(b"\x1f", pa.large_binary())
        ).to_pylist()

    return _schema(col for col, _ in typed), _encoded(table.column_names, lists, keys)


def _masked_crc(data: bytes) -> bytes:
    import google_crc32c

    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _read_tfrecords(uri: str) -> Iterator[bytes]:
    """Records of one TFRecord file (gzip by suffix); checks each length's CRC before trusting it."""
    import gzip

    with storage.open_input(uri, "data_uri") as raw:
        fh = gzip.GzipFile(fileobj=raw, mode="rb") if uri.endswith(".gz") else raw
        while header := fh.read(12):
            if len(header) < 12 or _masked_crc(header[:8]) != header[8:]:
                raise ValueError("corrupt record header")
            (length,) = struct.unpack("<Q", header[:8])
            data = fh.read(length + 4)
            if len(data) != length + 4:
                raise ValueError("truncated record")
            yield data[:length]


def _tfrecord_examples(
    files: list[storage.Stat], progress: events.Progress
) -> tuple[object, Chunks]:
    import gzip
    import zlib

    import pyarrow.compute as pc
    from tfx_bsl.coders.example_coder import ExamplesToRecordBatchDecoder

    records: list[bytes] = []
    for f in files:
        try:
            with storage.errors("data_uri", f.uri):
                before = len(records)
                for record in _read_tfrecords(f.uri):
                    records.append(record)
                    if len(records) % 10_000 == 0:
                        progress.add(rows=len(records) - before, current=0)
                        before = len(records)
                progress.add(rows=len(records) - before, current=0)
        except (gzip.BadGzipFile, zlib.error, ValueError, EOFError) as err:
            raise InputError(f"data_uri: {f.uri} is not a readable TFRecord file ({err})") from None
        progress.add(f.size, files=1)
    if not records:
        raise InputError(f"data_uri: no records in {', '.join(f.uri for f in files)}")
    try:
        batch = ExamplesToRecordBatchDecoder().DecodeBatch(records)
    except Exception as err:  # the C++ decoder raises a bare RuntimeError/ValueError
        raise InputError(f"data_uri: records are not tf.Examples ({err})") from None
    kinds = {"int64": "INT", "float": "FLOAT"}
    columns = []
    for name, array in zip(batch.schema.names, batch.columns, strict=True):
        lengths = pc.list_value_length(array).fill_null(0)
        present = pc.filter(lengths, pc.greater(lengths, 0))
        kind = kinds.get(str(array.type.value_type), "BYTES")
        bounds = pc.min_max(present).as_py() if len(present) else {"min": 1, "max": 1}
        missing = len(records) - len(present)
        columns.append(
            _Column(name, kind, missing, bounds["min"], bounds["max"], empty=not len(present))
        )
    schema = _schema(sorted(columns, key=lambda c: c.name))
    # Records are written back as they were read, so their bytes are a stable split key.
    return schema, ((records[i : i + CHUNK_ROWS],) * 2 for i in range(0, len(records), CHUNK_ROWS))


class _TFRecordWriter:
    """gzip TFRecord writer (length, masked CRC32C of length, data, masked CRC32C of data)."""

    def __init__(self, path: str):
        import gzip

        self._fh = gzip.open(path, "wb", compresslevel=6)

    def write(self, record: bytes) -> None:
        length = struct.pack("<Q", len(record))
        self._fh.write(length + _masked_crc(length) + record + _masked_crc(record))

    def close(self) -> None:
        self._fh.close()


def _is_train(key: bytes, train_fraction: float) -> bool:
    # A content hash: the same row always lands in the same split, whatever the file order,
    # process or machine (unlike hash()).
    bucket = int.from_bytes(hashlib.md5(key).digest()[:8], "big") % 10_000
    return bucket < train_fraction * 10_000


def _read(data_uri: str, input_format: str, delimiter: str = "") -> tuple[object, Chunks]:
    """The data's inferred schema and its examples (lazily, CHUNK_ROWS at a time)."""
    if input_format not in FORMATS:
        raise InputError(
            f"input_format: expected one of {', '.join(FORMATS)}, got {input_format!r}"
        )
    delimiter = check_delimiter(delimiter)
    files = _resolve_files(data_uri)
    fmt = _format_of(files, input_format)
    if delimiter and fmt != "csv":
        raise InputError(f"delimiter: applies to CSV only; {data_uri} is {fmt}")
    log.info(
        "ingest: reading %d %s file(s), %.1f MB, from %s",
        len(files),
        fmt,
        sum(f.size for f in files) / 1e6,
        data_uri,
    )
    progress = events.Progress(
        "ingest",
        "read {files}/{files_total} files, {done_mb:.1f}/{total_mb:.1f} MB, {rows} rows",
        total=sum(f.size for f in files),
        files_total=len(files),
        detail="{rows:,} rows",
    )
    if fmt == "csv":
        return _csv_examples(files, progress, delimiter)
    read = {"tfrecord": _tfrecord_examples, "parquet": _parquet_examples}
    return read[fmt](files, progress)


def infer_schema(data_uri: str, input_format: str = "auto", delimiter: str = ""):
    """The schema ingest infers for the data (`tfkfp schema` writes it for review)."""
    return _read(data_uri, input_format, delimiter)[0]


def check_columns(curated, inferred, uri: str) -> None:
    """Fails in one line when the data's columns or types differ from the curated schema."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    want = {f.name: schema_pb2.FeatureType.Name(f.type) for f in curated.feature}
    have = {f.name: schema_pb2.FeatureType.Name(f.type) for f in inferred.feature}
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing:
        raise InputError(
            f"schema_uri: the data has no column {', '.join(missing)} ({uri} lists it)"
        )
    if extra:
        raise InputError(f"schema_uri: the data's column {', '.join(extra)} is not in {uri}")
    for name, kind in want.items():
        if have[name] != kind:
            raise InputError(
                f"schema_uri: column {name!r} should hold {kind} values per {uri}, "
                f"the data has {have[name]}"
            )


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
    inferred, chunks = _read(data_uri, input_format, delimiter)
    if curated is not None:
        check_columns(curated, inferred, schema_uri)
    written = curated if curated is not None else inferred

    from google.protobuf import text_format

    counts = dict.fromkeys(SPLITS, 0)
    with outputs() as out:  # the examples and the schema: both or neither
        ex_tmp = out.folder(examples, "examples")
        schema_tmp = out.folder(schema, "schema")
        writers = {}
        for split in SPLITS:
            os.makedirs(split_dir(ex_tmp, split))
            writers[split] = _TFRecordWriter(
                os.path.join(split_dir(ex_tmp, split), "data_tfrecord-00000-of-00001.gz")
            )
        try:
            for keys, records in chunks:
                for key, record in zip(keys, records, strict=True):
                    split = "train" if _is_train(key, train_fraction) else "eval"
                    writers[split].write(record)
                    counts[split] += 1
                written_rows = sum(counts.values())
                events.progress(
                    "ingest",
                    "%d rows written",
                    written_rows,
                    completed=written_rows,
                    detail=f"{written_rows:,} rows written",
                )
        finally:
            for writer in writers.values():
                writer.close()
        for split, n in counts.items():
            if n == 0:
                raise InputError(
                    f"train_fraction: {train_fraction} leaves the '{split}' split empty "
                    f"({sum(counts.values())} rows)"
                )
        manifest.write(ex_tmp, counts)
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
