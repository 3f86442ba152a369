"""The examples manifest: what ingest and transform wrote, so readers refuse damaged files.

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
hand) are read unverified, and the stage logs that it did so.

Imports nothing heavy: ingest runs without TensorFlow.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfkfp.containers.runtime import InputError, log

MANIFEST = "tfkfp_manifest.json"
FORMAT = "tfkfp-examples-manifest"
VERSION = 1
_CHUNK = 8 << 20


def _crc32c(path: str) -> str:
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            checksum.update(chunk)
    return checksum.hexdigest().decode()


def _split_files(examples_dir: str, split: str) -> list[str]:
    folder = os.path.join(examples_dir, f"Split-{split}")
    if not os.path.isdir(folder):
        return []
    return sorted(
        name
        for name in os.listdir(folder)
        if not name.startswith(".") and os.path.isfile(os.path.join(folder, name))
    )


def write(examples_dir: str, records: dict[str, int]) -> dict[str, Any]:
    """Writes the manifest of the splits in `records` (split -> record count) into examples_dir.

    Call it on the staged output, after every split file is closed.
    """
    splits = {}
    for split, count in records.items():
        folder = os.path.join(examples_dir, f"Split-{split}")
        splits[split] = {
            "records": int(count),
            "files": {
                name: {
                    "bytes": os.path.getsize(os.path.join(folder, name)),
                    "crc32c": _crc32c(os.path.join(folder, name)),
                }
                for name in _split_files(examples_dir, split)
            },
        }
    manifest = {"format": FORMAT, "version": VERSION, "splits": splits}
    with open(os.path.join(examples_dir, MANIFEST), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
    return manifest


def read(examples_dir: str, what: str = "examples") -> dict[str, Any] | None:
    """The manifest of an examples artifact, None when it has none; fails when it is unreadable."""
    path = os.path.join(examples_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
        if manifest.get("format") != FORMAT or not isinstance(manifest.get("splits"), dict):
            raise ValueError(f"expected format {FORMAT!r} with splits")
    except (OSError, ValueError, AttributeError) as err:
        raise InputError(f"{what}: {path} is not a readable examples manifest ({err})") from None
    if manifest.get("version", 0) > VERSION:
        raise InputError(
            f"{what}: {path} has manifest version {manifest['version']}; this tfkfp reads "
            f"version {VERSION} (upgrade tfkfp)"
        )
    return manifest


def verify(examples_dir: str, splits: tuple[str, ...] | list[str], what: str = "examples") -> bool:
    """Fails in one line naming the file unless each split's files match the manifest.

    Returns:
        True when verified, False when the artifact has no manifest (nothing to check against).
    """
    manifest = read(examples_dir, what)
    if manifest is None:
        log.info("%s: no %s in %s; files read unverified", what, MANIFEST, examples_dir)
        return False
    for split in splits:
        entry = manifest["splits"].get(split)
        if entry is None:
            raise InputError(
                f"{what}: {os.path.join(examples_dir, MANIFEST)} lists no '{split}' split"
            )
        folder = os.path.join(examples_dir, f"Split-{split}")
        listed = entry.get("files", {})
        found = _split_files(examples_dir, split)
        missing = sorted(set(listed) - set(found))
        if missing:
            raise InputError(
                f"{what}: {os.path.join(folder, missing[0])} is missing (in {MANIFEST})"
            )
        extra = sorted(set(found) - set(listed))
        if extra:
            raise InputError(
                f"{what}: {os.path.join(folder, extra[0])} is not in {MANIFEST} (added afterwards?)"
            )
        for name in found:
            path = os.path.join(folder, name)
            size = os.path.getsize(path)
            want = listed[name]
            if size != want["bytes"]:
                raise InputError(
                    f"{what}: {path} is damaged: {size} bytes, {want['bytes']} written "
                    f"({'truncated' if size < want['bytes'] else 'grown'} since)"
                )
            if _crc32c(path) != want["crc32c"]:
                raise InputError(
                    f"{what}: {path} is damaged: its bytes changed since they were written "
                    f"(CRC32C differs from {MANIFEST})"
                )
    log.info(
        "%s: %s verified against %s (%s)",
        what,
        ", ".join(splits),
        MANIFEST,
        ", ".join(f"{s}={manifest['splits'][s].get('records', '?')} records" for s in splits),
    )
    return True
