"""Hostile clients for the tests: floods, half-open connections, trickles; and what the
server process holds, read from /proc."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path


def status(pid: int, field: str) -> int:
    """A /proc/PID/status figure in KiB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def connect(port: int, source: str = "127.0.0.1", timeout: float = 30) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def wait_until(condition, what: str, limit: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail (naming ``what``) if it never does."""
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


class Flood:
    """Sends ``command`` ``count`` times as fast as the server takes it, while a reader thread
    counts the replies (lines starting with ``reply``), or never reads when ``read`` is false."""

    def __init__(self, sock: socket.socket, command: bytes, count: int, reply: bytes, read: bool = True):
        self.sock = sock
        self.replies = 0
        self.sent = 0
        self.done = threading.Event()
        self._reply = reply
        self._payload = command * count
        self._sender = threading.Thread(target=self._send, daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True) if read else None

    def start(self) -> "Flood":
        self._sender.start()
        if self._reader:
            self._reader.start()
        return self

    def _send(self) -> None:
        view = memoryview(self._payload)
        try:
            while self.sent < len(view):
                self.sent += self.sock.send(view[self.sent:self.sent + 65536])
        except OSError:
            pass
        self.done.set()

    def _read(self) -> None:
        pending = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                pending += data
                lines = pending.split(b"\r\n")
                pending = lines.pop()
                self.replies += sum(1 for line in lines if line.startswith(self._reply))
        except OSError:
            return

    def close(self) -> None:
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.sock.close()
