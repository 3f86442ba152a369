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
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tfkfp.containers.runtime import InputError
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


@dataclass(frozen=True)
class Marker:
    """A version's `PUSHED.json`: what the push recorded, written last (see the docstring).

    The JSON keeps the keys (and their order) earlier tfkfp wrote; markers it wrote before a
    field existed still read (`files` {}, `evaluation` {}, the rest None).

    Attributes:
        content_hash: sha256 over the model's files (versions.content_hash).
        files: The model's files (relative path -> size in bytes), saved_model.pb last.
        evaluation: What the pusher recorded of the model's evaluation (pusher.evaluation), a
            JSON object kept as it is; {} when none (or not an object).
        pushed_at: Unix time of the push; kept as read (`tfkfp versions` names one that is not
            a number).
        source: The model folder pushed.
        push_id: The push that wrote it (its claims and staging folder carry the same id).
    """

    content_hash: str
    files: dict[str, int] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    pushed_at: Any = None
    source: Any = None
    push_id: str | None = None

    # the keys in the order earlier tfkfp wrote them
    _KEYS = ("content_hash", "evaluation", "files", "pushed_at", "source", "push_id")

    def to_json(self) -> str:
        return json.dumps({key: getattr(self, key) for key in self._KEYS})

    def write(self, path: str) -> None:
        """Writes the marker to a local file (the caller fsyncs it)."""
        with open(path, "w") as fh:
            fh.write(self.to_json())

    @classmethod
    def from_json(cls, text: bytes | str, where: str, name: str) -> Marker:
        """Parses a marker; a damaged one is an error, never a silently skipped version.

        Raises InputError naming `name` (the input the destination came from) and `where`.
        """
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"{name}: {where} is not valid JSON ({err})") from None
        files = data.get("files", {}) if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("content_hash"), str)
            or not isinstance(files, dict)
            or not all(isinstance(s, int) for s in files.values())
        ):
            raise InputError(
                f"{name}: {where} is not a tfkfp push marker (expected a JSON object with "
                "content_hash and files)"
            )
        evaluation = data.get("evaluation")
        return cls(
            content_hash=data["content_hash"],
            files=files,
            evaluation=evaluation if isinstance(evaluation, dict) else {},
            pushed_at=data.get("pushed_at"),
            source=data.get("source"),
            push_id=data.get("push_id"),
        )

    @classmethod
    def read(cls, uri: str, name: str = "destination") -> Marker:
        """The marker at `uri` (a path, gs:// or s3://); one line naming `name` if damaged."""
        from tfkfp.containers.store import storage

        return cls.from_json(storage.read_bytes(uri, name), uri, name)


@dataclass(frozen=True)
class Claim:
    """A push's claim on an object store: `.tfkfp-claims/<number>.<push id>` (or the commit
    lock's, `commit.<push id>`); the object's mtime is when its lease was last renewed.

    Attributes:
        push_id: The push holding it.
        lease: Seconds it stays the push's without being renewed.
        host: The host the push runs on (for whoever finds it).
        pid: The push's process id there.
    """

    push_id: str
    lease: float
    host: str = ""
    pid: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {"push_id": self.push_id, "lease": self.lease, "host": self.host, "pid": self.pid}
        )

    @classmethod
    def from_json(cls, text: bytes | str) -> Claim:
        """Parses a claim; ValueError for anything that is not one (callers decide)."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("push_id"), str):
            raise ValueError("not a tfkfp claim (expected a JSON object with push_id and lease)")
        try:
            lease = float(data["lease"])
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a tfkfp claim (lease: {err})") from None
        return cls(data["push_id"], lease, str(data.get("host", "")), data.get("pid", 0))


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
