"""What a version under a push destination is: its number, model files and content hash.

A version is complete once it holds the marker `PUSHED.json`, written last (after the model
and every bookkeeping file, the model card among them) and only after the pusher re-read what it
wrote (sizes, and the content hash over every byte) from the
destination. Readers, the evaluator's baseline lookup among them, ignore versions without it;
a marker that does not parse, or whose file list the version does not match, is an error.

Where versions live (a folder, gs:// or s3://), how their markers are read and checked, and how
a push publishes one safely beside concurrent pushes: containers/push/destination.py.
Imports no TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

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


def new_push_id() -> str:
    return f"{uuid.uuid4().hex[:12]}"
