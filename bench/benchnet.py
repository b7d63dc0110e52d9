"""Small helpers the benchmarks share: loopback ports, tools, limits, file systems."""

import os
import resource
import shutil
import socket
import subprocess
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"

# Debian puts Postfix's tools in /usr/sbin, which a non-login shell may not search.
SBIN_DIRS = ("/usr/sbin", "/sbin")

# File systems on which fsync costs nothing, so a durability benchmark means nothing.
MEMORY_FILE_SYSTEMS = {"tmpfs", "ramfs"}


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float, is_alive=lambda: True) -> None:
    """Return once something accepts TCP connections on the loopback port.

    Raises RuntimeError after `timeout` seconds or as soon as `is_alive()` says the
    server process has gone.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive():
            raise RuntimeError(f"server exited before listening on port {port}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {LOOPBACK}:{port} after {timeout:.0f} s")


def find_tool(name: str) -> str:
    """The absolute path of a command, looking in the sbin directories too."""
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    path = shutil.which(name, path=search_path)
    if path is None:
        raise RuntimeError(f"{name} not found; install Debian's postfix package")
    return path


def raise_open_file_limit(needed: int) -> None:
    """Let this process (and the servers it starts) hold `needed` descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))


def file_system_type(path: Path) -> str:
    """The type of the file system holding `path`, as `stat -f` names it."""
    result = subprocess.run(
        ["stat", "--file-system", "--format=%T", str(path)],
        check=True, capture_output=True, text=True,
    )
    return result.stdout.strip()


def is_memory_backed(path: Path) -> bool:
    """True when fsync under `path` reaches no disk."""
    return file_system_type(path) in MEMORY_FILE_SYSTEMS


class Instance:
    """A server started on entering a ``with`` block and stopped on leaving it."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
