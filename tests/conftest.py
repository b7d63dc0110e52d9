"""Test fixtures: a real postar process on free loopback ports, with a trustme CA.

``server`` is shared by a whole test session; tests that stop, kill or throttle
the server start their own with ``start_server``. Mail clients verify the
server's certificate against the test CA, as a real client would.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import poplib
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from postar.store import StoredMessage
from postar.store.sqlite import SQLiteStore

HOSTNAME = "mx.example.test"
DOMAIN = "example.test"
PASSWORD = "correct horse battery"
USERS = ("alice@example.test", "bob@example.test")
# Port 9 (discard) on loopback: nobody answers, DNS look-ups time out, outbound mail stays queued.
DEAD_DELIVERY = '[delivery]\nnameservers = ["127.0.0.1:9"]\nmx_port = 9\n'


# Under CI a skip means a tool or privilege the test command should have provided:
# it fails the run, so a missing install step can never pass CI. Developers
# without some tool still run the rest locally (CI unset).
def _skips_fail() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _skips_fail() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must not happen: {reason}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(Exception):
    pass


@dataclass
class Server:
    """A running postar process and how to reach it."""

    root: Path
    config_path: Path
    ports: dict[str, int]
    ca: trustme.CA
    process: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.root / "postar.log"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "postar", "--config", str(self.config_path), *args],
                                input=input, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"postar {' '.join(args)} failed: {result.stderr}")
        return result

    def start(self, tries: int = 3) -> None:
        """Start and wait until every listener is bound; a port taken meanwhile by another
        process (free_port can only pick one that was free a moment ago) gets new ports."""
        for attempt in range(tries):
            try:
                return self._start_once()
            except PortTaken:
                self.ports = {name: free_port() for name in self.ports}
                text = self.config_path.read_text()
                for name, port in self.ports.items():
                    text = re.sub(rf'^{name} = "127\.0\.0\.1:\d+"', f'{name} = "127.0.0.1:{port}"', text, flags=re.M)
                self.config_path.write_text(text)
        raise AssertionError(f"postar could not bind its ports: {self.log()}")

    def _start_once(self) -> None:
        log = open(self.log_path, "ab")
        already = self.log().count("postar listening")
        self.process = subprocess.Popen([sys.executable, "-m", "postar", "--config", str(self.config_path), "run"],
                                        stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "address already in use" in self.log().split("postar listening")[-1].lower():
                    self.process = None
                    raise PortTaken
                raise AssertionError(f"postar exited: {self.log()}")
            # printed once every listener is bound; probing the ports would use up connections
            if self.log().count("postar listening") > already:
                return
            time.sleep(0.05)
        raise AssertionError(f"postar did not start listening: {self.log()}")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        code = self.process.wait(timeout=60)
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def smtp(self, name: str = "smtp") -> smtplib.SMTP:
        """A connected, EHLO'd client on the plain listener ``name`` (smtp or submission)."""
        client = smtplib.SMTP("127.0.0.1", self.ports[name], local_hostname="client.test", timeout=30)
        client.ehlo()
        return client

    def submission(self, user: str = USERS[0], password: str = PASSWORD) -> smtplib.SMTP:
        """Logged in on 587-style submission after STARTTLS."""
        client = self.smtp("submission")
        client.starttls(context=self.client_tls())
        client.ehlo()
        client.login(user, password)
        return client

    def submissions(self) -> smtplib.SMTP_SSL:
        """Connected on 465-style implicit TLS (not logged in)."""
        client = smtplib.SMTP_SSL("127.0.0.1", self.ports["submissions"], local_hostname="client.test",
                                  context=self.client_tls(), timeout=30)
        client.ehlo()
        return client

    def imap(self, user: str = USERS[0], password: str = PASSWORD) -> imaplib.IMAP4_SSL:
        """Logged in over IMAP on the implicit-TLS port."""
        client = imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"], ssl_context=self.client_tls(), timeout=30)
        client.login(user, password)
        return client

    def pop3(self, user: str = USERS[0], password: str = PASSWORD) -> poplib.POP3_SSL:
        """Logged in (USER/PASS) over POP3 on the implicit-TLS port."""
        client = poplib.POP3_SSL("127.0.0.1", self.ports["pop3s"], context=self.client_tls(), timeout=30)
        client.user(user)
        client.pass_(password)
        return client

    def messages(self, address: str, mailbox: str = "INBOX") -> list[StoredMessage]:
        """What the store holds for ``address``, read through the store's own interface."""
        async def read() -> list[StoredMessage]:
            store = await SQLiteStore.open(self.data_dir)
            try:
                account = await store.find_account(address)
                assert account is not None, f"no account {address}"
                return await store.messages(account.id, mailbox)
            finally:
                await store.close()
        return asyncio.run(read())

    def store_problems(self) -> list[str]:
        """What the store's own consistency check finds (an empty list when all is well)."""
        async def check() -> list[str]:
            store = await SQLiteStore.open(self.data_dir)
            try:
                return await store.check()
            finally:
                await store.close()
        return asyncio.run(check())

    def queue(self) -> list:
        async def read() -> list:
            store = await SQLiteStore.open(self.data_dir)
            try:
                return await store.queue()
            finally:
                await store.close()
        return asyncio.run(read())


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


