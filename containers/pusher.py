"""pusher: a blessed SavedModel -> `<destination>/<version>/`, local folder or gs:// bucket.

A version is complete once it holds the marker `PUSHED.json` (written last); readers, the
evaluator's baseline lookup among them, ignore versions without it. Locally the version is
assembled in a hidden staging folder and renamed into place, so TF Serving never sees it half
written; on GCS every file is uploaded, `saved_model.pb` last, then the marker. Imports no
TensorFlow, so it starts in well under a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tfkfp.containers.runtime import InputError, log

MARKER = "PUSHED.json"
STAGING_PREFIX = ".staging-"


def is_blessed(blessing_dir: str) -> bool:
    """Reads an evaluator blessing; fails when the artifact has no marker."""
    if os.path.exists(os.path.join(blessing_dir, "BLESSED")):
        return True
    if os.path.exists(os.path.join(blessing_dir, "NOT_BLESSED")):
        return False
    raise InputError(f"blessing: no BLESSED or NOT_BLESSED marker in {blessing_dir!r}")


def _model_files(model_dir: str) -> list[str]:
    """Relative paths of the model's files, saved_model.pb last (it is what readers look for)."""
    files = []
    for root, _, names in os.walk(model_dir):
        for name in names:
            files.append(os.path.relpath(os.path.join(root, name), model_dir))
    files.sort(key=lambda f: (f == "saved_model.pb", f))
    return files


