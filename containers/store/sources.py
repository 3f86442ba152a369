"""Ingest's data sources: CSV, TFRecord of tf.Example or Parquet, read as tf.Examples.

Shared by ingest (which splits and writes them) and infer (which predicts on a `data_uri`):
`read` is the first pass (schema, size, rows) and its `chunks()` the second. Reads from any
location the storage layer takes (a local path, a KFP mount, gs://, s3://): a file, a folder
(every file under it, hidden ones skipped) or a glob, streamed without a full download.

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
value is an empty Feature, as in TFX's own CSV path); TFRecord framing is
containers/store/examples.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from tfkfp.containers import events
from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.store import examples as examples_io
from tfkfp.containers.store import storage

MISSING = ("", "NA")


INT_PATTERN = r"^[+-]?\d+$"


CHUNK_ROWS = 50_000


FORMATS = ("auto", "csv", "tfrecord", "parquet")


_PARQUET_SUFFIXES = (".parquet", ".pq")


# pyarrow parses CSV in blocks; a row must fit in one. Start here, grow x4 for larger rows.
# Its streaming reader reads up to 32 blocks ahead of a slower consumer (Arrow's background
# readahead queue): 2 MiB blocks keep that within 64 MiB (8 MiB blocks held 256 MiB).
CSV_BLOCK_SIZE = 2 << 20


CSV_MAX_BLOCK_SIZE = 2 << 30


# Auto-detected delimiters, the first winning ties; `delimiter` also takes these spellings of tab.
DELIMITERS = (",", ";", "\t")


_TAB_NAMES = ("\\t", "tab", "\t")


_TSV_SUFFIXES = (".tsv", ".tab")


# Characters that suggest a file was split with the wrong delimiter when its header is one column.
_DELIMITER_LIKE = ",;\t|"


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
        if uri.endswith(examples_io.TFRECORD_SUFFIXES):
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


def _arrow_column(name: str, array, warn: bool = True):
    """A Parquet column as (_Column, list array with nulls for missing rows), by its own type.

    `warn`: log the once-per-column warnings (a batch after the first says them again).
    """
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
        (log.warning if warn else log.debug)(
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


@dataclass
class Source:
    """What the first pass over the data found; `chunks()` is the second pass."""

    schema: object  # the inferred tensorflow_metadata Schema
    size: int  # bytes of input
    rows: int
    chunks: Callable[[], Chunks]  # (split keys, serialized tf.Examples), batch by batch


@dataclass
class _CsvFacts:
    """One CSV column's facts over every row seen: enough to type it as TFX does."""

    missing: int = 0
    present: int = 0
    all_int: bool = True  # every present cell matches INT_PATTERN
    int_fits: bool = True  # ... and fits int64
    all_float: bool = True  # every present cell parses as a number
    widest: str = ""  # the widest integer of a batch beyond int64, for the warning

    def add(self, strings) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        missing = pc.is_in(strings, value_set=pa.array(MISSING))
        present = pc.filter(strings, pc.invert(missing))
        self.missing += len(strings) - len(present)
        if not len(present):
            return
        self.present += len(present)
        if self.all_int and pc.all(pc.match_substring_regex(present, INT_PATTERN)).as_py():
            if self.int_fits:
                try:
                    pc.cast(present, pa.int64())
                except pa.ArrowInvalid:
                    self.int_fits = False
            if not self.int_fits:
                widest = _widest(present)
                self.widest = max(self.widest, widest, key=len)
            return  # integers parse as numbers too
        self.all_int = False
        if self.all_float:
            try:
                pc.cast(present, pa.float64())
            except pa.ArrowInvalid:
                self.all_float = False

    def column(self, name: str) -> _Column:
        if not self.present:
            kind = "BYTES"
        elif self.all_int and self.int_fits:
            kind = "INT"
        elif self.all_int:
            log.warning(
                "ingest: column %r has integers beyond int64 (e.g. %s): read as BYTES (strings), "
                "exact; a FLOAT would lose digits",
                name,
                self.widest,
            )
            kind = "BYTES"
        else:
            kind = "FLOAT" if self.all_float else "BYTES"
        return _Column(name, kind, self.missing, empty=not self.present)


