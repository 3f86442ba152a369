"""Publishing outputs so a KFP retry is safe: whole or not at all, never half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator

from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.store import storage


class Outputs:
    """A stage's outputs staged side by side, each beside its final path, moved in together.

    `folder` hands out a staging folder, `file` writes a staging file; when the block of
    `outputs()` succeeds they are moved into place in the order given, and if one cannot be,
    those already moved are removed again: all of them or none.
    """

    def __init__(self) -> None:
        self.staged: list[tuple[str, str, str]] = []  # (staging, final, what)

    def _staging(self, final_path: str, what: str) -> str:
        final_path = final_path.rstrip("/")
        staging = f"{final_path}.staging-{_HOST}-{os.getpid()}"
        _remove(staging)
        with storage.disk_errors(what, final_path):
            os.makedirs(os.path.dirname(os.path.abspath(final_path)), exist_ok=True)
        self.staged.append((staging, final_path, what))
        return staging

    def folder(self, final_path: str, what: str = "output") -> str:
        """A staging folder that becomes `final_path` when every output is written."""
        staging = self._staging(final_path, what)
        with storage.disk_errors(what, final_path):
            os.makedirs(staging)
        return staging

    def file(self, final_path: str, text: str | bytes, what: str = "output") -> None:
        """Writes a file that becomes `final_path` when every output is written."""
        staging = self._staging(final_path, what)
        data = text.encode("utf-8") if isinstance(text, str) else text
        with storage.disk_errors(what, final_path), open(staging, "wb") as fh:
            fh.write(data)

    def _disk_error(self, err: Exception) -> Exception | None:
        """A full or read-only filesystem met while the stage wrote its staged outputs, as one
        line naming the output written (all of them when the error names no file)."""
        if not self.staged:
            return None
        filename = getattr(err, "filename", None)
        filename = os.fsdecode(filename) if filename else ""
        for staging, final, what in self.staged:
            if filename == staging or filename.startswith(staging + os.sep):
                return storage.disk_error(err, what, final)
        names = ", ".join(what for _, _, what in self.staged)
        where = os.path.commonpath([final for _, final, _ in self.staged])
        return storage.disk_error(err, names, where)

    def _discard(self) -> None:
        for staging, _, _ in self.staged:
            _remove(staging)

    def _commit(self) -> None:
        moved: list[str] = []
        try:
            for staging, final, what in self.staged:
                with storage.disk_errors(what, final):
                    _remove(final)  # a previous attempt's
                    os.rename(staging, final)
                moved.append(final)
        except BaseException:
            for final in moved:  # all or none: take back what was moved
                _remove(final)
            self._discard()
            raise
        for _, final, _ in self.staged:
            _remove_stale_staging(final)


@contextlib.contextmanager
def outputs() -> Iterator[Outputs]:
    """Yields an `Outputs` whose staged outputs are published together if the block succeeds.

    A KFP retry finds either none of a task's outputs or all of them, never some: a failure
    while writing removes every staging copy (no temp file is left beside an output), and a
    failure while moving them in removes those already moved. A full or read-only folder is
    one line naming the output (storage.disk_errors).
    """
    out = Outputs()
    try:
        yield out
    except InputError:
        out._discard()
        raise
    except Exception as err:
        out._discard()
        translated = out._disk_error(err)
        if translated is None:
            raise
        raise translated from None
    except BaseException:
        out._discard()
        raise
    out._commit()


@contextlib.contextmanager
def publishing(final_path: str, what: str = "output") -> Iterator[str]:
    """Yields a staging folder that becomes `final_path` only if the block succeeds.

    A KFP retry finds either nothing or a complete output, never a half-written one: the
    staging folder is removed on failure and a previous attempt's output is replaced. A stage
    with several outputs publishes them together with `outputs()`.
    """
    with outputs() as out:
        yield out.folder(final_path, what)


def _remove(path: str) -> None:
    """Removes a file or folder tree; nothing there is fine."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


_HOST = socket.gethostname().replace("/", "_") or "host"


def _remove_stale_staging(final_path: str) -> None:
    """Removes staging folders of `final_path` left by killed processes on this host.

    A folder is removed only when its name says this host and a process id that no longer
    runs here; another live process's staging, or another machine's, is never touched (the
    latter is named in a warning).
    """
    import glob

    prefix = f"{final_path}.staging-"
    for path in glob.glob(glob.escape(prefix) + "*"):
        host, _, pid = path[len(prefix) :].rpartition("-")
        if not pid.isdigit():
            continue
        if host not in ("", _HOST):  # "": an older release's name, pid only
            log.warning(
                "%s: left by a process on %s; remove it if nothing writes there", path, host
            )
            continue
        try:
            os.kill(int(pid), 0)
            continue  # still running: its staging
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # runs under another user
        log.info("removing %s, left by a killed process", path)
        _remove(path)


@contextlib.contextmanager
def writing_at(uri: str, what: str) -> Iterator[str]:
    """Yields an output URI that remote Beam workers write to directly, cleared beforehand.

    Object stores cannot rename a folder, so there is no staging copy as in `publishing`:
    instead an earlier attempt's files are deleted first, and this attempt's if the block fails.
    """
    from tfkfp.containers.store import storage

    storage.delete_tree(uri, what)
    try:
        yield uri
    except BaseException:
        try:
            storage.delete_tree(uri, what)
        except Exception as err:  # the original failure matters more than the cleanup's
            log.warning("%s: could not remove the partial output at %s: %s", what, uri, err)
        raise


def publish_file(final_path: str, text: str, what: str = "output") -> None:
    """Writes a text file whole or not at all (a staging file renamed into place)."""
    with outputs() as out:
        out.file(final_path, text, what)
