"""Shared by the IMAP protocol tests: ``Wire``, a raw TLS connection speaking IMAP one
exchange at a time, and helpers to make users, deliver and append mail."""

from __future__ import annotations

import base64
import itertools
import re
import socket
import uuid

from imapclient import IMAPClient

from tests.conftest import PASSWORD, USERS, message
from tests.raw import RawConnection

LITERAL_AT_END = re.compile(rb"~?\{(\d+)\}\r\n$")
OPEN: list["Wire"] = []  # closed after each test (tests/imap/conftest.py)


class Wire(RawConnection):
    """One raw IMAP connection, a command at a time: ``wire.expect("NO [TRYCREATE]", "APPEND x {1+}\\r\\nx")``.

    ``expect`` sends a tagged command, reads up to its tagged reply, checks that
    the reply starts with the given status (and response code), and returns the
    untagged responses, each as bytes without its CRLF, literals inline.
    """

    def __init__(self, sock: socket.socket):
        super().__init__(sock)
        OPEN.append(self)
        self.tags = itertools.count(1)
        self.tagged = b""  # the last tagged reply
        self.greeting = self.response()

    @classmethod
    def connect(cls, server, tls: bool = True) -> Wire:
        """On 993-style implicit TLS, or (tls=False) in plain text on the STARTTLS port."""
        sock = socket.create_connection(("127.0.0.1", server.ports["imaps" if tls else "imap"]), timeout=30)
        if tls:
            sock = server.client_tls().wrap_socket(sock, server_hostname="127.0.0.1")
        return cls(sock)

    @classmethod
    def login(cls, server, user: str = USERS[0], password: str = PASSWORD) -> Wire:
        wire = cls.connect(server)
        wire.expect("OK", f"LOGIN {user} {quote(password)}")
        return wire

    def starttls(self, server) -> None:
        self.expect("OK", "STARTTLS")
        assert self.buffer == b"", "nothing may follow the STARTTLS reply in plain text"
        self.sock = server.client_tls().wrap_socket(self.sock, server_hostname="127.0.0.1")

    def line(self) -> bytes:
        """The next line, with its CRLF."""
        return self.line_with_crlf()

    def response(self) -> bytes:
        """One whole response, its literals inline, without the final CRLF."""
        out = self.line()
        while (literal := LITERAL_AT_END.search(out)) is not None:
            out += self.exactly(int(literal.group(1))) + self.line()
        return out[:-2]

    def expect(self, status: str, command: bytes | str, tag: str | None = None) -> list[bytes]:
        tag = tag or f"t{next(self.tags)}"
        data = command.encode() if isinstance(command, str) else command
        self.send(tag.encode() + b" " + data + b"\r\n")
        return self.until(tag, status)

    def until(self, tag: str, status: str) -> list[bytes]:
        """The untagged responses up to ``tag``'s reply, which must start with ``status``."""
        untagged = []
        while True:
            response = self.response()
            if response.startswith(tag.encode() + b" "):
                self.tagged = response
                assert response[len(tag) + 1:].startswith(status.encode()), (response, untagged)
                return untagged
            untagged.append(response)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def new_user(server) -> str:
    """A fresh account on ``server`` (password PASSWORD), for tests that need an exact mailbox list or INBOX."""
    address = f"{unique('u')}@example.test"
    server.cli("user", "add", address, "--password-stdin", input=PASSWORD + "\n")
    return address


def deliver(server, to: str, subject: str, body: str = "Hi there.\r\n") -> bytes:
    """Deliver one message over SMTP on port 25; the bytes sent."""
    raw = message(subject=subject, body=body, to=to)
    client = server.smtp()
    client.sendmail("bob@remote.test", [to], raw)
    client.quit()
    return raw


def append(wire: Wire, mailbox: str, data: bytes, flags: str = "") -> int:
    """APPEND with a non-synchronizing literal (RFC 7888); the new message's UID from APPENDUID."""
    flag_part = f"({flags}) " if flags else ""
    wire.expect("OK [APPENDUID", f"APPEND {quote(mailbox)} {flag_part}{{{len(data)}+}}\r\n".encode() + data)
    return int(re.search(rb"APPENDUID \d+ (\d+)", wire.tagged).group(1))


def imapclient(server, user: str = USERS[0]) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=server.ports["imaps"], ssl=True, ssl_context=server.client_tls(),
                        timeout=30)
    client.login(user, PASSWORD)
    return client


def plain_response(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def capabilities(untagged: list[bytes]) -> list[str]:
    [line] = [u for u in untagged if u.startswith(b"* CAPABILITY ")]
    return line.decode().split()[2:]


# Before TLS ----------------------------------------------------------------------------


def examined(server, user: str) -> Wire:
    """Logged in as ``user`` with INBOX open read-only (EXAMINE)."""
    wire = Wire.login(server, user)
    wire.expect("OK", "EXAMINE INBOX")
    return wire