@dataclass
class _CsvFile:
    uri: str
    delimiter: str
    block_size: int  # the block its rows fit in (found by the first pass)


def _csv_batches(f: _CsvFile, header: list[str]) -> Iterator[object]:
    """One CSV file's rows as RecordBatches of trimmed strings, streamed block by block."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    with storage.errors("data_uri", f.uri), storage.open_input(f.uri, "data_uri") as stream:
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(
                column_names=header, skip_rows=1, block_size=f.block_size
            ),
            parse_options=pcsv.ParseOptions(delimiter=f.delimiter),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                null_values=[],
            ),
        )
        for batch in reader:
            yield pa.RecordBatch.from_arrays(
                [pc.utf8_trim_whitespace(col) for col in batch.columns], names=header
            )


def _csv_error(uri: str, err: Exception) -> InputError:
    reason = str(err).splitlines()[0]
    if "UTF8" in reason:
        return InputError(f"data_uri: {uri} is not UTF-8 CSV ({reason})")
    return InputError(f"data_uri: {uri} is not valid CSV ({reason})")


def _csv_file_facts(
    f: _CsvFile, header: list[str], progress: events.Progress
) -> tuple[list[_CsvFacts], int]:
    """First pass over one file: column facts and rows; grows the block for rows that need it."""
    import pyarrow as pa

    while True:
        facts, rows = [_CsvFacts() for _ in header], 0
        try:
            done = 0
            for batch in _csv_batches(f, header):
                for fact, col in zip(facts, batch.columns, strict=True):
                    fact.add(col)
                rows += batch.num_rows
                # A stream has no position: the cells' bytes plus one separator each.
                done += batch.num_rows * batch.num_columns + sum(
                    col.buffers()[2].size for col in batch.columns if col.buffers()[2]
                )
                progress.add(rows=batch.num_rows, current=done)
            return facts, rows
        except pa.ArrowInvalid as err:
            progress.rows -= rows
            if "straddling" in str(err) and f.block_size < CSV_MAX_BLOCK_SIZE:
                f.block_size *= 4
                log.info("ingest: a row of %s is larger than the block; reading with %d MiB",
                         f.uri, f.block_size >> 20)  # fmt: skip
                continue
            raise _csv_error(f.uri, err) from None


def _csv_source(
    files: list[storage.Stat], progress: events.Progress, delimiter: str = ""
) -> Source:
    """CSV: the first pass types every column over every row, the second encodes the rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    header: list[str] | None = None
    readable: list[_CsvFile] = []
    facts: list[_CsvFacts] = []
    rows = 0
    for f in files:
        file_header, file_delimiter = _read_header(f.uri, delimiter)
        if file_header is None:
            progress.add(f.size, files=1)
            continue
        if header is None:
            header = file_header
            if len(set(header)) != len(header) or "" in header:
                raise InputError(f"data_uri: {f.uri} has an empty or repeated column name")
            facts = [_CsvFacts() for _ in header]
        elif file_header != header:
            raise InputError(f"data_uri: {f.uri} has a different header than {files[0].uri}")
        csv_file = _CsvFile(f.uri, file_delimiter, CSV_BLOCK_SIZE)
        file_facts, file_rows = _csv_file_facts(csv_file, header, progress)
        for total, part in zip(facts, file_facts, strict=True):
            total.missing += part.missing
            total.present += part.present
            total.all_int &= part.all_int
            total.int_fits &= part.int_fits
            total.all_float &= part.all_float
            total.widest = max(total.widest, part.widest, key=len)
        rows += file_rows
        if file_rows:
            readable.append(csv_file)
        progress.add(f.size, files=1)
    if header is None or not rows:
        raise InputError(
            f"data_uri: no data rows in {', '.join(f.uri for f in files)} "
            "(expected a header and rows)"
        )
    columns = [fact.column(name) for fact, name in zip(facts, header, strict=True)]
    names = list(header)

    def chunks() -> Chunks:
        from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder

        encoder = RecordBatchToExamplesEncoder()
        sep = pa.scalar("\x1f")
        for f in readable:
            try:
                for batch in _csv_batches(f, names):
                    lists = [
                        _typed_lists(col.kind, strings)
                        for col, strings in zip(columns, batch.columns, strict=True)
                    ]
                    keys = pc.binary_join_element_wise(*batch.columns, sep).to_pylist()
                    records = encoder.encode(pa.RecordBatch.from_arrays(lists, names=names))
                    yield [k.encode() for k in keys], records
            except pa.ArrowInvalid as err:
                raise _csv_error(f.uri, err) from None

    return Source(_schema(columns), sum(f.size for f in files), rows, chunks)


