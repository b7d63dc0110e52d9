"""A throwaway postar on loopback, set up with the admin CLI and run as a subprocess."""

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from benchnet import LOOPBACK, Instance, wait_for_port

STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0


def postar_command() -> list[str]:
    """How to invoke postar: the installed command, or this Python's module."""
    installed = shutil.which("postar")
    return [installed] if installed else [sys.executable, "-m", "postar"]


class PostarInstance(Instance):
    """postar serving SMTP on LOOPBACK:`port` for `domain`, with one user."""

    def __init__(self, root: Path, port: int, domain: str, user: str, password: str):
        self.root = root
        self.port = port
        self.domain = domain
        self.user = user
        self.password = password
        self.config_file = root / "postar.toml"
        self.data_dir = root / "postar-data"
        self.log_file = root / "postar.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Write the config, add the domain and user, start `postar run`, wait for it."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._config_toml())
        self._admin("domain", "add", self.domain)
        self._admin("user", "add", self.user, "--password-stdin", stdin=self.password + "\n")
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [*postar_command(), "--config", str(self.config_file), "run"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_port(self.port, STARTUP_TIMEOUT, is_alive=lambda: self.process.poll() is None)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; postar log:\n{self.log_tail()}") from None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if postar has not exited in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def check_alive(self) -> None:
        """Raise with the log tail if the server process has exited."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"postar is not running; log tail:\n{self.log_tail()}")

    def rss_kib(self) -> int:
        """The server process's resident set size (VmRSS) in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line in /proc status")

    def stored_count(self) -> int:
        """How many messages the user's INBOX holds, read through postar's store API.

        A second SQLite connection to the live WAL database sees every commit.
        """
        return asyncio.run(self._inbox_count())

    async def _inbox_count(self) -> int:
        # Imported here so that `--only postfix` runs without postar installed.
        from postar.store.sqlite import SQLiteStore

        store = await SQLiteStore.open(self.data_dir)
        try:
            account = await store.find_account(self.user)
            if account is None:
                raise RuntimeError(f"postar has no account {self.user}")
            mailboxes = await store.mailboxes(account.id)
            return next(box.messages for box in mailboxes if box.name == "INBOX")
        finally:
            await store.close()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines postar printed."""
        if not self.log_file.exists():
            return "(no output)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def _admin(self, *args: str, stdin: str | None = None) -> None:
        command = [*postar_command(), "--config", str(self.config_file), *args]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )

    def _config_toml(self) -> str:
        # JSON string syntax is valid TOML basic-string syntax, escapes included.
        return "\n".join([
            f"hostname = {json.dumps(self.domain)}",
            f"data_dir = {json.dumps(str(self.data_dir))}",
            "[listen]",
            f"smtp = {json.dumps(f'{LOOPBACK}:{self.port}')}",
            "[limits]",
            "connections_per_ip = 2000",
            "",
        ])
