"""The pusher under faults: a fresh pusher process, a TCP proxy that drops or fails requests."""

import contextlib
import os
import re
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import urllib.parse
from collections.abc import Callable

from tfkfp.containers.push import versions


def run_pusher_process(env: dict | None = None, preamble: str = "", **kwargs) -> subprocess.Popen:
    """Starts the pusher as its container would, in a fresh process."""
    code = textwrap.dedent(preamble) + textwrap.dedent(
        f"""
        from tfkfp.containers import pusher, runtime
        runtime.entrypoint(pusher.run, **{kwargs!r})
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


class FaultyProxy:
    """A loopback TCP proxy in front of a storage server that cuts, holds or fails requests.

    Requests whose request line matches `pattern` (the ones carrying a file's bytes) are
    numbered as they pass. `policy(n, line)` returns None to let request n through,
    `("cut", k)` to forward k bytes of it then reset both connections, `("hold", k)` to forward
    k bytes then stall, the client waiting on a half-sent request, or `("fail", status)` to
    answer it with that HTTP status itself, as an overloaded server does.
    """

    def __init__(self, target_url: str, pattern: bytes):
        host, port = target_url.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.pattern = re.compile(pattern + rb"[^ ]*")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.policy = lambda n, line: None
        self.requests = 0
        self.faults = 0
        self.held = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            dropped = threading.Event()
            for pump, args in ((self._up, (client, upstream)), (self._down, (upstream, client))):
                threading.Thread(target=pump, args=(*args, dropped), daemon=True).start()

    @staticmethod
    def _reset(dropped: threading.Event, *socks: socket.socket) -> None:
        dropped.set()
        for sock in socks:
            # SO_LINGER 0 makes close() send RST, as a dropped connection does. shutdown(SHUT_RD)
            # first wakes the other pump's recv(), which would otherwise keep the socket alive.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
            sock.close()

    @staticmethod
    def _down(upstream: socket.socket, client: socket.socket, dropped: threading.Event) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
            if not dropped.is_set():
                client.shutdown(socket.SHUT_WR)  # the server closed: so does the proxy
        except OSError:
            pass

    @staticmethod
    def _answer(client: socket.socket, pending: bytes, status: int) -> None:
        """Reads the rest of a request (headers, Content-Length body), answers it, closes."""
        while b"\r\n\r\n" not in pending and (data := client.recv(65536)):
            pending += data
        head, _, body = pending.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        remaining = int(length.group(1)) - len(body) if length else 0
        while remaining > 0 and (data := client.recv(min(65536, remaining))):
            remaining -= len(data)
        text = b"<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>"
        client.sendall(
            b"HTTP/1.1 %d Injected\r\nContent-Type: application/xml\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (status, len(text), text)
        )

    def _up(self, client: socket.socket, upstream: socket.socket, dropped: threading.Event) -> None:
        tail, received, scanned, fault, budget = b"", 0, 0, None, 0
        try:
            while data := client.recv(65536):
                window, window_start = tail + data, received - len(tail)
                for match in self.pattern.finditer(window):
                    at = window_start + match.start()
                    if fault is not None or at < scanned:
                        continue
                    scanned = at + 1
                    with self.lock:
                        self.requests += 1
                        decision = self.policy(self.requests, match.group())
                    if decision:
                        fault, size = decision
                        budget = max(0, at - received) + (0 if fault == "fail" else size)
                tail, received = window[-4096:], received + len(data)
                if fault is None:
                    upstream.sendall(data)
                    continue
                upstream.sendall(data[:budget])
                if fault != "fail" and budget >= len(data):
                    budget -= len(data)
                    continue
                with self.lock:
                    self.faults += 1
                if fault == "fail":
                    upstream.close()
                    self._answer(client, data[budget:], size)
                    self._reset(dropped, client)
                    return
                if fault == "hold":
                    self.held.set()
                    self.release.wait()
                self._reset(dropped, upstream, client)
                return
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass


# Requests carrying file bytes: GCS resumable-upload chunks, S3 multipart-upload parts.
GCS_DATA = rb"PUT /upload/storage/v1/"
S3_DATA = rb"PUT /[^ ?]*\?partNumber="


def named_file(name: str) -> Callable[[bytes], bool]:
    """Whether a data request line is for a file of that name (GCS quotes it in `name=`)."""
    quoted = urllib.parse.quote(name, safe="").encode()
    return lambda line: (
        line.split(b"?")[0].endswith(b"/" + name.encode()) or (b"%2F" + quoted + b"&" in line)
    )


def once(matches: Callable[[bytes], bool], decision: tuple) -> Callable[[int, bytes], tuple]:
    """A proxy policy applying `decision` to the first request that matches, once."""
    done = []

    def policy(n: int, line: bytes) -> tuple | None:
        if done or not matches(line):
            return None
        done.append(n)
        return decision

    return policy


def upload_order(model_dir: str) -> list[tuple[str, int]]:
    """The pusher's upload order: (file, size), saved_model.pb last, then the marker."""
    return [
        (f, os.path.getsize(os.path.join(model_dir, f))) for f in versions.model_files(model_dir)
    ]