def content_hash(model_dir: str) -> str:
    """sha256 over every file's relative path and bytes: equal models, equal hash."""
    digest = hashlib.sha256()
    for rel in sorted(_model_files(model_dir)):
        digest.update(rel.encode() + b"\0")
        with open(os.path.join(model_dir, rel), "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Version:
    number: int
    complete: bool
    content_hash: str | None = None


class _Local:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def uri(self, version: int | None = None) -> str:
        return self.root if version is None else os.path.join(self.root, str(version))

    def check_writable(self) -> None:
        try:
            os.makedirs(self.root, exist_ok=True)
            probe = os.path.join(self.root, f"{STAGING_PREFIX}probe-{os.getpid()}")
            with open(probe, "w"):
                pass
            os.remove(probe)
        except OSError as err:
            raise InputError(f"destination: cannot write to {self.root} ({err.strerror})") from None

    def versions(self) -> list[Version]:
        if not os.path.isdir(self.root):
            return []
        found = []
        for name in os.listdir(self.root):
            if not name.isdigit():
                continue
            marker = os.path.join(self.root, name, MARKER)
            meta = None
            if os.path.isfile(marker):
                with open(marker) as fh:
                    meta = json.load(fh)
            found.append(Version(int(name), meta is not None, (meta or {}).get("content_hash")))
        return sorted(found, key=lambda v: v.number)

    def clean_leftovers(self) -> None:
        for name in os.listdir(self.root):
            if name.startswith(STAGING_PREFIX):
                log.info("pusher: removing leftover staging %s", name)
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def publish(self, model_dir: str, version: int, marker: dict) -> None:
        staging = os.path.join(self.root, f"{STAGING_PREFIX}{version}-{os.getpid()}")
        try:
            shutil.copytree(model_dir, staging)
            with open(os.path.join(staging, MARKER), "w") as fh:
                json.dump(marker, fh)
            os.rename(staging, self.uri(version))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


class _Gcs:
    def __init__(self, uri: str):
        from google.cloud import storage

        self.bucket_name, _, prefix = uri[len("gs://") :].partition("/")
        self.prefix = prefix.strip("/")
        try:
            self.client = storage.Client()
        except Exception as err:  # DefaultCredentialsError, EnvironmentError, ...
            raise InputError(
                f"destination: no Google Cloud credentials for {uri} ({err})"
            ) from None
        self.bucket = self.client.bucket(self.bucket_name)

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def uri(self, version: int | None = None) -> str:
        key = self._key(str(version)) if version is not None else self.prefix
        return f"gs://{self.bucket_name}/{key}".rstrip("/")

    def check_writable(self) -> None:
        try:
            exists = self.bucket.exists()
        except Exception as err:
            raise InputError(
                f"destination: cannot reach bucket gs://{self.bucket_name} ({err})"
            ) from None
        if not exists:
            raise InputError(f"destination: bucket gs://{self.bucket_name} does not exist")

    def versions(self) -> list[Version]:
        numbers: dict[int, Version] = {}
        prefix = self._key("") + "/" if self.prefix else ""
        for blob in self.client.list_blobs(self.bucket_name, prefix=prefix):
            head, _, rest = blob.name[len(prefix) :].partition("/")
            if not head.isdigit() or not rest:
                continue
            v = numbers.setdefault(int(head), Version(int(head), False))
            if rest == MARKER:
                v.complete = True
                v.content_hash = json.loads(blob.download_as_bytes()).get("content_hash")
        return sorted(numbers.values(), key=lambda v: v.number)

    def clean_leftovers(self) -> None:
        # A version without its marker is an interrupted push: nothing may read it, so remove it.
        for v in self.versions():
            if not v.complete:
                log.info("pusher: removing incomplete version %s", self.uri(v.number))
                for blob in self.client.list_blobs(
                    self.bucket_name, prefix=self._key(str(v.number)) + "/"
                ):
                    blob.delete()

    def publish(self, model_dir: str, version: int, marker: dict) -> None:
        from google.api_core.retry import Retry

        retry = Retry(initial=0.5, maximum=8.0, timeout=120.0)
        files = _model_files(model_dir)
        total = sum(os.path.getsize(os.path.join(model_dir, f)) for f in files)
        sent = 0
        for rel in files:
            blob = self.bucket.blob(self._key(str(version), rel))
            blob.upload_from_filename(os.path.join(model_dir, rel), retry=retry)
            sent += os.path.getsize(os.path.join(model_dir, rel))
            log.info("pusher: uploaded %s (%d/%d bytes)", rel, sent, total)
        self.bucket.blob(self._key(str(version), MARKER)).upload_from_string(
            json.dumps(marker), content_type="application/json", retry=retry
        )


def storage_for(destination: str) -> _Local | _Gcs:
    if not destination:
        raise InputError("destination: expected a folder or gs://bucket/path, got ''")
    return _Gcs(destination) if destination.startswith("gs://") else _Local(destination)


def latest_complete(destination: str) -> str | None:
    """URI of the newest complete version under a push destination, or None."""
    store = storage_for(destination)
    complete = [v for v in store.versions() if v.complete]
    return store.uri(complete[-1].number) if complete else None


def iter_versions(destination: str) -> Iterator[Version]:
    yield from storage_for(destination).versions()


def run(
    model_dir: str,
    blessing_dir: str,
    destination: str,
    version: int = 0,
) -> dict:
    """Pushes a blessed model to `<destination>/<version>/`; records and skips an unblessed one.

    Args:
        model_dir: SavedModel folder from the trainer.
        blessing_dir: Blessing artifact from the evaluator.
        destination: A local folder or `gs://bucket/path`.
        version: Version number to use; 0 picks a Unix timestamp above every existing version.

    Returns:
        `pushed`, `destination`, `version`, `pushed_uri`, `content_hash`.
    """
    blessed = is_blessed(blessing_dir)
    result = {"pushed": False, "destination": destination, "version": None, "pushed_uri": ""}
    if not blessed:
        log.info("pusher: model is NOT_BLESSED, nothing pushed")
        return {**result, "content_hash": None}
    if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        raise InputError(f"model: no SavedModel (saved_model.pb) in {model_dir!r}")
    store = storage_for(destination)
    store.check_writable()
    store.clean_leftovers()
    digest = content_hash(model_dir)
    existing = store.versions()
    for v in existing:
        if v.complete and v.content_hash == digest:
            log.info("pusher: same model already pushed as version %d", v.number)
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
            f"version: {version} is not above the newest version {newest} in {destination}"
        )
    number = version or max(int(time.time()), newest + 1)
    marker = {"content_hash": digest, "pushed_at": time.time(), "source": model_dir}
    log.info("pusher: pushing %s to %s", model_dir, store.uri(number))
    store.publish(model_dir, number, marker)
    log.info("pusher: pushed version %d", number)
    return {
        **result,
        "pushed": True,
        "version": number,
        "pushed_uri": store.uri(number),
        "content_hash": digest,
    }
