"""Shared by the outbound-delivery tests: a world of other domains on loopback.

``World`` is a real DNS server (unbound, ``dnsserver.py``) with the test zones,
receiving Postfix instances (``receivers.py``) and scripted servers for fault
cases (``scripted_smtp.py``) on 127.0.0.x at one MX port, and
a private postar whose [delivery] table points at both. Mail is submitted by
alice@example.test on the submission port, as a mail client would.
"""

from __future__ import annotations

import email
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from tests.conftest import PASSWORD, USERS, Server, make_server
from tests.delivery.conftest import free_loopback_port
from tests.delivery.dnsserver import DNSServer
from tests.delivery.receivers import PostfixReceiver
from tests.delivery.scripted_smtp import Behaviour, ScriptedSMTP

SENDER = USERS[0]


@dataclass
class World:
    root: Path
    ca: trustme.CA
    dns: DNSServer
    port: int = field(default_factory=free_loopback_port)
    receivers: list[PostfixReceiver] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    scratch: list[Path] = field(default_factory=list)
    fakes: list[ScriptedSMTP] = field(default_factory=list)

    def receiver(self, ip: str, domains: list[str], name: str | None = None, tls: bool = True,
                 settings: dict[str, str] | None = None) -> PostfixReceiver:
        name = name or f"mx.{domains[0]}"
        # Postfix's unprivileged daemons must reach it: pytest's tmp_path is private to root
        directory = Path(tempfile.mkdtemp(prefix="postar-mx-"))
        directory.chmod(0o755)
        self.scratch.append(directory)
        cert = key = None
        if tls:
            issued = self.ca.issue_cert(name)
            cert, key = directory / "cert.pem", directory / "key.pem"
            issued.cert_chain_pems[0].write_to_path(str(cert))
            issued.private_key_pem.write_to_path(str(key))
        receiver = PostfixReceiver(directory / "postfix", ip, self.port, domains, cert=cert, key=key,
                                   hostname=name, settings=settings)
        receiver.start()
        self.receivers.append(receiver)
        return receiver

    def scripted(self, ip: str, *behaviours: Behaviour) -> ScriptedSMTP:
        """A scripted SMTP server on ``ip`` at the MX port (stopped by ``close``)."""
        server = ScriptedSMTP(ip, self.port, *behaviours)
        server.start()
        self.fakes.append(server)
        return server

    def postar(self, delivery: str = "", limits: str = "") -> Server:
        """A private postar delivering through this world (``delivery``: more [delivery] keys)."""
        ca_file = self.root / "ca.pem"
        self.ca.cert_pem.write_to_path(str(ca_file))
        server = make_server(self.root / f"postar{len(self.servers)}", self.ca, limits,
                             f'[delivery]\nnameservers = ["{self.dns.nameserver}"]\nmx_port = {self.port}\n'
                             f'ca_file = "{ca_file}"\n{delivery}\n')
        server.start()
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            if server.process is not None:
                server.stop()
        for receiver in self.receivers:
            receiver.stop()
        for fake in self.fakes:
            fake.stop()
        for directory in self.scratch:
            shutil.rmtree(directory, ignore_errors=True)


def submit(server: Server, to: list[str], subject: str = "", body: str = "Hello.\r\n", *,
           headers: str = "", mail_options: tuple[str, ...] = (), rcpt_options: tuple[str, ...] = (),
           sender: str = SENDER) -> bytes:
    subject = subject or f"test {uuid.uuid4().hex[:8]}"
    raw = (f"From: {sender}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\n{headers}\r\n{body}").encode()
    client = server.submission(sender, PASSWORD)
    client.sendmail(sender, to, raw, mail_options=list(mail_options), rcpt_options=list(rcpt_options))
    client.quit()
    return raw


def wait_until(check, timeout: float = 30.0, what: str = "the condition"):
    """Poll ``check`` until it returns something true; the waiting is not what is tested."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def reports(server: Server, user: str = SENDER) -> list[email.message.Message]:
    """Delivery status notifications in the user's INBOX (from MAILER-DAEMON), parsed."""
    found = []
    for stored in server.messages(user):
        if b"From: Mail Delivery System <MAILER-DAEMON@" in stored.content:
            found.append(email.message_from_bytes(stored.content))
    return found


def delivery_status(report: email.message.Message) -> list[dict[str, str]]:
    """The per-recipient fields of a report's message/delivery-status part."""
    [part] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    groups = part.get_payload()
    return [dict(group.items()) for group in groups[1:]]
