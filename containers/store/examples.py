"""The one examples module: TFRecord framing, the split readers and sampler, and the manifest.

Every stage that reads or writes examples goes through here: `read_records` (one file),
`split_batches` / `split_records` (a split, in batches or with each record's place), `first`
(THE sampler: a split's first n examples) and `TFRecordWriter`. TFRecord framing is a few lines
over storage.py's streams rather than tf.data, so ingest and statistics run without TensorFlow and
every reader reads gs:// and s3:// alike; a file that is not a TFRecord fails in one line naming it.

The examples manifest: what ingest and transform wrote, so readers refuse damaged files.

One JSON file at the root of an examples artifact, beside its `Split-<split>/` folders (outside
them, so TFX's readers, which read every file of a split folder, are not disturbed):

    tfkfp_manifest.json
    {"format": "tfkfp-examples-manifest", "version": 1,
     "splits": {"train": {"records": 260,
                          "files": {"data_tfrecord-00000-of-00001.gz":
                                    {"bytes": 12345, "crc32c": "1a2b3c4d"}}}, ...}}

A reader checks that a split's files are exactly the listed ones, with the listed sizes and
CRC32C of their bytes. That catches a file truncated anywhere (on a record boundary too) and
bytes changed inside a record, at the cost of one read of the compressed bytes (no gzip
decompression: CRC32C runs at several GB/s). Examples without a manifest (written by TFX or by
hand) have each file's TFRecord framing read once instead (see `verify`), and the stage logs it.

Reads and writes through containers/store/storage.py: a remote Beam runner's transform writes its
examples (and so the manifest) at a gs:// or s3:// URI. Imports nothing heavy: ingest runs
without TensorFlow.
"""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.store import storage
from tfkfp.containers.store.layout import MANIFEST, split_dir, split_pattern

FORMAT = "tfkfp-examples-manifest"
VERSION = 1
_CHUNK = 8 << 20


def _crc32c(uri: str, what: str) -> str:
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with storage.open_input(uri, what) as fh:
        while chunk := fh.read(_CHUNK):
            checksum.update(chunk)
    return checksum.hexdigest().decode()


def _split_files(examples: str, split: str, what: str) -> dict[str, int]:
    """{file name: bytes} of a split folder's visible files (none when it is missing)."""
    _, files = storage.list_dir(split_dir(examples, split), what)
    sizes = {}
    for stat in files:
        name = stat.uri.rstrip("/").rsplit("/", 1)[-1]
        if not name.startswith("."):
            sizes[name] = stat.size
    return dict(sorted(sizes.items()))


@dataclass(frozen=True)
class ShardEntry:
    """One file of a split as it was written: its size and the CRC32C of its bytes."""

    bytes: int
    crc32c: str


@dataclass(frozen=True)
class SplitEntry:
    """One split as it was written: its record count and its files by name."""

    records: int
    files: dict[str, ShardEntry]


