"""pusher: a blessed SavedModel -> `<destination>/<version>/`, local folder or gs:// bucket.

A version is complete once it holds the marker `PUSHED.json` (written last); readers, the
evaluator's baseline lookup among them, ignore versions without it. Locally the version is
assembled in a hidden staging folder and renamed into place, so TF Serving never sees it half
written; on GCS every file is uploaded, `saved_model.pb` last, then the marker. Imports no
TensorFlow, so it starts in well under a second.
"""

from __future__ import annotations

import contextlib
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
# How long GCS calls keep retrying transient errors (5xx, 429, dropped connections).
RETRY_TIMEOUT = 120.0
# Seconds between progress lines while copying or uploading.
PROGRESS_EVERY = 5.0


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


class _Progress:
    """Logs `done/total bytes` at most every PROGRESS_EVERY seconds, and once at the end."""

    def __init__(self, what: str, total: int):
        self.what, self.total, self.done, self.files = what, total, 0, 0
        self.last = time.monotonic()

    def add(self, size: int) -> None:
        self.done += size
        self.files += 1
        if time.monotonic() - self.last >= PROGRESS_EVERY or self.done >= self.total:
            self.last = time.monotonic()
            log.info(
                "pusher: %s %d files, %d/%d bytes", self.what, self.files, self.done, self.total
            )


