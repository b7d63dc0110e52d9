"""A throwaway postar on loopback, set up with the admin CLI and run as a subprocess.

Only the listeners asked for are on: SMTP always, submission (STARTTLS) when a
`submission_port` is given, IMAP and POP3 over implicit TLS when an `imaps_port`
or `pop3s_port` is given. Every other listener is switched off in the config, as
postar's defaults would otherwise open them on 0.0.0.0.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from benchnet import LOOPBACK, Instance, wait_for_port

STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0


# The checkout this bench/ belongs to: its postar is the one measured, never an
# installed copy that may be older (a `pip install .` is not updated by `git pull`).
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for the in-process `postar.store` imports below too


def postar_command() -> list[str]:
    """How to invoke this checkout's postar: this Python, `-m postar`, see `postar_env`.

    Run it with `cwd=REPO`: `-m` puts the working directory first on sys.path,
    ahead of PYTHONPATH, so from another checkout it would run that one's postar.
    """
    return [sys.executable, "-m", "postar"]


def postar_env() -> dict[str, str]:
    """The environment for `postar_command`: PYTHONPATH starts with the checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# Listeners the config names; all but smtp (and imaps, pop3s when asked for) are set to "" (off).
LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "web")


class PostarInstance(Instance):
    """postar serving SMTP on LOOPBACK:`port` for `domain`, with one user.

    Optional: submission with STARTTLS on LOOPBACK:`submission_port`, IMAP over
    implicit TLS on LOOPBACK:`imaps_port`, POP3 over implicit TLS on
    LOOPBACK:`pop3s_port`, more users
    (`extra_users`, same password), a given certificate (`tls_cert`, `tls_key`;
    otherwise postar makes its self-signed one), a per-address connection limit,
    and more config tables (`tables`: table name -> key -> value, e.g.
    ``{"delivery": {"smarthost": "127.0.0.1:2525"}}``).
    """

    def __init__(self, root: Path, port: int, domain: str, user: str, password: str, *,
                 imaps_port: int | None = None, pop3s_port: int | None = None,
                 submission_port: int | None = None,
                 extra_users: Sequence[str] = (),
                 tls_cert: Path | None = None, tls_key: Path | None = None,
                 connections_per_ip: int = 2000,
                 tables: Mapping[str, Mapping[str, object]] | None = None):
        self.root = root.absolute()  # postar runs in REPO, not in our working directory
        self.port = port
        self.domain = domain
        self.user = user
        self.password = password
        self.imaps_port = imaps_port
        self.pop3s_port = pop3s_port
        self.submission_port = submission_port
        self.extra_users = tuple(extra_users)
        self.tls_cert = tls_cert and tls_cert.absolute()
        self.tls_key = tls_key and tls_key.absolute()
        self.connections_per_ip = connections_per_ip
        self.tables = {name: dict(values) for name, values in (tables or {}).items()}
        self.config_file = self.root / "postar.toml"
        self.data_dir = self.root / "postar-data"
        self.log_file = self.root / "postar.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Write the config, add the domain and users, start `postar run`, wait for it."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._config_toml())
        self._admin("domain", "add", self.domain)
        for user in (self.user, *self.extra_users):
            self._admin("user", "add", user, "--password-stdin", stdin=self.password + "\n")
        self.launch()

    def launch(self) -> None:
        """Start `postar run` on the existing config and data, and wait until it listens.

        After `stop`, this starts the same instance again (its log is appended to).
        """
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [*postar_command(), "--config", str(self.config_file), "run"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=postar_env(), cwd=REPO,
            )
        try:
            for port in (self.port, self.submission_port, self.imaps_port, self.pop3s_port):
                if port is not None:
                    wait_for_port(port, STARTUP_TIMEOUT, is_alive=lambda: self.process.poll() is None)
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
        result = subprocess.run(command, input=stdin, capture_output=True, text=True,
                                env=postar_env(), cwd=REPO)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )

    def _config_toml(self) -> str:
        # JSON string syntax is valid TOML basic-string syntax, escapes included.
        addresses = {name: "" for name in LISTENERS}
        addresses["smtp"] = f"{LOOPBACK}:{self.port}"
        if self.submission_port is not None:
            addresses["submission"] = f"{LOOPBACK}:{self.submission_port}"
        if self.imaps_port is not None:
            addresses["imaps"] = f"{LOOPBACK}:{self.imaps_port}"
        if self.pop3s_port is not None:
            addresses["pop3s"] = f"{LOOPBACK}:{self.pop3s_port}"
        lines = [
            f"hostname = {json.dumps(self.domain)}",
            f"data_dir = {json.dumps(str(self.data_dir))}",
            "[listen]",
            *(f"{name} = {json.dumps(address)}" for name, address in addresses.items()),
        ]
        if self.tls_cert is not None:
            lines += ["[tls]", f"cert = {json.dumps(str(self.tls_cert))}",
                      f"key = {json.dumps(str(self.tls_key))}"]
        lines += ["[limits]", f"connections_per_ip = {self.connections_per_ip}"]
        for table, values in self.tables.items():
            lines += [f"[{table}]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
        return "\n".join(lines) + "\n"
