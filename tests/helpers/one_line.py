"""The bad-input contract, asserted on any stage call: one `error:` line, exit 2, no traceback."""

from __future__ import annotations

import contextlib
import io
import socket
from collections.abc import Callable, Iterator

import pytest

from tfkfp.containers.runtime import entrypoint


def one_line_error(stage: Callable, /, **kwargs) -> str:
    """Calls `entrypoint(stage, **kwargs)` as a component body does; returns the error line.

    Fails unless the call ends with exit code 2 and stderr holds exactly one `error: ` line
    and no traceback. Any other exception (a TypeError, a library's error) propagates, so the
    test fails on it with its traceback.
    """
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        entrypoint(stage, **kwargs)
    text = err.getvalue()
    assert exit_.value.code == 2, text[-2000:]
    lines = [x for x in text.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in text, text[-2000:]
    return lines[0].removeprefix("error: ")


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def closed_port() -> str:
    """A loopback port nothing listens on (bound, then closed): connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"127.0.0.1:{port}"