class _Local:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def uri(self, version: int | None = None) -> str:
        return self.root if version is None else os.path.join(self.root, str(version))

    def check(self) -> None:
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

    def clean_leftovers(self, versions: list[Version]) -> None:
        # Staging folders are only ever ours, and a version appears by rename, complete: a
        # staging folder left here is an interrupted push (one pusher per destination at a time).
        for name in os.listdir(self.root):
            if name.startswith(STAGING_PREFIX):
                log.info("pusher: removing leftover staging %s", os.path.join(self.root, name))
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def publish(self, model_dir: str, version: int, marker: dict) -> None:
        staging = os.path.join(self.root, f"{STAGING_PREFIX}{version}-{os.getpid()}")
        files = _model_files(model_dir)
        progress = _Progress("copied", sum(_size(model_dir, f) for f in files))
        try:
            for rel in files:
                target = os.path.join(staging, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(os.path.join(model_dir, rel), target)
                _fsync(target)
                progress.add(_size(model_dir, rel))
            with open(os.path.join(staging, MARKER), "w") as fh:
                json.dump(marker, fh)
            _fsync(os.path.join(staging, MARKER))
            for folder, _, _ in os.walk(staging):
                _fsync(folder)
            # rename(2) is atomic, and fails rather than replace a non-empty version folder.
            os.rename(staging, self.uri(version))
            _fsync(self.root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _size(model_dir: str, rel: str) -> int:
    return os.path.getsize(os.path.join(model_dir, rel))


def _fsync(path: str) -> None:
    """Flushes a file or folder to disk, so a crash after the rename finds the whole version."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Gcs:
    """A gs:// destination through google-cloud-storage (STORAGE_EMULATOR_HOST is honoured)."""

    def __init__(self, uri: str, retry_timeout: float = RETRY_TIMEOUT):
        self.bucket_name, _, prefix = uri[len("gs://") :].partition("/")
        self.prefix = prefix.strip("/")
        self.retry_timeout = retry_timeout
        self.client = None

    def connect(self) -> None:
        """Creates the client: resolves credentials, without touching the bucket yet."""
        import google.auth.exceptions
        from google.cloud import storage
        from google.cloud.storage.retry import DEFAULT_RETRY

        self.retry = DEFAULT_RETRY.with_timeout(self.retry_timeout)
        try:
            self.client = storage.Client()
        except (google.auth.exceptions.GoogleAuthError, OSError) as err:
            raise InputError(
                f"destination: no Google Cloud credentials for gs://{self.bucket_name} "
                f"({type(err).__name__}; set GOOGLE_APPLICATION_CREDENTIALS, run with a service "
                "account, or set STORAGE_EMULATOR_HOST for an emulator)"
            ) from None
        self.bucket = self.client.bucket(self.bucket_name)

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _dir(self) -> str:
        return self.prefix + "/" if self.prefix else ""

    def uri(self, version: int | None = None) -> str:
        key = self._key(str(version)) if version is not None else self.prefix
        return f"gs://{self.bucket_name}/{key}".rstrip("/")

    def check(self) -> None:
        # Listing needs only storage.objects.list, which a push needs anyway; bucket.exists()
        # would need storage.buckets.get, which object-level roles lack.
        with _gcs_errors(self, "list"):
            blobs = self.client.list_blobs(
                self.bucket_name, prefix=self._dir(), max_results=1, retry=self.retry
            )
            next(iter(blobs), None)

    def versions(self) -> list[Version]:
        # Two listings whatever the number of versions or files: version folders by delimiter,
        # complete versions by their markers (which carry the content hash as metadata).
        prefix = self._dir()
        with _gcs_errors(self, "list"):
            folders = self.client.list_blobs(
                self.bucket_name, prefix=prefix, delimiter="/", retry=self.retry
            )
            for _ in folders:
                pass
            numbers = {p[len(prefix) :].rstrip("/") for p in folders.prefixes}
            markers = {}
            for blob in self.client.list_blobs(
                self.bucket_name, prefix=prefix, match_glob=f"{prefix}*/{MARKER}", retry=self.retry
            ):
                head = blob.name[len(prefix) :].split("/")[0]
                markers[head] = (blob.metadata or {}).get("content_hash")
        found = [Version(int(n), n in markers, markers.get(n)) for n in numbers if n.isdigit()]
        return sorted(found, key=lambda v: v.number)

    def clean_leftovers(self, versions: list[Version]) -> None:
        # A version without its marker is an interrupted push or someone else's folder. Only
        # the former is removed: every blob the pusher writes is tagged `tfkfp_push`.
        for v in versions:
            if v.complete:
                continue
            from google.api_core.exceptions import NotFound

            with _gcs_errors(self, "clean"):
                blobs = list(
                    self.client.list_blobs(
                        self.bucket_name, prefix=self._key(str(v.number)) + "/", retry=self.retry
                    )
                )
                if not all("tfkfp_push" in (b.metadata or {}) for b in blobs):
                    log.warning(
                        "pusher: leaving %s: incomplete, not written by tfkfp", self.uri(v.number)
                    )
                    continue
                log.info(
                    "pusher: removing interrupted push %s (%d files)",
                    self.uri(v.number),
                    len(blobs),
                )
                for blob in blobs:
                    with contextlib.suppress(NotFound):  # gone already: fine
                        blob.delete(retry=self.retry)

    def publish(self, model_dir: str, version: int, marker: dict) -> None:
        files = _model_files(model_dir)
        progress = _Progress("uploaded", sum(_size(model_dir, f) for f in files))
        tag = {"tfkfp_push": marker["content_hash"]}
        with _gcs_errors(self, "write"):
            for rel in files:
                blob = self.bucket.blob(self._key(str(version), rel))
                blob.metadata = tag
                blob.upload_from_filename(os.path.join(model_dir, rel), retry=self.retry)
                progress.add(_size(model_dir, rel))
            blob = self.bucket.blob(self._key(str(version), MARKER))
            blob.metadata = {**tag, "content_hash": marker["content_hash"]}
            blob.upload_from_string(
                json.dumps(marker), content_type="application/json", retry=self.retry
            )


@contextlib.contextmanager
def _gcs_errors(store: _Gcs, action: str) -> Iterator[None]:
    """Reports the GCS failures a user can fix as one-line input errors; others propagate."""
    from google.api_core import exceptions

    where = f"gs://{store.bucket_name}"
    try:
        yield
    except exceptions.NotFound:
        raise InputError(f"destination: bucket {where} does not exist") from None
    except (exceptions.Forbidden, exceptions.Unauthorized) as err:
        raise InputError(
            f"destination: no permission to {action} {store.uri()} (HTTP {err.code})"
        ) from None
    except exceptions.RetryError as err:
        if action != "list":
            raise  # mid-push: a real failure, the next attempt cleans up
        endpoint = os.environ.get("STORAGE_EMULATOR_HOST", "storage.googleapis.com")
        raise InputError(
            f"destination: cannot reach {endpoint} for {where} within "
            f"{store.retry_timeout:g} s ({type(err.cause).__name__})"
        ) from None


def storage_for(destination: str, retry_timeout: float = RETRY_TIMEOUT) -> _Local | _Gcs:
    """The destination's backend; gs:// ones are not connected yet (see `_Gcs.connect`)."""
    if not destination:
        raise InputError("destination: expected a folder or gs://bucket/path, got ''")
    if destination.startswith("gs://"):
        store = _Gcs(destination, retry_timeout)
        if not store.bucket_name:
            raise InputError(f"destination: expected gs://bucket/path, got {destination!r}")
        return store
    return _Local(destination)


def _connected(destination: str, retry_timeout: float = RETRY_TIMEOUT) -> _Local | _Gcs:
    store = storage_for(destination, retry_timeout)
    if isinstance(store, _Gcs):
        store.connect()
    return store


def latest_complete(destination: str) -> str | None:
    """URI of the newest complete version under a push destination (any scheme), or None."""
    from tfkfp.containers import storage

    folders, _ = storage.list_dir(destination, "destination")
    for name in sorted((f for f in folders if f.isdigit()), key=int, reverse=True):
        if storage.stat(storage.join(destination, name, MARKER), "destination") is not None:
            return storage.join(destination, name)
    return None


def iter_versions(destination: str) -> Iterator[Version]:
    yield from _connected(destination).versions()


def output_uri(result: dict, artifact_uri: str) -> str:
    """Where the `pushed_model` output artifact should point once the pusher has run.

    The pushed version when there is one: kfp.local records the URI a component sets (KFP's
    executor writes it to executor_output.json). The KFP backend's launcher (pods carry KFP_POD_NAME) also takes it, but fails the
    task when a gs:// URI lies outside the pipeline root, so there a gs:// push keeps the
    artifact's own URI and the location travels in its metadata (`pushed_uri`).
    """
    uri = result.get("pushed_uri") or ""
    if not uri or (uri.startswith("gs://") and os.environ.get("KFP_POD_NAME")):
        return artifact_uri
    return uri


def run(
    model_dir: str,
    blessing_dir: str,
    destination: str,
    version: int = 0,
    retry_timeout: float = RETRY_TIMEOUT,
) -> dict:
    """Pushes a blessed model to `<destination>/<version>/`; records and skips an unblessed one.

    Args:
        model_dir: SavedModel folder from the trainer.
        blessing_dir: Blessing artifact from the evaluator.
        destination: A local folder or `gs://bucket/path`.
        version: Version number to use; 0 picks a Unix timestamp above every existing version.
        retry_timeout: Seconds GCS calls retry transient errors before the push fails.

    Returns:
        `pushed`, `destination`, `version`, `pushed_uri`, `content_hash`.
    """
    store = storage_for(destination, retry_timeout)
    result = {
        "pushed": False,
        "destination": store.uri(),
        "version": None,
        "pushed_uri": "",
        "content_hash": None,
    }
    if not is_blessed(blessing_dir):
        log.info("pusher: model is NOT_BLESSED, nothing pushed")
        return result
    if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        raise InputError(f"model: no SavedModel (saved_model.pb) in {model_dir!r}")
    if isinstance(store, _Gcs):
        store.connect()
    store.check()
    digest = content_hash(model_dir)
    # Numbers are taken above every version seen before the cleanup too, so a number that an
    # interrupted push used (and TF Serving may have tried) is never reused.
    existing = store.versions()
    store.clean_leftovers(existing)
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