def _typed_lists(kind: str, strings):
    """A column of trimmed strings as a list array of `kind` values, null where missing."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = pc.is_in(strings, value_set=pa.array(MISSING)).to_numpy(zero_copy_only=False)
    present = pc.filter(strings, pa.array(~missing))
    if kind == "INT":
        values = pc.cast(present, pa.int64())
    elif kind == "FLOAT":
        values = pc.cast(pc.cast(present, pa.float64()), pa.float32())
    else:
        values = present.cast(pa.large_binary())
    offsets = np.concatenate([[0], np.cumsum(~missing, dtype=np.int64)])
    return pa.LargeListArray.from_arrays(pa.array(offsets), values, mask=pa.array(missing))


def _parquet_batches(f: storage.Stat, schema=None) -> Iterator[tuple[object, object, int]]:
    """(arrow schema, RecordBatch, file bytes read so far) of one Parquet file, CHUNK_ROWS a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with (
            storage.errors("data_uri", f.uri),
            storage.open_input(f.uri, "data_uri", seekable=True) as fh,
        ):
            parquet = pq.ParquetFile(fh, pre_buffer=True)
            total, read = max(parquet.metadata.num_rows, 1), 0
            for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
                read += batch.num_rows
                yield parquet.schema_arrow, batch, f.size * read // total
            if not read:
                yield parquet.schema_arrow, None, f.size
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        reason = str(err).splitlines()[0]
        raise InputError(f"data_uri: {f.uri} is not a readable Parquet file ({reason})") from None


def _parquet_source(files: list[storage.Stat], progress: events.Progress) -> Source:
    """Parquet: its own types; the first pass counts missing values and list lengths."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema, columns, rows = None, {}, 0
    for f in files:
        for file_schema, batch, done in _parquet_batches(f):
            if schema is None:
                schema = file_schema
            elif not file_schema.equals(schema):
                raise InputError(
                    f"data_uri: {f.uri} has different columns or types than {files[0].uri}"
                )
            if batch is None:
                continue
            for name in batch.schema.names:
                col, _ = _arrow_column(name, batch.column(name), warn=name not in columns)
                columns[name] = _merge(columns.get(name), col)
            rows += batch.num_rows
            progress.add(rows=batch.num_rows, current=done)
        progress.add(f.size, files=1)
    if schema is None or not rows:
        raise InputError(f"data_uri: no rows in {', '.join(f.uri for f in files)}")
    names = list(schema.names)

    def chunks() -> Chunks:
        from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder

        encoder = RecordBatchToExamplesEncoder()
        sep = pa.scalar(b"\x1f", pa.large_binary())
        for f in files:
            for _, batch, _ in _parquet_batches(f):
                if batch is None:
                    continue
                lists = [_arrow_column(n, batch.column(n), warn=False)[1] for n in names]
                keys = pc.binary_join_element_wise(*[_row_text(a) for a in lists], sep)
                yield (
                    keys.to_pylist(),
                    encoder.encode(pa.RecordBatch.from_arrays(lists, names=names)),
                )

    return Source(_schema(columns[n] for n in names), sum(f.size for f in files), rows, chunks)


def _merge(total: _Column | None, part: _Column) -> _Column:
    """One column's facts over two sets of rows."""
    if total is None:
        return part
    if part.empty:
        total.missing += part.missing
        return total
    if total.empty:
        part.missing += total.missing
        return part
    if total.kind != part.kind:
        raise InputError(
            f"data_uri: feature {part.name!r} holds {total.kind} values in some records and "
            f"{part.kind} values in others (expected one type per feature)"
        )
    total.missing += part.missing
    total.min_values = min(total.min_values, part.min_values)
    total.max_values = max(total.max_values, part.max_values)
    return total