@dataclass(frozen=True)
class Manifest:
    """The examples manifest (`tfkfp_manifest.json`): what ingest or transform wrote."""

    splits: dict[str, SplitEntry]
    version: int = VERSION

    def to_json(self) -> str:
        """The file's text: the same keys (sorted) every tfkfp version wrote."""
        splits = {
            name: {
                "records": entry.records,
                "files": {f: asdict(shard) for f, shard in entry.files.items()},
            }
            for name, entry in self.splits.items()
        }
        body = {"format": FORMAT, "version": self.version, "splits": splits}
        return json.dumps(body, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parses the file's text; ValueError/TypeError/KeyError when it is not a manifest."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"expected format {FORMAT!r} with splits")
        splits = data.get("splits")
        if not isinstance(splits, dict):
            raise ValueError(f"expected format {FORMAT!r} with splits")
        return cls(
            splits={
                name: SplitEntry(
                    records=int(entry.get("records", 0)),
                    files={
                        f: ShardEntry(bytes=int(e["bytes"]), crc32c=str(e["crc32c"]))
                        for f, e in entry.get("files", {}).items()
                    },
                )
                for name, entry in splits.items()
            },
            version=int(data.get("version", 0)),
        )

    def records(self, splits: tuple[str, ...] | list[str]) -> int:
        """Rows in the given splits (0 for a split it does not list)."""
        return sum(self.splits[s].records for s in splits if s in self.splits)


def write(examples: str, records: dict[str, int], what: str = "examples") -> Manifest:
    """Writes the manifest of the splits in `records` (split -> record count) into `examples`.

    Call it on the staged output (a local folder or a remote runner's URI), after every split
    file is closed.
    """
    splits = {}
    for split, count in records.items():
        folder = split_dir(examples, split)
        splits[split] = SplitEntry(
            records=int(count),
            files={
                name: ShardEntry(bytes=size, crc32c=_crc32c(storage.join(folder, name), what))
                for name, size in _split_files(examples, split, what).items()
            },
        )
    manifest = Manifest(splits=splits)
    storage.write_text(storage.join(examples, MANIFEST), manifest.to_json(), what)
    return manifest


def read(examples: str, what: str = "examples") -> Manifest | None:
    """The manifest of an examples artifact, None when it has none; fails when it is unreadable."""
    path = storage.join(examples, MANIFEST)
    if storage.stat(path, what) is None:
        return None
    try:
        manifest = Manifest.from_json(storage.read_text(path, what))
    except (OSError, ValueError, AttributeError, TypeError, KeyError) as err:
        raise InputError(f"{what}: {path} is not a readable examples manifest ({err})") from None
    if manifest.version > VERSION:
        raise InputError(
            f"{what}: {path} has manifest version {manifest.version}; this tfkfp reads "
            f"version {VERSION} (upgrade tfkfp)"
        )
    return manifest


def records(examples: str, splits: tuple[str, ...] | list[str]) -> int | None:
    """Rows in the given splits by the examples' manifest; None without a readable one.

    For progress lines only: the stage's own checks report an unreadable manifest.
    """
    try:
        found = read(examples)
    except ValueError:
        return None
    if not found:
        return None
    return found.records(splits) or None


def verify(
    examples: str, splits: tuple[str, ...] | list[str], what: str = "examples", frames: bool = True
) -> bool:
    """Fails in one line naming the file unless each split's files match the manifest.

    Without a manifest (examples written by TFX or by hand) and with `frames`, every file of
    the splits is read once through its TFRecord framing instead, so a truncated or garbage
    file fails here in one line rather than as a traceback from TF, Beam or TFMA later. A stage
    that reads every record itself through this module passes `frames=False`.

    Returns:
        True when verified, False when the artifact has no manifest (nothing to check against).
    """
    manifest = read(examples, what)
    if manifest is None:
        if not frames:
            log.info("%s: no %s in %s; files read unverified", what, MANIFEST, examples)
            return False
        files = [f for split in splits for f in split_files(examples, split, what)]
        rows = sum(sum(1 for _ in read_records(f.uri, what)) for f in files)
        log.info(
            "%s: no %s in %s; the TFRecord framing of its %d file(s) checked (%d records)",
            what,
            MANIFEST,
            examples,
            len(files),
            rows,
        )
        return False
    for split in splits:
        entry = manifest.splits.get(split)
        if entry is None:
            raise InputError(f"{what}: {storage.join(examples, MANIFEST)} lists no '{split}' split")
        folder = split_dir(examples, split)
        listed = entry.files
        found = _split_files(examples, split, what)
        missing = sorted(set(listed) - set(found))
        if missing:
            raise InputError(
                f"{what}: {storage.join(folder, missing[0])} is missing (in {MANIFEST})"
            )
        extra = sorted(set(found) - set(listed))
        if extra:
            raise InputError(
                f"{what}: {storage.join(folder, extra[0])} is not in {MANIFEST} (added afterwards?)"
            )
        for name, size in found.items():
            path = storage.join(folder, name)
            want = listed[name]
            if size != want.bytes:
                raise InputError(
                    f"{what}: {path} is damaged: {size} bytes, {want.bytes} written "
                    f"({'truncated' if size < want.bytes else 'grown'} since)"
                )
            if _crc32c(path, what) != want.crc32c:
                raise InputError(
                    f"{what}: {path} is damaged: its bytes changed since they were written "
                    f"(CRC32C differs from {MANIFEST})"
                )
    log.info(
        "%s: %s verified against %s (%s)",
        what,
        ", ".join(splits),
        MANIFEST,
        ", ".join(f"{s}={manifest.splits[s].records} records" for s in splits),
    )
    return True


def require_split(examples_dir: str, split: str, what: str) -> str:
    """The split's file pattern; fails naming the input when it has no files or damaged ones.

    Damaged: not as the examples manifest ingest or transform wrote says.
    """
    import glob

    pattern = split_pattern(examples_dir, split)
    if not glob.glob(pattern):
        raise InputError(f"{what}: no '{split}' split files matching {pattern}")
    verify(examples_dir, [split], what)
    return pattern


# --- TFRecord framing: length (8 bytes), masked CRC32C of length, data, masked CRC32C of data ---

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".gz", ".tfrecord.gz")
READ_BYTES = 16 << 20  # decompressed bytes framed at a time: memory stays bounded
_LENGTH = struct.Struct("<Q")


