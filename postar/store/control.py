"""The control FIFO in the data directory: how an admin command in another process tells the
running server to look at its queue now.

As Postfix's ``postqueue -f`` writes a one-byte request into the queue manager's FIFO
(``public/qmgr``), ``postar queue retry`` and ``release`` write ``W`` into ``control``
once their change is committed. The server reads it on its event loop and wakes the
queue runner. No server running means nobody reads: the write is refused at once
(ENXIO) and the change waits for the next start, which scans the queue anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger("postar.store")

CONTROL_NAME = "control"
WAKE = b"W"  # look at the queue now (Postfix's QMGR_REQ_WAKEUP)


def control_path(data_dir: Path) -> Path:
    return data_dir / CONTROL_NAME


@contextlib.contextmanager
def wake_requests(data_dir: Path, wake: Callable[[], None]) -> Iterator[None]:
    """While inside: each ``W`` written into the FIFO calls ``wake`` on the running loop.

    Opened read-write (Linux allows it on a FIFO), so the server itself keeps a writer and
    never sees end-of-file when a client closes. A FIFO that cannot be made is logged and
    done without: admin changes are then noticed at the next queue scan.
    """
    path = control_path(data_dir)
    try:
        fd = _open_fifo(path)
    except OSError as e:
        log.warning("no control FIFO %s (%s): queue retry and release wait for the next queue scan",
                    path, e.strerror or e)
        yield
        return

    def readable() -> None:
        try:
            requests = os.read(fd, 512)
        except (BlockingIOError, InterruptedError):
            return
        if WAKE in requests:
            wake()

    loop = asyncio.get_running_loop()
    loop.add_reader(fd, readable)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _open_fifo(path: Path) -> int:
    try:
        if not stat.S_ISFIFO(os.lstat(path).st_mode):
            path.unlink()  # not ours to read from: a FIFO takes its place
            os.mkfifo(path, 0o600)
    except FileNotFoundError:
        os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDWR | os.O_NONBLOCK)


def request_wake(data_dir: Path) -> bool:
    """Ask the server running on ``data_dir`` to look at its queue; False when none runs."""
    try:
        fd = os.open(control_path(data_dir), os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENXIO):  # never started here, or not running now
            return False
        raise
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        with contextlib.suppress(BlockingIOError):  # full: wake requests are pending already
            os.write(fd, WAKE)
        return True
    finally:
        os.close(fd)