def _tfrecord_chunks(files: list[storage.Stat], progress: events.Progress | None = None):
    """Records of every file, CHUNK_ROWS at a time (a file that is not TFRecord fails in one line)."""
    for f in files:
        for chunk in examples_io.record_batches(f.uri, CHUNK_ROWS, "data_uri"):
            yield chunk
            if progress:
                progress.add(rows=len(chunk), current=0)
        if progress:
            progress.add(f.size, files=1)


def _tfrecord_source(files: list[storage.Stat], progress: events.Progress) -> Source:
    """tf.Examples: the first pass decodes them chunk by chunk for kinds and value counts."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from tfx_bsl.coders.example_coder import ExamplesToRecordBatchDecoder

    decoder = ExamplesToRecordBatchDecoder()
    kinds = {"int64": "INT", "float": "FLOAT"}
    columns: dict[str, _Column] = {}
    rows = 0
    for chunk in _tfrecord_chunks(files, progress):
        try:
            batch = decoder.DecodeBatch(chunk)
        except Exception as err:  # the C++ decoder raises a bare RuntimeError/ValueError
            raise InputError(f"data_uri: records are not tf.Examples ({err})") from None
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            first_seen = name not in columns
            if pa.types.is_null(array.type) or pa.types.is_null(array.type.value_type):
                # no record of the chunk has a value for it (an empty Feature)
                col = _Column(name, "BYTES", len(chunk), empty=True)
            else:
                lengths = pc.list_value_length(array).fill_null(0)
                present = pc.filter(lengths, pc.greater(lengths, 0))
                kind = kinds.get(str(array.type.value_type), "BYTES")
                bounds = pc.min_max(present).as_py() if len(present) else {"min": 1, "max": 1}
                col = _Column(
                    name,
                    kind,
                    len(chunk) - len(present),
                    bounds["min"],
                    bounds["max"],
                    empty=not len(present),
                )
            if first_seen:  # absent from every earlier record
                col.missing += rows
            columns[name] = _merge(columns.get(name), col)
        for name, col in columns.items():
            if name not in batch.schema.names:  # absent from every record of this chunk
                col.missing += len(chunk)
        rows += len(chunk)
    if not rows:
        raise InputError(f"data_uri: no records in {', '.join(f.uri for f in files)}")
    schema = _schema(sorted(columns.values(), key=lambda c: c.name))

    def chunks() -> Chunks:
        # Records are written back as they were read, so their bytes are a stable split key.
        for chunk in _tfrecord_chunks(files):
            yield chunk, chunk

    return Source(schema, sum(f.size for f in files), rows, chunks)


def read(data_uri: str, input_format: str, delimiter: str = "") -> Source:
    """The first pass over the data (its schema, size, rows); `chunks()` streams the second."""
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
        return _csv_source(files, progress, delimiter)
    read = {"tfrecord": _tfrecord_source, "parquet": _parquet_source}
    return read[fmt](files, progress)


def infer_schema(data_uri: str, input_format: str = "auto", delimiter: str = ""):
    """The schema ingest infers for the data (`tfkfp schema` writes it for review)."""
    return read(data_uri, input_format, delimiter).schema


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
