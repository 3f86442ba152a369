"""pusher: a blessed SavedModel -> `<destination>/<version>/`: a folder, gs:// or s3://.

A version is complete once it holds the marker `PUSHED.json`, written last after the pusher
re-read what it wrote; concurrent pushes are safe. How: containers/versions.py.
Imports no TensorFlow, so it starts in well under a second.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace

from tfkfp.containers import events
from tfkfp.containers.layout import BLESSED, NOT_BLESSED
from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.versions import (
    LEASE,
    _file_chunks,
    _hash,
    _Local,
    _model_files,
    _push_id,
    _Remote,
    storage_for,
)

# How long object-store calls keep retrying transient errors (5xx, 429, dropped connections).
RETRY_TIMEOUT = 120.0


@dataclass
class PushResult:
    """What the push did; the component records it as the pushed model's metadata.

    Attributes:
        pushed: Whether a complete version holds this model (False: not blessed).
        destination: The push destination's URI.
        version: The version holding the model, None when not pushed.
        pushed_uri: That version's URI, empty when not pushed.
        content_hash: The model files' hash, None when not pushed.
    """

    pushed: bool
    destination: str
    version: int | None = None
    pushed_uri: str = ""
    content_hash: str | None = None


def is_blessed(blessing: str) -> bool:
    """Reads an evaluator blessing; fails when the artifact has no marker."""
    if os.path.exists(os.path.join(blessing, BLESSED)):
        return True
    if os.path.exists(os.path.join(blessing, NOT_BLESSED)):
        return False
    raise InputError(f"blessing: no {BLESSED} or {NOT_BLESSED} marker in {blessing!r}")


def output_uri(result: PushResult, artifact_uri: str) -> str:
    """Where the `pushed_model` output artifact should point once the pusher has run.

    The pushed version when there is one: kfp.local records the URI a component sets (KFP's
    executor writes it to executor_output.json). The KFP backend's launcher (pods carry KFP_POD_NAME) also takes it, but fails the
    task when a gs:// URI lies outside the pipeline root, so there an object-store push keeps
    the artifact's own URI and the location travels in its metadata (`pushed_uri`).
    """
    uri = result.pushed_uri
    if not uri or (uri.startswith(("gs://", "s3://")) and os.environ.get("KFP_POD_NAME")):
        return artifact_uri
    return uri


def run(
    model: str,
    blessing: str,
    destination: str,
    version: int = 0,
    retry_timeout: float = RETRY_TIMEOUT,
    lease: float = LEASE,
) -> PushResult:
    """Pushes a blessed model to `<destination>/<version>/`; records and skips an unblessed one.

    Parameters are the component's (documented in tfkfp.components.pusher); artifacts
    arrive as local paths. Only here (tests): retry_timeout, seconds object-store calls retry
    transient errors; lease, seconds a push's staging or claim stays its own unrenewed.

    Returns:
        Whether and where the model was pushed.
    """
    store = storage_for(destination)
    result = PushResult(pushed=False, destination=store.uri())
    if not is_blessed(blessing):
        events.result(
            "pusher",
            "model is NOT_BLESSED, nothing pushed",
            summary="model is NOT_BLESSED, nothing pushed",
            **asdict(result),
        )
        return result
    if not os.path.isfile(os.path.join(model, "saved_model.pb")):
        raise InputError(f"model: no SavedModel (saved_model.pb) in {model!r}")
    from tfkfp.containers import storage

    with storage.retry_seconds(retry_timeout):
        return _push(store, model, version, lease, result)


def _push(
    store: _Local | _Remote, model: str, version: int, lease: float, result: PushResult
) -> PushResult:
    store.connect()
    store.check()
    files = _model_files(model)
    digest = _hash(files, _file_chunks(model))
    existing = store.versions()
    if isinstance(store, _Local):
        store.clean_leftovers()
    for v in existing:
        if v.complete and v.content_hash == digest:
            return _pushed(result, v.number, store.uri(v.number), digest, again=True)
    newest = max((v.number for v in existing), default=0)
    if version and version <= newest:
        raise InputError(
            f"version: {version} is not above the newest version {newest} in {store.uri()}"
        )

    def numbers(taken: int) -> int:
        """The number to try: `version`, else a Unix timestamp above everything seen."""
        if version:
            return version
        return max(int(time.time()), newest + 1, taken + 1)

    marker = {
        "content_hash": digest,
        "files": {rel: os.path.getsize(os.path.join(model, rel)) for rel in files},
        "pushed_at": time.time(),
        "source": model,
        "push_id": _push_id(),
    }
    log.info("pusher: pushing %s to %s", model, store.uri())
    number = store.publish(model, marker, numbers, bool(version), lease)
    return _pushed(result, number, store.uri(number), digest, again=False)


def _pushed(result: PushResult, number: int, uri: str, digest: str, again: bool) -> PushResult:
    """The result of a push that wrote version `number` (or found it holding the same model)."""
    pushed = replace(result, pushed=True, version=number, pushed_uri=uri, content_hash=digest)
    if again:
        summary = f"same model already pushed as {uri}"
        events.result(
            "pusher", "same model already pushed as %s", uri, summary=summary, **asdict(pushed)
        )
    else:
        summary = f"pushed version {number}"
        events.result(
            "pusher", "pushed version %d to %s", number, uri, summary=summary, **asdict(pushed)
        )
    return pushed
