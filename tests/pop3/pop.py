"""Shared by the POP3 tests: ``Pop``, a raw POP3 connection one exchange at a time,
and ``unstuff`` to undo RFC 1939 byte-stuffing the way a client does."""

from __future__ import annotations

import socket
import time

from tests.conftest import PASSWORD
from tests.raw import RawConnection

OPEN: list["Pop"] = []  # closed after each test (tests/pop3/conftest.py)


class Pop(RawConnection):
    def __init__(self, sock: socket.socket):
        super().__init__(sock)
        OPEN.append(self)
        self.greeting = self.line()

    @classmethod
    def connect(cls, server, tls: bool = True) -> "Pop":
        """On 995-style implicit TLS, or (tls=False) in plain text on the STLS port."""
        sock = socket.create_connection(("127.0.0.1", server.ports["pop3s" if tls else "pop3"]), timeout=30)
        if tls:
            sock = server.client_tls().wrap_socket(sock, server_hostname="127.0.0.1")
        return cls(sock)

    @classmethod
    def login(cls, server, user: str, password: str = PASSWORD) -> "Pop":
        pop = cls.connect(server)
        assert pop.command(f"USER {user}") == b"+OK"
        assert pop.command(f"PASS {password}") == b"+OK Logged in.", user
        return pop

    def stls(self, server) -> None:
        assert self.command("STLS").startswith(b"+OK")
        assert self.buffer == b"", "nothing may follow the STLS reply in plain text"
        self.sock = server.client_tls().wrap_socket(self.sock, server_hostname="127.0.0.1")

    def line(self) -> bytes:
        """The next line without its CRLF."""
        return self.line_with_crlf()[:-2]

    def command(self, text: str | bytes) -> bytes:
        """Send one command; its status line."""
        self.send((text.encode() if isinstance(text, str) else text) + b"\r\n")
        return self.line()

    def body(self) -> bytes:
        """The rest of a multi-line response, exactly as sent (still stuffed), without the ".CRLF"."""
        while True:
            end = self.buffer.find(b"\r\n.\r\n")
            if self.buffer.startswith(b".\r\n"):
                self.buffer = self.buffer[3:]
                return b""
            if end >= 0:
                data, self.buffer = self.buffer[:end + 2], self.buffer[end + 5:]
                return data
            self._fill()

    def multi(self, text: str) -> tuple[bytes, bytes]:
        """A command with a multi-line answer: (status line, body as sent)."""
        status = self.command(text)
        assert status.startswith(b"+OK"), (text, status)
        return status, self.body()

    def lines(self, text: str) -> list[bytes]:
        return self.multi(text)[1].splitlines()


def unstuff(body: bytes) -> bytes:
    """RFC 1939 §3: a line starting with "." had one more "." put in front."""
    lines = body.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def login_once_free(server, user: str) -> Pop:
    """Log in as soon as the server has noticed that the account's previous session went away."""
    for _ in range(200):
        pop = Pop.connect(server)
        pop.command(f"USER {user}")
        reply = pop.command(f"PASS {PASSWORD}")
        if reply == b"+OK Logged in.":
            return pop
        assert reply.startswith(b"-ERR [IN-USE]"), reply
        pop.close()
        time.sleep(0.05)
    raise AssertionError("the maildrop lock was never released")
