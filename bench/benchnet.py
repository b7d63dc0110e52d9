"""Small helpers the benchmarks share: loopback ports, tools, limits, file systems."""

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"

# Debian puts Postfix's and Dovecot's tools in /usr/sbin, which a non-login shell may not search.
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


def find_tool(name: str, package: str = "postfix") -> str:
    """The absolute path of a command, looking in the sbin directories too.

    `package` is the Debian package the error message tells to install.
    """
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    path = shutil.which(name, path=search_path)
    if path is None:
        raise RuntimeError(f"{name} not found; install Debian's {package} package")
    return path


def raise_open_file_limit(needed: int) -> int:
    """Let this process (and the servers it starts) hold `needed` descriptors.

    Returns the soft limit now in force: the hard limit, when it cannot be raised
    (root without CAP_SYS_RESOURCE, e.g. in a container) and is below `needed`.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return needed


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


def make_workdir(stack: contextlib.ExitStack, parent: Path | None, prefix: str = "postar-bench-") -> Path:
    """A temporary directory for one run, removed by ``stack``; warns when fsync would cost nothing there."""
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix, dir=parent)))
    workdir.chmod(0o755)  # Postfix's and Dovecot's unprivileged processes must reach their directories
    if is_memory_backed(workdir):
        print(f"WARNING: {workdir} is in memory, fsync costs nothing there; "
              "pass --workdir on a disk-backed file system", file=sys.stderr)
    return workdir


class Instance:
    """A server started on entering a ``with`` block and stopped on leaving it.

    Subclasses keep the server's ``subprocess.Popen`` in ``self.process``.
    """

    process: subprocess.Popen | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        return self.process.pid

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def make_certificate(directory: Path, hostname: str) -> tuple[Path, Path]:
    """A self-signed RSA-2048 certificate and key for `hostname`, made with openssl.

    RSA 2048 as postar's own self-signed certificate, so that a server given this
    pair does the TLS handshake work it would do with its default.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "7",
         "-subj", f"/CN={hostname}", "-addext", f"subjectAltName=DNS:{hostname}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    key.chmod(0o600)
    return cert, key


def process_memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB, from /proc/PID/smaps_rollup.

    PSS divides each shared page among the processes that map it, so summed over
    a family of forked processes it counts the shared code and libraries once.
    """
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/PID/stat.

    With `reaped_children`, the CPU of the children it has waited for is added.
    """
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "; fields[0] is state
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (not idle, not waiting for I/O)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / CLOCK_TICKS  # guest time is inside user time


def descendants(pid: int) -> list[int]:
    """The pids of every living process below `pid` in the process tree."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        parent = int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
