"""A push destination (a folder, gs:// or s3://): where versions live and how a push publishes one.

`Destination` is what the pusher's walk needs of a store, whatever its kind: the refusal of a
destination inside the model folder, the versions there (listing, the newest complete one, a
version's URI), publishing a new version, and writing files (the model card) into one.
`destination(uri)` gives the implementation for the URI's store: `LocalDestination` for a
folder, `ObjectStoreDestination` for gs:// and s3:// (pyarrow filesystems, via
containers/store/storage.py). Every one-line error names the input the URI came from (`name`:
the pusher's `destination`, the evaluator's `baseline_from`, infer's `model_from`). A
version's marker is checked against its files here; the marker itself (`Marker`, read and
written), a version's files and content hash: containers/push/versions.py.

Over ~400 lines on purpose: one concurrency protocol (staging folders and claims, leases,
verified markers) for a folder and for object stores; its invariants read best side by side.

Concurrent pushes (two runs of a pipeline, a KFP retry beside a slow first attempt) are safe:
- Locally a push assembles its version in its own staging folder (`.staging-<id>-<lease>s`),
  verifies it, adds the bookkeeping files (the model card) and the marker, last, and renames it
  to `<version>`: rename(2) fails rather than
  replace a non-empty folder, so a number taken meanwhile makes the push try the next one.
- On object stores a push first claims its number: it writes its own claim
  `.tfkfp-claims/<version>.<push id>`, lists the claims, and goes ahead only when its claim is
  the only one on that number and `<version>/` is empty; then it uploads (saved_model.pb last),
  verifies, writes the bookkeeping files and the marker and drops the claim; a failure before
  the marker removes every file it wrote there. With the strong read-after-write and list
  consistency of GCS and S3, two pushes can never both go ahead (the later writer's listing
  sees the earlier claim); pushes that see each other step back, all but the first in name
  order at once, and try a higher number. No compare-and-set is needed: S3's conditional put
  (If-None-Match) is out of pyarrow's reach, and gcp-storage-emulator ignores GCS
  preconditions, so a CAS claim could not be tested here. On GCS the marker is still created
  with `if_generation_match=0`, as a guard that holds on the real service.
- A running push renews its lease (the staging folder's mtime, the claim object) every quarter
  lease. Leftovers (a staging folder, or a claimed markerless version) are removed only once
  their lease ran out, judged by the store's own clock; a push that could not renew in time
  gives up before writing its marker, so a cleaner never deletes files under a live marker.
Imports no TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from tfkfp.containers import events
from tfkfp.containers.push.versions import (
    CLAIM_ATTEMPTS,
    CLAIMS,
    COMMIT,
    LEASE,
    STAGING_PREFIX,
    Admit,
    Bookkeeping,
    Claim,
    Marker,
    Version,
    file_chunks,
    hash_files,
    model_files,
    new_push_id,
)
from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.store import storage
from tfkfp.containers.store.layout import PUSHED as MARKER
from tfkfp.containers.store.layout import is_bookkeeping, is_version


@runtime_checkable
class Destination(Protocol):
    """Where a push's versions live; `destination(uri)` gives the one for a URI's store.

    Attributes:
        name: The input the URI came from, first word of every one-line error.
    """

    name: str

    def uri(self, version: int | None = None) -> str:
        """The destination's URI, or version `version`'s (where its model card goes too)."""
        ...

    def check_outside(self, model: str) -> None:
        """Refuses a destination inside (or equal to) the model folder, in one line."""
        ...

    def connect(self) -> None:
        """Opens the store (an object store's filesystem); a folder needs nothing."""
        ...

    def check(self) -> None:
        """Fails in one line when the destination cannot be written (or listed)."""
        ...

    def versions(self) -> list[Version]:
        """Every version there, oldest first; a damaged marker fails in one line."""
        ...

    def latest_complete(self) -> str | None:
        """The URI of the newest complete version, None when there is none."""
        ...

    def clean_leftovers(self) -> None:
        """Removes what pushes whose lease ran out left behind."""
        ...

    def publish(
        self,
        model_dir: str,
        marker: Marker,
        numbers: Callable[[int], int],
        fixed: bool,
        lease: float,
        admit: Admit,
        bookkeeping: Bookkeeping = ...,
    ) -> int:
        """Publishes `model_dir` as a new complete version; returns its number."""
        ...

    def write_files(self, version: int, files: dict[str, bytes]) -> None:
        """Writes files (a model card) into a published version, each whole or not at all."""
        ...


def destination(uri: str, name: str = "destination") -> Destination:
    """The destination at `uri`; an object store is not connected yet (see `connect`)."""
    location = storage.parse(uri, name)
    if location.scheme == "file":
        return LocalDestination(location.key, name)
    return ObjectStoreDestination(location.uri, name)


def latest_complete(uri: str, name: str = "destination") -> str | None:
    """URI of the newest complete version under a push destination, or None.

    Raises InputError, naming `name`, for a marker that does not parse or that its version does
    not match.
    """
    found = destination(uri, name)
    found.connect()
    return found.latest_complete()


def iter_versions(uri: str, name: str = "destination") -> Iterator[Version]:
    """Every version under a push destination, oldest first."""
    found = destination(uri, name)
    found.connect()
    yield from found.versions()


def location_names(location: str) -> set[str]:
    """The names a location goes by: its URI, real path, and the object a KFP mount stands for."""
    uri = storage.check(location, "location").rstrip("/")
    if not storage.is_local(uri):
        return {uri}
    names = {uri, os.path.realpath(uri)}
    for name in list(names):
        for mount, scheme in (("/gcs/", "gs"), ("/s3/", "s3"), ("/minio/", "s3")):
            if name.startswith(mount):
                names.add(f"{scheme}://{name.removeprefix(mount)}")
    return names


def _refuse_inside(model: str, uri: str, name: str) -> None:
    """Refuses a destination inside (or equal to) the model folder: the push would write into
    its own input, and every later push would see a different model."""
    models = location_names(os.path.abspath(model))
    for dest in location_names(uri):
        if any(dest == other or dest.startswith(other + "/") for other in models):
            raise InputError(
                f"{name}: {uri} is inside the model folder {model}; "
                "push to a folder outside the model"
            )


def _latest(versions: list[Version], uri: Callable[[int], str]) -> str | None:
    complete = _complete(versions)
    return uri(complete[-1].number) if complete else None


def _complete(found: list[Version]) -> list[Version]:
    return [v for v in found if v.complete]


def _version(number: int, marker: Marker) -> Version:
    return Version(number, True, marker.content_hash, marker.files, marker.evaluation)


def _check_files(marker: Marker, found: dict[str, int], where: str, name: str) -> None:
    """A marked version must hold the files its marker names, at their sizes.

    Bookkeeping files a marker names are not checked: versions promoted before they were left
    out (issue 25) list their source's marker, which their own marker replaced.
    """
    for rel, size in marker.files.items():
        if is_bookkeeping(rel):
            continue
        if found.get(rel) != size:
            got = "missing" if rel not in found else f"{found[rel]} bytes"
            raise InputError(
                f"{name}: {where} is marked complete but {rel} is {got}, "
                f"not {size} bytes as its {MARKER} says"
            )


def _progress(verb: str, total: int) -> events.Progress:
    """Files and bytes copied, uploaded or verified, reported every PROGRESS_EVERY seconds."""
    return events.Progress("pusher", verb + " {files} files, {done}/{total} bytes", total=total)


class LeaseLost(RuntimeError):
    """A push could not renew its lease in time; its leftovers may be cleaned by others."""


class _Lease:
    """Renews a push's lease every quarter lease in a thread; `check` fails once it lapsed.

    A push counts its lease as lost when the last successful renewal is half a lease old, so
    it stops well before others may take its leftovers for stale.
    """

    def __init__(self, renew: Callable[[], bool], seconds: float, what: str):
        self.renew, self.seconds, self.what = renew, seconds, what
        self.last_ok = time.monotonic()
        self.lost = False
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.wait(self.seconds / 4):
            try:
                if not self.renew():
                    self.lost = True
                    return
                self.last_ok = time.monotonic()
            except Exception as err:  # a transient failure: the next round tries again
                log.warning("pusher: could not renew the lease on %s (%s)", self.what, err)

    def check(self) -> None:
        if self.lost or time.monotonic() - self.last_ok > self.seconds / 2:
            raise LeaseLost(
                f"pusher: lost the lease on {self.what} (not renewed for "
                f"{time.monotonic() - self.last_ok:.0f} s of {self.seconds:g} s); "
                "another push may remove it, so no marker was written"
            )

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def _staging_lease(name: str) -> float:
    """The lease recorded in a staging folder's name (`.staging-<id>-<lease>s`)."""
    tail = name.rsplit("-", 1)[-1]
    with contextlib.suppress(ValueError):
        if tail.endswith("s"):
            return float(tail[:-1])
    return LEASE


class LocalDestination:
    """A folder destination: staging folders, flock(2) and rename(2) (see the docstring)."""

    def __init__(self, root: str, name: str = "destination"):
        self.root = os.path.abspath(root)
        self.name = name

    def check_outside(self, model: str) -> None:
        _refuse_inside(model, self.uri(), self.name)

    def latest_complete(self) -> str | None:
        return _latest(self.versions(), self.uri)

    def write_files(self, version: int, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            path = os.path.join(self.uri(version), name)
            staging = f"{path}.tmp-{os.getpid()}"  # a folder's file: whole or not at all
            try:
                with storage.disk_errors(self.name, path), open(staging, "wb") as fh:
                    fh.write(data)
                os.replace(staging, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(staging)

    def uri(self, version: int | None = None) -> str:
        return self.root if version is None else os.path.join(self.root, str(version))

    def connect(self) -> None:
        pass

    def check(self) -> None:
        try:
            os.makedirs(self.root, exist_ok=True)
            probe = os.path.join(self.root, f"{STAGING_PREFIX}probe-{new_push_id()}-0s")
            with open(probe, "w"):
                pass
            os.remove(probe)
        except OSError as err:
            raise InputError(f"{self.name}: cannot write to {self.root} ({err.strerror})") from None

    def versions(self) -> list[Version]:
        if not os.path.isdir(self.root):
            return []
        found = []
        for name in os.listdir(self.root):
            folder = os.path.join(self.root, name)
            if not is_version(name) or not os.path.isdir(folder):
                continue
            marker_path = os.path.join(folder, MARKER)
            try:
                with open(marker_path, "rb") as fh:
                    text = fh.read()
            except FileNotFoundError:
                found.append(Version(int(name), False))
                continue
            marker = Marker.from_json(text, marker_path, self.name)
            files = {rel: os.path.getsize(os.path.join(folder, rel)) for rel in model_files(folder)}
            _check_files(marker, files, folder, self.name)
            found.append(_version(int(name), marker))
        return sorted(found, key=lambda v: v.number)

    def clean_leftovers(self) -> None:
        """Removes staging folders whose lease ran out: pushes that died or were killed."""
        now = time.time()
        for name in os.listdir(self.root):
            if not name.startswith(STAGING_PREFIX):
                continue
            path = os.path.join(self.root, name)
            with contextlib.suppress(FileNotFoundError):
                age = now - os.stat(path).st_mtime
                if age > _staging_lease(name):
                    log.info("pusher: removing stale staging %s (%.0f s old)", path, age)
                    shutil.rmtree(path, ignore_errors=True)

    def publish(
        self,
        model_dir: str,
        marker: Marker,
        numbers: Callable[[int], int],
        fixed: bool,
        lease: float,
        admit: Admit,
        bookkeeping: Bookkeeping = lambda number: {},
    ) -> int:
        staging = os.path.join(self.root, f"{STAGING_PREFIX}{new_push_id()}-{lease:g}s")
        with storage.disk_errors(self.name, self.root):
            os.makedirs(staging)
        keeper = _Lease(lambda: (os.utime(staging), True)[1], lease, staging)
        try:
            with storage.disk_errors(self.name, self.root):
                files = marker.files
                progress = _progress("copied", sum(files.values()))
                for rel in files:  # saved_model.pb last
                    target = os.path.join(staging, rel)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copyfile(os.path.join(model_dir, rel), target)
                    _fsync(target)
                    progress.add(files[rel], files=1)
                _verify(
                    {
                        rel: os.path.getsize(os.path.join(staging, rel))
                        for rel in model_files(staging)
                    },
                    file_chunks(staging),
                    marker,
                    staging,
                )
                for folder, _, _ in os.walk(staging):
                    _fsync(folder)
                keeper.check()
                with self._commit_lock():
                    return self._commit(staging, marker, numbers, fixed, admit, bookkeeping)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            keeper.stop()

    @staticmethod
    def _finish(staging: str, marker: Marker, files: dict[str, bytes]) -> None:
        """Writes the bookkeeping files, then the marker, last, into a verified staging folder."""
        for name in (*files, MARKER):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(staging, name))  # an earlier number's
        for name, data in files.items():
            with open(os.path.join(staging, name), "wb") as fh:
                fh.write(data)
            _fsync(os.path.join(staging, name))
        marker.write(os.path.join(staging, MARKER))
        _fsync(os.path.join(staging, MARKER))
        _fsync(staging)

    @contextlib.contextmanager
    def _commit_lock(self) -> Iterator[None]:
        """Serializes the last step of pushes to this folder: check the newest, then rename.

        flock(2) on the destination folder itself (no lock file): the kernel drops it when its
        holder dies, so a killed push never blocks others.
        """
        import fcntl

        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _commit(
        self,
        staging: str,
        marker: Marker,
        numbers: Callable[[int], int],
        fixed: bool,
        admit: Admit,
        bookkeeping: Bookkeeping,
    ) -> int:
        """Under the commit lock: admits the push against the newest version, writes the
        bookkeeping files of the number it takes and the marker last, renames it."""
        complete = _complete(self.versions())
        admit(complete)
        newest = complete[-1].number if complete else 0
        if fixed and numbers(0) <= newest:
            raise InputError(
                f"version: {numbers(0)} is not above the newest version {newest} in {self.root}"
            )
        number = numbers(newest)
        for _ in range(CLAIM_ATTEMPTS):
            self._finish(staging, marker, bookkeeping(number))
            try:
                # rename(2) is atomic and fails rather than replace a non-empty folder: a
                # number another push took meanwhile is never overwritten.
                os.rename(staging, self.uri(number))
                break
            except OSError as err:
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                if fixed:
                    raise InputError(
                        f"version: {number} was taken by another push to {self.root}"
                    ) from None
                log.info("pusher: version %d was taken meanwhile, trying the next", number)
                number = numbers(number)
        else:
            raise InputError(f"{self.name}: other pushes kept taking versions in {self.root}")
        _fsync(self.root)
        return number


def _fsync(path: str) -> None:
    """Flushes a file or folder to disk, so a crash after the rename finds the whole version."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _verify(
    found: dict[str, int], chunks: Callable[[str], Iterator[bytes]], marker: Marker, where: str
) -> None:
    """Re-reads a written version: exactly the marker's files, sizes, then the content hash."""
    wanted = marker.files
    if found != wanted:
        missing = sorted(set(wanted) - set(found))
        extra = sorted(set(found) - set(wanted))
        wrong = sorted(f for f in set(wanted) & set(found) if wanted[f] != found[f])
        raise RuntimeError(
            f"pusher: {where} does not hold what was written "
            f"(missing {missing}, unexpected {extra}, wrong size {wrong})"
        )
    progress = _progress("verified", sum(wanted.values()))

    def counted(rel: str) -> Iterator[bytes]:
        yield from chunks(rel)
        progress.add(wanted[rel], files=1)

    digest = hash_files(wanted, counted)
    if digest != marker.content_hash:
        raise RuntimeError(
            f"pusher: {where} reads back with content hash {digest}, "
            f"not {marker.content_hash} as written"
        )


# --- object stores ------------------------------------------------------------------------


@dataclass
class _Entry:
    size: int
    mtime: float


class ObjectStoreDestination:
    """A gs:// or s3:// destination: claims, uploads, verification, marker (see the docstring)."""

    def __init__(self, uri: str, name: str = "destination"):
        self.objects = _Objects(uri, name)
        self.name = name

    def check_outside(self, model: str) -> None:
        _refuse_inside(model, self.uri(), self.name)

    def latest_complete(self) -> str | None:
        return _latest(self.versions(), self.uri)

    def clean_leftovers(self) -> None:
        """Nothing here: a push removes leftovers under the claims, as it publishes."""

    def write_files(self, version: int, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            self.objects.write(f"{version}/{name}", data)  # an object appears whole

    def uri(self, version: int | None = None) -> str:
        return self.objects.uri(None if version is None else str(version))

    def connect(self) -> None:
        self.objects.connect()

    def check(self) -> None:
        self.objects.check()

    def _listing(self) -> tuple[dict[int, dict[str, _Entry]], dict[str, _Entry]]:
        """Version folders' files and claim objects, in one recursive listing."""
        versions: dict[int, dict[str, _Entry]] = {}
        claims: dict[str, _Entry] = {}
        for rel, entry in self.objects.list("").items():
            head, _, rest = rel.partition("/")
            if is_version(head) and rest:
                versions.setdefault(int(head), {})[rest] = entry
            elif head == CLAIMS and rest:
                claims[rest] = entry
        return versions, claims

    def versions(self) -> list[Version]:
        listing, _ = self._listing()
        return self._versions(listing)

    def _versions(self, listing: dict[int, dict[str, _Entry]]) -> list[Version]:
        marked = [n for n, files in listing.items() if MARKER in files]
        texts = self.objects.read_many([f"{n}/{MARKER}" for n in marked])
        texts = dict(zip(marked, texts, strict=True))
        found = []
        for number, files in listing.items():
            if number not in texts:
                found.append(Version(number, False))
                continue
            where = self.uri(number) + "/" + MARKER
            marker = Marker.from_json(texts[number], where, self.name)
            sizes = {rel: e.size for rel, e in files.items() if not is_bookkeeping(rel)}
            _check_files(marker, sizes, self.uri(number), self.name)
            found.append(_version(number, marker))
        return sorted(found, key=lambda v: v.number)

    # claims ---------------------------------------------------------------------------

    def _claim(self, number: int | str, push_id: str, lease: float) -> str | None:
        """Claims a version number (or COMMIT, the commit lock) for this push; None when another
        push has it.

        Write a claim of one's own, then list: go ahead only when it is the only claim on the
        number and the version folder is empty. Of pushes that see each other, all but the
        first in name order step back at once; the first waits a moment for them to. Claims
        whose lease ran out (a killed push's) are removed first, with the markerless files of
        their version, so a push with a fixed `version` can be retried once the lease ran out.
        """
        key = f"{CLAIMS}/{number}.{push_id}"
        body = Claim(push_id, lease, socket.gethostname(), os.getpid()).to_json().encode()
        self.objects.write(key, body)
        for pause in (0.05, 0.1, 0.2, 0.4, None):
            claims = {
                rel: e
                for rel, e in self.objects.list(CLAIMS).items()
                if rel.startswith(f"{CLAIMS}/{number}.")
            }
            others = set(claims) - {key}
            if others and key in claims:
                others -= self._drop_stale(number, {o: claims[o] for o in others}, claims[key])
            if not others:
                break
            if pause is None or key > min(others):
                self.objects.delete(key)
                return None
            time.sleep(pause)
        if number != COMMIT and self.objects.list(f"{number}/", limit=1):
            # a version folder without a claim: a finished push, or one being cleaned up
            self.objects.delete(key)
            return None
        return key

    def _drop_stale(self, number: int | str, claims: dict[str, _Entry], mine: _Entry) -> set[str]:
        """Removes the claims on `number` whose lease ran out (and their markerless files),
        judged by the store's clock (`mine`, this push's fresh claim); returns those removed."""
        listing = {}
        if number != COMMIT:
            found = self.objects.list(f"{number}/")
            listing[number] = {rel.removeprefix(f"{number}/"): e for rel, e in found.items()}
        named = {rel.removeprefix(CLAIMS + "/"): e for rel, e in claims.items()}
        removed = self._clean_leftovers(listing, named, mine.mtime, warn=False)
        return {f"{CLAIMS}/{name}" for name in removed}

    def _renew(self, key: str, push_id: str, lease: float) -> bool:
        """Rewrites the claim (its mtime is the lease); False once it is no longer ours."""
        try:
            current = Claim.from_json(self.objects.read(key))
        except FileNotFoundError:
            return False
        if current.push_id != push_id:
            return False
        self.objects.write(key, replace(current, lease=lease).to_json().encode())
        return True

    def _clean_leftovers(
        self,
        listing: dict[int, dict[str, _Entry]],
        claims: dict[str, _Entry],
        now: float,
        warn: bool = True,
    ) -> set[str]:
        """Removes what pushes whose lease ran out left: markerless versions, then claims.

        Returns the names of the claims removed.
        """
        removed = set()
        for name, entry in claims.items():
            number_text = name.split(".", 1)[0]
            if not is_version(number_text) and number_text != COMMIT:
                continue
            number = int(number_text) if is_version(number_text) else -1
            try:
                lease = Claim.from_json(self.objects.read(f"{CLAIMS}/{name}")).lease
            except FileNotFoundError:
                continue  # released meanwhile
            except ValueError:  # not a claim tfkfp wrote: the default lease
                lease = LEASE
            if now - entry.mtime <= lease + 1:  # +1: S3 stamps whole seconds
                continue
            fresh = self.objects.storage.stat(self.uri(f"{CLAIMS}/{name}"), self.name)
            if fresh is None or (fresh.mtime or 0) > entry.mtime:
                continue  # renewed or released since the listing: not stale after all
            files = listing.get(number, {})
            if files and MARKER not in files:
                log.info(
                    "pusher: removing interrupted push %s (%d files, lease ran out %.0f s ago)",
                    self.uri(number),
                    len(files),
                    now - entry.mtime - lease,
                )
                for rel in files:
                    self.objects.delete(f"{number}/{rel}")
            self.objects.delete(f"{CLAIMS}/{name}")
            removed.add(name)
        for number, files in listing.items() if warn else ():
            claimed = any(n.split(".", 1)[0] == str(number) for n in claims)
            if MARKER not in files and not claimed:
                log.warning(
                    "pusher: leaving %s: incomplete and not claimed by a tfkfp push",
                    self.uri(number),
                )
        return removed

    def publish(
        self,
        model_dir: str,
        marker: Marker,
        numbers: Callable[[int], int],
        fixed: bool,
        lease: float,
        admit: Admit,
        bookkeeping: Bookkeeping = lambda number: {},
    ) -> int:
        push_id = marker.push_id
        number, key = numbers(0), None
        for attempt in range(CLAIM_ATTEMPTS):
            key = self._claim(number, push_id, lease)
            if key:
                break
            if fixed:
                raise InputError(f"version: {number} is taken by another push to {self.uri()}")
            log.info("pusher: version %d is taken by another push, trying the next", number)
            time.sleep(random.uniform(0, 0.2 * (attempt + 1)))
            listing, claims = self._listing()
            seen = [
                *listing,
                *(int(c.split(".")[0]) for c in claims if is_version(c.split(".")[0])),
            ]
            number = numbers(max([number, *seen]))
        else:
            raise InputError(
                f"{self.name}: other pushes kept taking version numbers in {self.uri()} "
                f"({CLAIM_ATTEMPTS} attempts)"
            )
        # the claims this push holds, renewed together: its version's, later the commit lock's
        # and, when it moves its version up, the new number's
        keys = [key]
        keeper = _Lease(
            lambda: all([self._renew(k, push_id, lease) for k in list(keys)]),
            lease,
            self.uri(number),
        )
        moved_from = None
        try:
            listing, claims = self._listing()
            mine = key.removeprefix(CLAIMS + "/")
            now = claims[mine].mtime  # the store's clock, not this machine's
            self._clean_leftovers(listing, {c: e for c, e in claims.items() if c != mine}, now)
            files = marker.files
            progress = _progress("uploaded", sum(files.values()))
            for rel in files:  # saved_model.pb last
                keeper.check()
                self.objects.upload(f"{number}/{rel}", os.path.join(model_dir, rel))
                progress.add(files[rel], files=1)
            written = {rel: e.size for rel, e in self.objects.list(f"{number}/").items()}
            written = {rel.removeprefix(f"{number}/"): s for rel, s in written.items()}
            written = {rel: s for rel, s in written.items() if not is_bookkeeping(rel)}
            _verify(
                written,
                lambda rel: self.objects.chunks(f"{number}/{rel}"),
                marker,
                self.uri(number),
            )
            # the card goes in before the commit lock (the lock is held briefly); rewritten
            # under the lock only if the push moves to another number
            carded = number
            for name, data in bookkeeping(number).items():
                keeper.check()
                self.objects.write(f"{number}/{name}", data)
            with self._commit_lock(push_id, lease, keys, keeper):
                # the newest version as it is now, with no other push publishing meanwhile
                listing, _ = self._listing()
                others = {n: f for n, f in listing.items() if n != number}
                complete = _complete(self._versions(others))
                supersedes = admit(complete)
                newest = complete[-1].number if complete else 0
                if newest > number:
                    if fixed:
                        raise InputError(
                            f"version: {number} is not above the newest version {newest} "
                            f"in {self.uri()}"
                        )
                    if supersedes:  # else it keeps the number it took when it started, as TFX
                        moved_from = number, key
                        number, key = self._move_up(number, newest, marker, numbers, lease, keys)
                for name, data in bookkeeping(number).items() if number != carded else ():
                    keeper.check()
                    self.objects.write(f"{number}/{name}", data)  # before the marker
                keeper.check()
                text = marker.to_json().encode()
                if self.objects.root.scheme == "gs":
                    # belt and braces where the store offers compare-and-set: never replace a
                    # marker
                    if not self.objects.create(f"{number}/{MARKER}", text):
                        raise RuntimeError(f"pusher: {self.uri(number)} got a marker meanwhile")
                else:
                    self.objects.write(f"{number}/{MARKER}", text)
        except BaseException:
            keeper.stop()
            with contextlib.suppress(Exception):  # best effort; else the lease runs out
                for n in {number, moved_from[0] if moved_from else number}:
                    written = self.objects.list(f"{n}/")
                    if f"{n}/{MARKER}" not in written:  # never take files from under a marker
                        for rel in written:
                            self.objects.delete(rel)
                for k in keys:
                    self.objects.delete(k)
            raise
        keeper.stop()
        with contextlib.suppress(Exception):  # leftovers are removed once their lease ran out
            if moved_from:
                for rel in self.objects.list(f"{moved_from[0]}/"):
                    self.objects.delete(rel)
            for k in keys:
                self.objects.delete(k)
        return number

    @contextlib.contextmanager
    def _commit_lock(
        self, push_id: str, lease: float, keys: list[str], keeper: _Lease
    ) -> Iterator[None]:
        """Serializes the last step of pushes to this destination (check the newest, publish):
        the claim protocol on the name COMMIT. A dead holder's claim goes once its lease ran out.
        """
        # short pauses: a holder needs about a second (list, read markers, write one)
        started, pause = time.monotonic(), 0.05
        while not (key := self._claim(COMMIT, push_id, lease)):
            keeper.check()  # this push's own claims stay renewed while it waits
            if time.monotonic() - started > 10 * lease:
                raise InputError(
                    f"{self.name}: other pushes kept publishing to {self.uri()} for "
                    f"{time.monotonic() - started:.0f} s"
                )
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(2 * pause, 0.5)
        keys.append(key)
        try:
            yield
        finally:
            keys.remove(key)
            with contextlib.suppress(Exception):  # else it is removed once its lease ran out
                self.objects.delete(key)

    def _move_up(
        self,
        number: int,
        newest: int,
        marker: Marker,
        numbers: Callable[[int], int],
        lease: float,
        keys: list[str],
    ) -> tuple[int, str]:
        """Copies this push's verified files above `newest`, published by another push while
        this one uploaded (numbers are taken when a push starts), which this push was judged fit
        to supersede. Returns the new number and its claim; the old files go after the marker.
        """
        old, target = number, newest
        for _ in range(CLAIM_ATTEMPTS):
            number = numbers(target)
            key = self._claim(number, marker.push_id, lease)
            if key:
                break
            target = number
        else:
            raise InputError(
                f"{self.name}: other pushes kept taking version numbers in {self.uri()} "
                f"({CLAIM_ATTEMPTS} attempts)"
            )
        keys.append(key)
        log.info(
            "pusher: version %d was published while this push uploaded %d: copying it to %d",
            newest,
            old,
            number,
        )
        for rel in marker.files:  # saved_model.pb last
            self.objects.copy(f"{old}/{rel}", f"{number}/{rel}")
        written = {rel: e.size for rel, e in self.objects.list(f"{number}/").items()}
        written = {rel.removeprefix(f"{number}/"): s for rel, s in written.items()}
        _verify(
            written, lambda rel: self.objects.chunks(f"{number}/{rel}"), marker, self.uri(number)
        )
        return number, key


class _Objects:
    """The object-store calls the pusher makes, relative to its destination, via storage."""

    def __init__(self, uri: str, name: str):
        self.storage = storage
        self.name = name
        self.root = storage.parse(uri, name)

    def uri(self, rel: str | None = None) -> str:
        return self.storage.join(self.root.uri, rel) if rel else self.root.uri

    def connect(self) -> None:
        self.fs, self.path = self.storage.filesystem(self.root.uri, self.name)

    def check(self) -> None:
        self.list("")  # fails in one line on a missing bucket, no access or no endpoint

    def list(self, rel_folder: str, limit: int | None = None) -> dict[str, _Entry]:
        """Every object under a folder (recursive), by its path relative to the destination."""
        import pyarrow.fs as pafs

        base = self.path.rstrip("/")
        folder = f"{base}/{rel_folder}".rstrip("/") if rel_folder else base
        with self.storage.errors(self.name, self.uri(rel_folder), "list"):
            infos = self.fs.get_file_info(
                pafs.FileSelector(folder, recursive=True, allow_not_found=True)
            )
            gone = not infos and not rel_folder
            if gone and self.fs.get_file_info(self.root.bucket).type == pafs.FileType.NotFound:
                raise InputError(f"{self.name}: bucket {self.root.bucket_uri} does not exist")
        found = {
            i.path[len(base) + 1 :]: _Entry(i.size, i.mtime.timestamp() if i.mtime else 0.0)
            for i in infos
            if i.type == pafs.FileType.File
        }
        return dict(list(found.items())[:limit]) if limit else found

    def read(self, rel: str) -> bytes:
        """An object's bytes; FileNotFoundError when it is not there (or went meanwhile)."""
        uri = self.uri(rel)
        for attempt in (1, 2):
            try:
                with self.fs.open_input_stream(f"{self.path}/{rel}", compression=None) as fh:
                    return fh.read()
            except OSError as err:
                # pyarrow reads an object in two requests; one deleted or replaced in between
                # (another push's claim) fails with a generic error: look again.
                if isinstance(err, FileNotFoundError) or self.storage.stat(uri, self.name) is None:
                    raise FileNotFoundError(uri) from None
                if attempt == 2:
                    with self.storage.errors(self.name, uri):
                        raise
        raise AssertionError("unreachable")

    def read_many(self, rels: list[str]) -> list[bytes]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(self.read, rels))

    def chunks(self, rel: str) -> Iterator[bytes]:
        with self.storage.open_input(self.uri(rel), self.name) as fh:
            yield from iter(lambda: fh.read(1 << 20), b"")

    def write(self, rel: str, data: bytes) -> None:
        self.storage.write_bytes(self.uri(rel), data, self.name)

    def create(self, rel: str, data: bytes) -> bool:
        return self.storage.create_exclusive(self.uri(rel), data, self.name)

    def upload(self, rel: str, path: str) -> None:
        """Uploads a file; a failed upload starts over, within the push's retry time.

        The client's own retries resume an upload where it broke; starting over also gets past
        a server that answers the resume wrongly (gcp-storage-emulator does).
        """
        import pyarrow as pa

        deadline = time.monotonic() + self.storage.retry_limit()
        for attempt in range(1, 100):
            try:
                # open_output closes the stream itself, so a failed upload raises (pyarrow's
                # copy_files only logs an S3 upload that failed at close).
                with (
                    self.storage.open_output(self.uri(rel), self.name) as out,
                    open(path, "rb") as fh,
                ):
                    while chunk := fh.read(8 << 20):
                        out.write(chunk)
                return
            except (OSError, pa.ArrowException) as err:
                if time.monotonic() + attempt > deadline:
                    raise
                log.warning(
                    "pusher: upload of %s failed, starting it over (%s)",
                    self.uri(rel),
                    str(err).splitlines()[0][:200],
                )
                time.sleep(attempt)

    def copy(self, src_rel: str, dst_rel: str) -> None:
        """Copies an object within the store (server side)."""
        self.storage.copy(self.uri(src_rel), self.uri(dst_rel), self.name)

    def delete(self, rel: str) -> None:
        self.storage.delete(self.uri(rel), self.name)
