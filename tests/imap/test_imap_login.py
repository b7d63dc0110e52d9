"""IMAP login over real sockets: STARTTLS, LOGIN, AUTHENTICATE PLAIN, app passwords, states, throttling.

Transcripts, one line per exchange. ``Wire`` (a raw connection) and the
helpers above the tests are shared by the other ``test_imap_*`` files.
Checked against Dovecot 2.3.19 (Debian 12) on loopback: same status and
response code for every exchange here; Dovecot names no IMAP4rev2, and it
answers commands of the wrong state with BAD as postar does.
"""

from __future__ import annotations

import base64
import imaplib
import itertools
import re
import socket
import ssl
import uuid

import pytest
from imapclient import IMAPClient

from tests.conftest import PASSWORD, USERS, message

LITERAL_AT_END = re.compile(rb"~?\{(\d+)\}\r\n$")
_OPEN: list[Wire] = []  # closed after each test, so a failed test leaves no connection behind


class Wire:
    """One raw IMAP connection, a command at a time: ``wire.expect("NO [TRYCREATE]", "APPEND x {1+}\\r\\nx")``.

    ``expect`` sends a tagged command, reads up to its tagged reply, checks that
    the reply starts with the given status (and response code), and returns the
    untagged responses, each as bytes without its CRLF, literals inline.
    """

    def __init__(self, sock: socket.socket):
        _OPEN.append(self)
        self.sock = sock
        self.buffer = b""
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

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"connection closed; unread: {self.buffer!r}")
        self.buffer += data

    def line(self) -> bytes:
        """The next line, with its CRLF."""
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line + b"\r\n"

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

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

    def closed(self) -> bool:
        """Whether the server has closed the connection (after what is still buffered)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLEOFError):
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(autouse=True)
def close_wires():
    """Close every Wire a test opened (the shared server allows 50 connections per address)."""
    yield
    while _OPEN:
        _OPEN.pop().close()


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

def test_plain_port_offers_starttls_and_no_login(server):
    wire = Wire.connect(server, tls=False)
    assert wire.greeting.startswith(b"* OK [CAPABILITY ")
    words = capabilities(wire.expect("OK", "CAPABILITY"))
    assert "STARTTLS" in words and "LOGINDISABLED" in words and "IMAP4rev1" in words
    assert not any(w.startswith("AUTH=") for w in words)
    wire.close()


def test_login_before_starttls_is_privacyrequired(server):
    wire = Wire.connect(server, tls=False)
    wire.expect("NO [PRIVACYREQUIRED]", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    wire.expect("NO [PRIVACYREQUIRED]", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD)}")
    wire.expect("NO [PRIVACYREQUIRED]", "AUTHENTICATE PLAIN")  # refused before any continuation
    wire.expect("BAD", "SELECT INBOX")  # still not authenticated
    wire.close()


def test_starttls_then_login(server):
    wire = Wire.connect(server, tls=False)
    wire.starttls(server)
    words = capabilities(wire.expect("OK", "CAPABILITY"))
    assert "AUTH=PLAIN" in words
    assert "STARTTLS" not in words and "LOGINDISABLED" not in words
    wire.expect("BAD", "STARTTLS")  # TLS is already active
    wire.expect("OK [CAPABILITY ", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    wire.expect("OK", "SELECT INBOX")
    wire.close()


def test_starttls_discards_commands_pipelined_in_plain_text(server):
    # RFC 9051 §6.2.1 / RFC 2595 §3.1: plaintext sent after STARTTLS must not run inside TLS.
    wire = Wire.connect(server, tls=False)
    wire.send(b"s1 STARTTLS\r\ns2 CAPABILITY\r\n")
    assert wire.until("s1", "OK") == []
    wire.sock = server.client_tls().wrap_socket(wire.sock, server_hostname="127.0.0.1")
    wire.buffer = b""
    assert wire.expect("OK", "NOOP", tag="s3") == []  # no reply for s2
    wire.close()


def test_imaplib_starttls_login(server):
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    client.starttls(ssl_context=server.client_tls())
    assert client.login(USERS[1], PASSWORD)[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()


# LOGIN and AUTHENTICATE on implicit TLS -------------------------------------------------

def test_implicit_tls_offers_auth_plain_without_starttls(server):
    wire = Wire.connect(server)
    words = capabilities(wire.expect("OK", "CAPABILITY"))
    assert "AUTH=PLAIN" in words and "SASL-IR" in words
    assert "STARTTLS" not in words and "LOGINDISABLED" not in words
    login_words = wire.expect("OK [CAPABILITY", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    assert login_words == []
    assert "AUTH=PLAIN" not in wire.tagged.decode()  # no more login capabilities once logged in
    wire.close()


def test_login_with_literals(server):
    wire = Wire.connect(server)
    user = USERS[0].encode()
    wire.send(b"l1 LOGIN {%d}\r\n" % len(user))
    assert wire.response().startswith(b"+")
    wire.send(user + b" {%d}\r\n" % len(PASSWORD))
    assert wire.response().startswith(b"+")
    wire.send(PASSWORD.encode() + b"\r\n")
    wire.until("l1", "OK")
    wire.close()


def test_authenticate_plain_with_initial_response(server):
    wire = Wire.connect(server)
    wire.expect("OK", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD)}")
    wire.expect("OK", "SELECT INBOX")
    wire.close()


def test_authenticate_plain_with_continuation(server):
    wire = Wire.connect(server)
    wire.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert wire.response() == b"+ "
    wire.send(plain_response(USERS[1], PASSWORD).encode() + b"\r\n")
    wire.until("a1", "OK")
    wire.expect("OK", "SELECT INBOX")
    wire.close()


def test_imaplib_authenticate_plain(server):
    client = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.client_tls(), timeout=30)
    typ, _ = client.authenticate("PLAIN", lambda _: f"\0{USERS[1]}\0{PASSWORD}".encode())
    assert typ == "OK" and client.state == "AUTH"
    client.logout()


def test_authenticate_cancelled_or_garbled_is_bad_and_session_goes_on(server):
    wire = Wire.connect(server)
    wire.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert wire.response().startswith(b"+")
    wire.send(b"*\r\n")  # RFC 9051 §6.2.2: a cancelled exchange is BAD
    wire.until("a1", "BAD")
    wire.expect("BAD", "AUTHENTICATE PLAIN !!notbase64!!")
    wire.expect("NO", "AUTHENTICATE CRAM-MD5")  # not offered
    wire.expect("OK", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD)}")
    wire.close()


def test_authenticate_plain_as_another_user_is_refused(start_server):
    private = start_server()
    wire = Wire.connect(private)
    # authzid bob, authcid alice with alice's password: alice may not act as bob. The exchange is
    # well-formed, so this is an authorization failure, NO (RFC 9051 §6.2.2, RFC 4616 §2; RFC 5530's
    # AUTHORIZATIONFAILED fits; Dovecot says NO [AUTHENTICATIONFAILED]), not BAD.
    wire.expect("NO", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD, authzid=USERS[1])}")
    wire.expect("BAD", "SELECT INBOX")
    wire.close()


def test_wrong_password_is_authenticationfailed_and_the_session_may_retry(start_server):
    private = start_server()  # failed logins are counted per address: kept off the shared server
    wire = Wire.connect(private)
    wire.expect("NO [AUTHENTICATIONFAILED]", f"LOGIN {USERS[0]} wrong")
    wire.expect("NO [AUTHENTICATIONFAILED]", f"LOGIN nobody@example.test {quote(PASSWORD)}")
    wire.expect("NO [AUTHENTICATIONFAILED]", f"AUTHENTICATE PLAIN {plain_response(USERS[0], 'wrong')}")
    wire.expect("BAD", "SELECT INBOX")
    wire.expect("OK", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    wire.close()


def test_app_password_logs_in_with_or_without_spaces(server):
    name = unique("client")
    output = server.cli("user", "app-password", USERS[1], "--name", name).stdout
    password = output.strip().splitlines()[-1].strip()
    assert re.fullmatch(r"[a-z]{4}( [a-z]{4}){3}", password), output
    for typed in (password, password.replace(" ", "")):
        wire = Wire.connect(server)
        wire.expect("OK", f"LOGIN {USERS[1]} {quote(typed)}")
        wire.close()
    client = IMAPClient("127.0.0.1", port=server.ports["imaps"], ssl=True, ssl_context=server.client_tls(), timeout=30)
    client.login(USERS[1], password)
    assert client.folder_exists("INBOX")
    client.logout()


def test_too_many_failures_give_unavailable_even_for_the_right_password(start_server):
    private = start_server(extra_limits="failed_logins = 3")
    wire = Wire.connect(private)
    for _ in range(3):
        wire.expect("NO [AUTHENTICATIONFAILED]", f"LOGIN {USERS[0]} wrong")
    wire.expect("NO [UNAVAILABLE]", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    wire.expect("NO [UNAVAILABLE]", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD)}")
    wire.close()
    other = Wire.connect(private)  # the limit is per address, not per connection
    other.expect("NO [UNAVAILABLE]", f"LOGIN {USERS[1]} {quote(PASSWORD)}")
    other.send(b"a1 AUTHENTICATE PLAIN\r\n")  # refused before the continuation
    other.until("a1", "NO [UNAVAILABLE]")
    other.close()


def test_connections_per_address_are_limited(start_server):
    private = start_server(extra_limits="connections_per_ip = 2")
    first, second = Wire.connect(private), Wire.connect(private)
    third = Wire.connect(private)
    assert third.greeting.startswith(b"* BYE [UNAVAILABLE]")
    assert third.closed()
    first.expect("OK", "NOOP")
    first.close()
    second.expect("OK", "NOOP")
    second.close()


def test_imap_access_switch_refuses_login(server):
    address = new_user(server)
    server.cli("user", "imap", address, "off")
    wire = Wire.connect(server)
    wire.expect("NO [CONTACTADMIN]", f"LOGIN {address} {quote(PASSWORD)}")
    wire.close()
    assert "IMAP access disabled for " + address in server.log()
    server.cli("user", "imap", address, "on")
    wire = Wire.connect(server)
    wire.expect("OK", f"LOGIN {address} {quote(PASSWORD)}")
    wire.close()


# States (RFC 9051 §3) ----------------------------------------------------------------

def test_commands_in_the_wrong_state_are_bad(server):
    wire = Wire.connect(server)
    for command in ("SELECT INBOX", "LIST \"\" *", "CREATE x", "ENABLE UTF8=ACCEPT", "IDLE", "FETCH 1 FLAGS",
                    "NAMESPACE", "APPEND INBOX {1+}\r\nx"):
        wire.expect("BAD", command)
    for command in ("NOOP", "CAPABILITY", 'ID ("name" "pytest")'):
        wire.expect("OK", command)
    wire.close()
    wire = Wire.login(server)  # a new session: 20 BADs in one would close it (limits.errors)
    for command in (f"LOGIN {USERS[0]} {quote(PASSWORD)}", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD)}",
                    "STARTTLS", "FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "CLOSE", "UNSELECT",
                    "SEARCH ALL", "UID FETCH 1 FLAGS", "COPY 1 INBOX", "CHECK"):
        wire.expect("BAD", command)
    wire.expect("OK", "EXAMINE INBOX")
    wire.expect("OK", "CLOSE")
    wire.expect("BAD", "FETCH 1 FLAGS")  # back in the authenticated state
    wire.close()


def test_logout_says_bye_then_ok_then_closes(server):
    wire = Wire.login(server)
    untagged = wire.expect("OK", "LOGOUT")
    assert len(untagged) == 1 and untagged[0].startswith(b"* BYE ")
    assert wire.closed()


def test_logout_before_login(server):
    wire = Wire.connect(server, tls=False)
    [bye] = wire.expect("OK", "LOGOUT")
    assert bye.startswith(b"* BYE")
    assert wire.closed()


def test_imapclient_login_and_capabilities(server):
    client = imapclient(server, USERS[1])
    caps = client.capabilities()
    for word in (b"IMAP4REV1", b"IDLE", b"UIDPLUS", b"MOVE", b"CONDSTORE", b"ESEARCH", b"SPECIAL-USE"):
        assert word in caps
    assert client.select_folder("INBOX")[b"UIDVALIDITY"] > 0
    client.logout()
