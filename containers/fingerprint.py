"""fingerprint: what the data at `data_uri` is right now, as one string that feeds ingest.

KFP caches a task on its inputs, and `data_uri` alone says nothing about new data at the same
path. This step, never cached, lists the files (no content is read) and hashes their names,
sizes and versions (GCS generation, S3 ETag, local mtime), as TFX fingerprints its input
files. Ingest takes the result as an input: unchanged data gives the same fingerprint, so
ingest and every task after it come from cache; changed data gives a new one and they rerun.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tfkfp.containers import events
from tfkfp.containers.store import storage

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ()


@dataclass(frozen=True)
class FingerprintResult:
    """What the data at `data_uri` is right now.

    Attributes:
        fingerprint: `sha256:<hex>` over each file's URI, size and version stamp, in URI order.
        files: Files listed.
        bytes: Their total size.
    """

    fingerprint: str
    files: int
    bytes: int


def run(data_uri: str) -> FingerprintResult:
    """Fingerprints the files at `data_uri` (a file, a folder or a glob) from a listing.

    Args:
        data_uri: What ingest will read: a local path, KFP mount, gs:// or s3:// location.

    Returns:
        The fingerprint (what the component outputs) and the listing's size.

    Raises:
        InputError: when nothing is there (the same check ingest makes, before any work).
    """
    files = storage.list_files(data_uri, "data_uri", version=True)
    digest = hashlib.sha256()
    for stat in files:
        digest.update(f"{stat.uri}\0{stat.size}\0{stat.version or stat.mtime}\n".encode())
    fingerprint = f"sha256:{digest.hexdigest()}"
    size = sum(s.size for s in files)
    events.result(
        "fingerprint",
        "%d file(s), %d bytes under %s: %s",
        len(files),
        size,
        data_uri,
        fingerprint,
        summary=f"{len(files)} file(s), {size} bytes",
        files=len(files),
        bytes=size,
        fingerprint=fingerprint,
    )
    return FingerprintResult(fingerprint=fingerprint, files=len(files), bytes=size)
