"""pusher: a blessed SavedModel -> `<destination>/<version>/`: a folder, gs:// or s3://.

A version is complete once it holds the marker `PUSHED.json`, written last after the pusher
re-read what it wrote; concurrent pushes are safe. How: containers/versions.py.
Imports no TensorFlow, so it starts in well under a second.
"""

from __future__ import annotations

import os
import time

from tfkfp.containers.layout import BLESSED, INFRA_BLESSED, INFRA_NOT_BLESSED, NOT_BLESSED
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


def is_blessed(blessing: str) -> bool:
    """Reads an evaluator blessing; fails when the artifact has no marker."""
    if os.path.exists(os.path.join(blessing, BLESSED)):
        return True
    if os.path.exists(os.path.join(blessing, NOT_BLESSED)):
        return False
    raise InputError(f"blessing: no {BLESSED} or {NOT_BLESSED} marker in {blessing!r}")


def _infra_blessed(infra_blessing: str) -> bool:
    """Reads infra_validate's blessing; fails when the artifact has no marker."""
    if os.path.exists(os.path.join(infra_blessing, INFRA_BLESSED)):
        return True
    if os.path.exists(os.path.join(infra_blessing, INFRA_NOT_BLESSED)):
        return False
    raise InputError(
        f"infra_blessing: no {INFRA_BLESSED} or {INFRA_NOT_BLESSED} marker in {infra_blessing!r}"
    )


def output_uri(result: dict, artifact_uri: str) -> str:
    """Where the `pushed_model` output artifact should point once the pusher has run.

    The pushed version when there is one: kfp.local records the URI a component sets (KFP's
    executor writes it to executor_output.json). The KFP backend's launcher (pods carry KFP_POD_NAME) also takes it, but fails the
    task when a gs:// URI lies outside the pipeline root, so there an object-store push keeps
    the artifact's own URI and the location travels in its metadata (`pushed_uri`).
    """
    uri = result.get("pushed_uri") or ""
    if not uri or (uri.startswith(("gs://", "s3://")) and os.environ.get("KFP_POD_NAME")):
        return artifact_uri
    return uri


def run(
    model: str,
    blessing: str,
    destination: str,
    version: int = 0,
    infra_blessing: str | None = None,
    tflite_model: str | None = None,
    push_format: str = "saved_model",
    retry_timeout: float = RETRY_TIMEOUT,
    lease: float = LEASE,
) -> dict:
    """Pushes a blessed model to `<destination>/<version>/`; records and skips an unblessed one.

    Parameters are the component's (documented in tfkfp.components.pusher); artifacts
    arrive as local paths. Only here (tests): retry_timeout, seconds object-store calls retry
    transient errors; lease, seconds a push's staging or claim stays its own unrenewed.

    Returns:
        `pushed`, `destination`, `version`, `pushed_uri`, `content_hash`.
    """
    store = storage_for(destination)
    result = {
        "pushed": False,
        "destination": store.uri(),
        "version": None,
        "pushed_uri": "",
        "content_hash": None,
    }
    if not is_blessed(blessing):
        log.info("pusher: model is NOT_BLESSED, nothing pushed")
        return result
    if infra_blessing and not _infra_blessed(infra_blessing):
        log.info("pusher: model is INFRA_NOT_BLESSED (infra_validate), nothing pushed")
        return result
    if push_format not in PUSH_FORMATS:
        raise InputError(
            f"push_format: expected one of {', '.join(PUSH_FORMATS)}, got {push_format!r}"
        )
    if push_format != "tflite" and not os.path.isfile(os.path.join(model, "saved_model.pb")):
        raise InputError(f"model: no SavedModel (saved_model.pb) in {model!r}")
    import tempfile

    from tfkfp.containers import model_card, storage

    with tempfile.TemporaryDirectory(prefix="tfkfp-push-") as workdir:
        folder = (
            _with_tflite(model, tflite_model, push_format, workdir)
            if push_format != "saved_model"
            else model
        )
        with storage.retry_seconds(retry_timeout):
            pushed = _push(store, folder, version, lease, result)
            if (
                model_card.read(pushed["pushed_uri"]) is None
            ):  # the same model pushed before keeps its card
                model_card.write(model_card.facts(pushed, model, blessing, infra_blessing))
            return pushed


# What a version holds: the SavedModel, the TFLite model (`model.tflite`), or both.
PUSH_FORMATS = ("saved_model", "tflite", "both")


def _with_tflite(model: str, tflite_model: str | None, push_format: str, workdir: str) -> str:
    """A folder with what the version should hold: `model.tflite`, beside the SavedModel or not."""
    import shutil

    from tfkfp.containers.layout import TFLITE_FILE, TFX_TFLITE

    source = os.path.join(tflite_model or "", TFX_TFLITE, TFLITE_FILE)
    if not tflite_model or not os.path.isfile(source):
        raise InputError(
            f"tflite_model: push_format {push_format} needs the tflite stage's output "
            f"({TFX_TFLITE}/{TFLITE_FILE}), got {tflite_model!r}"
        )
    folder = os.path.join(workdir, "version")
    if push_format == "both":
        shutil.copytree(model, folder)
    else:
        os.makedirs(folder)
    shutil.copyfile(source, os.path.join(folder, "model.tflite"))
    return folder


def _push(store: _Local | _Remote, model: str, version: int, lease: float, result: dict) -> dict:
    store.connect()
    store.check()
    files = _model_files(model)
    digest = _hash(files, _file_chunks(model))
    existing = store.versions()
    if isinstance(store, _Local):
        store.clean_leftovers()
    for v in existing:
        if v.complete and v.content_hash == digest:
            log.info("pusher: same model already pushed as %s", store.uri(v.number))
            return {
                **result,
                "pushed": True,
                "version": v.number,
                "pushed_uri": store.uri(v.number),
                "content_hash": digest,
            }
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
    log.info("pusher: pushed version %d to %s", number, store.uri(number))
    return {
        **result,
        "pushed": True,
        "version": number,
        "pushed_uri": store.uri(number),
        "content_hash": digest,
    }