def make_server(root: Path, ca: trustme.CA, extra_limits: str = "", extra_config: str = "") -> Server:
    """Write a config, add the test domain, users and an alias; not started yet.

    ``extra_limits`` goes into [limits]; ``extra_config`` (whole tables) after it. Without a
    [delivery] table there, other domains are looked up at a DNS server that never answers:
    their mail waits in the queue."""
    root.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert(HOSTNAME, "localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(root / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    ports = {name: free_port() for name in ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")}
    config = root / "postar.toml"
    config.write_text(f"""
hostname = "{HOSTNAME}"
data_dir = "{root / 'data'}"
[listen]
smtp = "127.0.0.1:{ports['smtp']}"
submission = "127.0.0.1:{ports['submission']}"
submissions = "127.0.0.1:{ports['submissions']}"
imap = "127.0.0.1:{ports['imap']}"
imaps = "127.0.0.1:{ports['imaps']}"
pop3 = "127.0.0.1:{ports['pop3']}"
pop3s = "127.0.0.1:{ports['pop3s']}"
[tls]
cert = "{root / 'cert.pem'}"
key = "{root / 'key.pem'}"
[limits]
failed_login_delay = 0.05
message_size = 1048576
recipients = 5
{extra_limits}
{extra_config or DEAD_DELIVERY}
""")
    server = Server(root, config, ports, ca)
    server.cli("domain", "add", DOMAIN)
    for user in USERS:
        server.cli("user", "add", user, "--password-stdin", input=PASSWORD + "\n")
    server.cli("alias", "add", f"postmaster@{DOMAIN}", USERS[0])
    server.cli("alias", "add", f"team@{DOMAIN}", USERS[0])
    server.cli("alias", "add", f"team@{DOMAIN}", USERS[1])
    return server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA):
    running = make_server(tmp_path_factory.mktemp("postar"), ca)
    running.start()
    yield running
    if running.process is not None:
        running.stop()


@pytest.fixture
def start_server(tmp_path: Path, ca: trustme.CA):
    """A factory for a private server, for tests that stop, kill or throttle it."""
    started: list[Server] = []

    def start(extra_limits: str = "", extra_config: str = "") -> Server:
        private = make_server(tmp_path / f"server{len(started)}", ca, extra_limits, extra_config)
        private.start()
        started.append(private)
        return private

    yield start
    for private in started:
        if private.process is not None:
            private.process.send_signal(signal.SIGKILL)
            private.process.wait()


def message(subject: str = "hello", body: str = "Hi there.\r\n", sender: str = "bob@remote.test",
            to: str = USERS[0]) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}.{os.getpid()}@remote.test>\r\n\r\n{body}").encode()