def masked_crc(data: bytes) -> bytes:
    """TFRecord's masked CRC32C of `data`, as the 4 bytes a record holds."""
    import google_crc32c

    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


class TFRecordWriter:
    """gzip TFRecord writer of a local file (what ingest writes and TF reads)."""

    def __init__(self, path: str):
        self.path = path
        self.records = 0
        self._fh = gzip.open(path, "wb", compresslevel=6)

    def write(self, record: bytes) -> None:
        length = _LENGTH.pack(len(record))
        self._fh.write(length + masked_crc(length) + record + masked_crc(record))
        self.records += 1

    def close(self) -> None:
        self._fh.close()


def _frames(stream, check_every: bool) -> Iterator[list[bytes]]:
    """Records of an uncompressed TFRecord stream, as the lists read READ_BYTES at a time hold.

    The length's CRC is checked on a file's first record, on any length beyond READ_BYTES (a
    garbage length would otherwise buffer the whole file), and on every record when
    `check_every`: a gzip file's own CRC-32 vouches for the bytes after the first header, and
    checking each costs about 1 s per million records.
    """
    unpack = _LENGTH.unpack_from
    data, pos, first = b"", 0, True
    while chunk := stream.read(READ_BYTES):
        data, pos = data[pos:] + chunk, 0
        size = len(data)
        found = []
        while pos + 12 <= size:
            (length,) = unpack(data, pos)
            if (first or check_every or length > READ_BYTES) and masked_crc(
                data[pos : pos + 8]
            ) != data[pos + 8 : pos + 12]:
                raise ValueError("corrupt record header")
            first = False
            end = pos + 12 + length
            if end + 4 > size:
                break  # the record continues in the next chunk
            found.append(data[pos + 12 : end])
            pos = end + 4
        if found:
            yield found
    if pos != len(data):
        raise ValueError("truncated record")


def _file_frames(uri: str, what: str) -> Iterator[list[bytes]]:
    with storage.errors(what, uri):
        try:
            with storage.open_input(uri, what) as raw:
                gz = uri.endswith(".gz")
                stream = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
                yield from _frames(stream, check_every=not gz)
        except InputError:
            raise
        except (gzip.BadGzipFile, zlib.error, EOFError, ValueError) as err:
            raise InputError(f"{what}: {uri} is not a readable TFRecord file ({err})") from None


def read_records(uri: str, what: str = "examples") -> Iterator[bytes]:
    """Serialized records of one TFRecord file (gzip when it ends in .gz), local, gs:// or s3://.

    Fails in one line naming `what` and the file when it is not a readable TFRecord file, and
    naming `what` on a storage error.
    """
    for found in _file_frames(uri, what):
        yield from found


def record_batches(uri: str, rows: int, what: str = "examples") -> Iterator[list[bytes]]:
    """As `read_records`, in lists of `rows` records (the last one shorter)."""
    batch: list[bytes] = []
    for found in _file_frames(uri, what):
        batch.extend(found)
        while len(batch) >= rows:
            yield batch[:rows]
            batch = batch[rows:]
    if batch:
        yield batch


def split_files(examples: str, split: str, what: str = "examples") -> list[storage.Stat]:
    """The gzip TFRecord files of one split (sharded or one file), sorted; fails without any."""
    folder = split_dir(examples, split)
    if not storage.exists(folder, what):
        raise InputError(f"{what}: no '{split}' split at {folder}")
    return storage.list_files(folder, what, suffixes=(".gz",))


def split_batches(
    examples: str, split: str, rows: int, what: str = "examples"
) -> Iterator[list[bytes]]:
    """A split's serialized examples, `rows` at a time, file after file."""
    for f in split_files(examples, split, what):
        yield from record_batches(f.uri, rows, what)


def split_records(
    examples: str, splits: list[str], what: str = "examples"
) -> Iterator[tuple[str, bytes]]:
    """(where, serialized example) of every example of the splits, in reading order, lazily.

    `where` names the example for an error line: its split, file and record index.
    """
    for split in splits:
        for f in split_files(examples, split, what):
            name = f.uri.rstrip("/").rsplit("/", 1)[-1]
            for i, record in enumerate(read_records(f.uri, what)):
                yield f"split {split}, file {name}, record {i}", record


def first(examples: str, split: str, n: int, what: str = "examples") -> list[bytes]:
    """The sampler: a split's first n serialized examples (fewer when it has fewer)."""
    found: list[bytes] = []
    if n < 1:
        return found
    for _, record in split_records(examples, [split], what):
        found.append(record)
        if len(found) >= n:
            break
    return found
