"""Publishing outputs so a KFP retry is safe: whole or not at all, never half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator

from tfkfp.containers.runtime import log


@contextlib.contextmanager
def publishing(final_path: str) -> Iterator[str]:
    """Yields a staging folder that becomes `final_path` only if the block succeeds.

    A KFP retry finds either nothing or a complete output, never a half-written one: the
    staging folder is removed on failure and a previous attempt's output is replaced.
    """
    final_path = final_path.rstrip("/")
    staging = f"{final_path}.staging-{_HOST}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if os.path.isdir(final_path):
        shutil.rmtree(final_path)
    elif os.path.exists(final_path):
        os.remove(final_path)
    os.rename(staging, final_path)
    _remove_stale_staging(final_path)


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
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def writing_at(uri: str, what: str) -> Iterator[str]:
    """Yields an output URI that remote Beam workers write to directly, cleared beforehand.

    Object stores cannot rename a folder, so there is no staging copy as in `publishing`:
    instead an earlier attempt's files are deleted first, and this attempt's if the block fails.
    """
    from tfkfp.containers import storage

    storage.delete_tree(uri, what)
    try:
        yield uri
    except BaseException:
        try:
            storage.delete_tree(uri, what)
        except Exception as err:  # the original failure matters more than the cleanup's
            log.warning("%s: could not remove the partial output at %s: %s", what, uri, err)
        raise


def publish_file(final_path: str, text: str) -> None:
    """Writes a text file whole or not at all (a temp file renamed into place)."""
    parent = os.path.dirname(final_path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    staging = f"{final_path}.staging-{os.getpid()}"
    with open(staging, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(staging, final_path)
