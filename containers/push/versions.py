"""What a version under a push destination is: its number, model files, content hash, marker.

A version is complete once it holds the marker `PUSHED.json`, written last (after the model
and every bookkeeping file, the model card among them) and only after the pusher re-read what it
wrote (sizes, and the content hash over every byte) from the
destination. Readers, the evaluator's baseline lookup among them, ignore versions without it;
a marker that does not parse, or whose file list the version does not match, is an error.

Where versions live (a folder, gs:// or s3://) and how a push publishes one safely beside
concurrent pushes: containers/push/destination.py. Imports no TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from tfkfp.containers.runtime import InputError
from tfkfp.containers.store.layout import PUSHED as MARKER
from tfkfp.containers.store.layout import is_bookkeeping

STAGING_PREFIX = ".staging-"
CLAIMS = ".tfkfp-claims"
# The claim name of an object store's commit lock: `.tfkfp-claims/commit.<push id>`.
COMMIT = "commit"
# Seconds a push owns its staging folder or claim without renewing it (renewed every quarter).
LEASE = 120.0
# Claims tried before a push gives up on a destination other pushes keep taking numbers from.
CLAIM_ATTEMPTS = 12


def model_files(model_dir: str) -> list[str]:
    """Relative paths of the model's files, saved_model.pb last (it is what readers look for).

    tfkfp's bookkeeping files (a pushed version's marker) are left out: a model pushed from a
    pushed version carries only the model.
    """
    files = []
    for root, _, names in os.walk(model_dir):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), model_dir).replace(os.sep, "/")
            if not is_bookkeeping(rel):
                files.append(rel)
    files.sort(key=lambda f: (f == "saved_model.pb", f))
    return files


def hash_files(files: Iterable[str], chunks: Callable[[str], Iterator[bytes]]) -> str:
    """sha256 over every file's relative path and bytes, in path order."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0")
        for chunk in chunks(rel):
            digest.update(chunk)
    return digest.hexdigest()


def file_chunks(root: str) -> Callable[[str], Iterator[bytes]]:
    def chunks(rel: str) -> Iterator[bytes]:
        with open(os.path.join(root, rel), "rb") as fh:
            yield from iter(lambda: fh.read(1 << 20), b"")

    return chunks


def content_hash(model_dir: str) -> str:
    """sha256 over every file's relative path and bytes: equal models, equal hash."""
    return hash_files(model_files(model_dir), file_chunks(model_dir))


@dataclass
class Version:
    number: int
    complete: bool
    content_hash: str | None = None
    files: dict[str, int] = field(default_factory=dict)
    # what the pusher recorded of the model's evaluation (see pusher.evaluation); {} if none
    evaluation: dict = field(default_factory=dict)


class NotNewer(Exception):
    """A push may not become the newest version (see pusher.may_supersede); nothing published."""


# Called with the complete versions right before a push publishes (under the destination's
# commit lock); raises NotNewer to stop it; True when the push was judged fit to supersede the
# newest version (then on an object store it moves above one published while it uploaded).
Admit = Callable[[list[Version]], bool]
# The bookkeeping files (name -> bytes) a push writes into version `number` before its marker.
Bookkeeping = Callable[[int], dict[str, bytes]]


def complete_versions(found: list[Version]) -> list[Version]:
    return [v for v in found if v.complete]


def read_marker(text: bytes | str, where: str, name: str = "destination") -> dict:
    """Parses a marker; a damaged one is an error, never a silently skipped version."""
    try:
        marker = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{name}: {where} is not valid JSON ({err})") from None
    files = marker.get("files", {}) if isinstance(marker, dict) else None
    if (
        not isinstance(marker, dict)
        or not isinstance(marker.get("content_hash"), str)
        or not isinstance(files, dict)
        or not all(isinstance(s, int) for s in files.values())
    ):
        raise InputError(
            f"{name}: {where} is not a tfkfp push marker (expected a JSON object with "
            "content_hash and files)"
        )
    return marker


def version_of(number: int, marker: dict) -> Version:
    evaluation = marker.get("evaluation")
    return Version(
        number,
        True,
        marker["content_hash"],
        marker.get("files", {}),
        evaluation if isinstance(evaluation, dict) else {},
    )


def check_files(marker: dict, found: dict[str, int], where: str, name: str = "destination") -> None:
    """A marked version must hold the files its marker names, at their sizes.

    Bookkeeping files a marker names are not checked: versions promoted before they were left
    out (issue 25) list their source's marker, which their own marker replaced.
    """
    for rel, size in marker.get("files", {}).items():
        if is_bookkeeping(rel):
            continue
        if found.get(rel) != size:
            got = "missing" if rel not in found else f"{found[rel]} bytes"
            raise InputError(
                f"{name}: {where} is marked complete but {rel} is {got}, "
                f"not {size} bytes as its {MARKER} says"
            )


def new_push_id() -> str:
    return f"{uuid.uuid4().hex[:12]}"
