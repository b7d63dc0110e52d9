"""Attacks and abuse over real sockets: SMTP smuggling, STARTTLS command injection,
over-long lines, binary junk, error limits, clients vanishing mid-message,
connection and failed-login limits, idle timeouts.

Most tests talk through ``Wire``, a raw socket that sends bytes exactly as given
(smtplib would fix line endings and dot-stuff) and compares whole replies
byte for byte with ``postar.smtp.replies``. Tests that throttle or time out
the server start a private one.
"""

from __future__ import annotations

import base64
import random
import smtplib
import socket
import ssl
import struct
import uuid

import pytest

from postar.config import Limits
from postar.smtp import replies
from postar.smtp.server import MAX_COMMAND_LINE
from tests.conftest import HOSTNAME, PASSWORD, USERS, message


class Wire:
    """One raw SMTP connection: bytes go out as given, whole replies come back as bytes."""

    def __init__(self, port: int):
        self.sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.pending = b""

    def reply(self) -> bytes:
        """One whole reply, every line of a multi-line one; what there was if the server closed."""
        out = b""
        while True:
            while b"\r\n" not in self.pending:
                chunk = self._recv()
                if not chunk:
                    return out + self.pending
                self.pending += chunk
            line, _, self.pending = self.pending.partition(b"\r\n")
            out += line + b"\r\n"
            if line[3:4] != b"-":
                return out

    def say(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        out, self.pending = self.pending, b""
        while chunk := self._recv():
            out += chunk
        return out

    def starttls(self, context: ssl.SSLContext) -> None:
        assert self.pending == b"", f"server sent {self.pending!r} before the TLS handshake"
        self.sock = context.wrap_socket(self.sock, server_hostname=HOSTNAME)

    def close(self, reset: bool = False) -> None:
        if reset:  # RST instead of FIN
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:
            return b""


def connect(server, name: str = "smtp") -> Wire:
    """Greeted and EHLO'd."""
    wire = Wire(server.ports[name])
    assert wire.reply().startswith(f"220 {HOSTNAME} ESMTP".encode())
    assert wire.say(b"EHLO client.test\r\n").startswith(f"250-{HOSTNAME}\r\n".encode())
    return wire


def start_transaction(wire: Wire, to: str = USERS[0]) -> None:
    assert wire.say(b"MAIL FROM:<bob@remote.test>\r\n") == replies.SENDER_OK.encode()
    assert wire.say(f"RCPT TO:<{to}>\r\n".encode()) == replies.RECIPIENT_OK.encode()


def unique() -> str:
    return uuid.uuid4().hex


def find(server, address: str, marker: str):
    return [m for m in server.messages(address) if marker.encode() in m.content]


def deliver(server, marker: str, to: str = USERS[0]) -> None:
    """A whole delivery on a new connection: the server still serves."""
    client = server.smtp()
    assert client.sendmail("bob@remote.test", [to], message(subject=marker, to=to)) == {}
    client.quit()
    assert len(find(server, to, marker)) == 1


def plain(user: str, password: str) -> bytes:
    return base64.b64encode(f"\0{user}\0{password}".encode())


# SMTP smuggling: CVE-2023-51764/51765/51766, aiosmtpd CVE-2024-27305 ---------------

@pytest.mark.parametrize("fake_end", [b"\n.\r\n", b"\r\n.\n", b"\n.\n", b"\r.\r\n", b"\r\n.\r", b"\n.\r"],
                         ids=repr)
def test_smuggled_end_of_data_never_delivers_a_second_message(server, fake_end):
    outer, smuggled = unique(), unique()
    wire = connect(server)
    start_transaction(wire)
    assert wire.say(b"DATA\r\n") == replies.START_DATA.encode()
    payload = (message(subject=outer, body="Hi there.") + fake_end
               + b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
               + message(subject=smuggled, sender="evil@remote.test", to=USERS[1]) + b".\r\n")
    assert wire.say(payload) == replies.BARE_LINE_ENDING.encode()
    assert wire.say(b"NOOP\r\n") == replies.OK.encode()
    assert wire.say(b"QUIT\r\n") == replies.BYE.encode()
    for user in USERS:
        assert not find(server, user, outer) and not find(server, user, smuggled)


@pytest.mark.parametrize("body", [b"one\ntwo\r\n", b"one\rtwo\r\n", b"one\r\n\rtwo\r\n", b"ends in CR\r"], ids=repr)
def test_bare_cr_or_lf_anywhere_in_data_is_550_5_6_0(server, body):
    marker = unique()
    wire = connect(server)
    start_transaction(wire)
    assert wire.say(b"DATA\r\n") == replies.START_DATA.encode()
    assert wire.say(message(subject=marker, body="") + body + b"\r\n.\r\n") == replies.BARE_LINE_ENDING.encode()
    assert wire.say(b"NOOP\r\n") == replies.OK.encode()
    assert not find(server, USERS[0], marker)


def test_dot_line_inside_crlf_data_is_unstuffed_not_an_end(server):
    """The control case: a stuffed '..' line is content; only CRLF.CRLF ends DATA."""
    marker = unique()
    wire = connect(server)
    start_transaction(wire)
    assert wire.say(b"DATA\r\n") == replies.START_DATA.encode()
    reply = wire.say(message(subject=marker, body="a\r\n..\r\n.. MAIL FROM:<x@y.test>\r\nb\r\n") + b".\r\n")
    assert reply.startswith(b"250 2.0.0 Ok: queued as ")
    [stored] = find(server, USERS[0], marker)
    assert stored.content.endswith(b"a\r\n.\r\n. MAIL FROM:<x@y.test>\r\nb\r\n")


# STARTTLS command injection: CVE-2011-0411, aiosmtpd CVE-2024-34083 -----------------

@pytest.mark.parametrize("name", ["smtp", "submission"])
@pytest.mark.parametrize("injected", [b"RSET\r\n", b"MAIL FROM:<x@y.test>\r\n", b"NOOP\r\nHELP\r\nQUIT\r\n"],
                         ids=["RSET", "MAIL", "three"])
def test_commands_pipelined_after_starttls_are_thrown_away(server, name, injected):
    wire = connect(server, name)
    assert wire.say(b"STARTTLS\r\n" + injected) == replies.READY_FOR_TLS.encode()
    wire.starttls(server.client_tls())
    # The first reply after the handshake answers this EHLO, not an injected command.
    assert wire.say(b"EHLO client.test\r\n").startswith(f"250-{HOSTNAME}\r\n".encode())
    assert wire.say(b"QUIT\r\n") == replies.BYE.encode()
    assert wire.rest() == b""


# Over-long lines, junk and the error limit ----------------------------------------

def test_command_line_over_2048_octets_is_500_5_5_2_and_session_goes_on(server):
    wire = connect(server)
    longest = b"NOOP " + b"x" * (MAX_COMMAND_LINE - len(b"NOOP \r\n")) + b"\r\n"
    assert len(longest) == MAX_COMMAND_LINE == 2048
    assert wire.say(longest) == replies.OK.encode()
    assert wire.say(longest[:-2] + b"x\r\n") == replies.LINE_TOO_LONG.encode()
    assert wire.say(b"MAIL FROM:<" + b"a" * 5000 + b"@remote.test>\r\n") == replies.LINE_TOO_LONG.encode()
    assert wire.say(b"NOOP " + b"y" * 300_000 + b"\r\n") == replies.LINE_TOO_LONG.encode()
    # The tail of an over-long line is never read as a command of its own.
    assert wire.say(b"x" * 3000 + b"RSET\r\n") == replies.LINE_TOO_LONG.encode()
    start_transaction(wire)  # MAIL works: the long MAIL above started nothing
    assert wire.say(b"QUIT\r\n") == replies.BYE.encode()


JUNK = [b"\x00", b"\x00\x00MAIL\x00FROM:<a@b.test>", b"\xff\xfe\xfd\xfc", b"NOOP\rRSET", b"\rQUIT",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", b"EHLO \xc3\x28", b"GET / HTTP/1.1"]


def test_binary_junk_gets_5xx_and_the_server_stays_fine(server):
    rng = random.Random(5321)
    alphabet = [0, 0x0d, 0x7f, 0x80, 0xc3, 0xff, *range(0x20, 0x7f)]
    lines = JUNK + [bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(8)]
    wire = connect(server)
    for line in lines:
        reply = wire.say(line + b"\r\n")
        assert reply[:3] in (b"500", b"501") and reply.count(b"\r\n") == 1, (line, reply)
    assert wire.say(b"NOOP\r\n") == replies.OK.encode()
    deliver(server, unique())


def test_too_many_errors_is_421_4_7_0_and_the_connection_closes(server):
    errors = Limits().errors
    assert errors == 20
    wire = connect(server)
    for _ in range(errors - 1):
        assert wire.say(b"FOO\r\n") == replies.UNRECOGNIZED.encode()
    assert wire.say(b"FOO\r\n") == replies.TOO_MANY_ERRORS.encode()
    assert wire.rest() == b""


def test_pipelined_errors_past_the_limit_get_no_more_replies(server):
    wire = connect(server)
    wire.send(b"\xff\x00junk\r\n" * 30 + b"NOOP\r\n")
    assert wire.rest() == replies.BAD_SYNTAX("Error: command is not valid UTF-8").encode() * 19 \
        + replies.TOO_MANY_ERRORS.encode()


@pytest.mark.parametrize("line", ["BDAT ²", "BDAT ١٢", "MAIL FROM:<bob@remote.test> SIZE=²",
                                  "MAIL FROM:<bob@remote.test> SIZE=١٢"])
def test_sizes_take_only_ascii_digits(server, line):
    """RFC 3030 / RFC 1870: 1*DIGIT. Python's isdigit() also takes '²' (int() then raises) and '١٢'."""
    wire = connect(server)
    if line.startswith("BDAT"):
        start_transaction(wire)
    # Twelve octets behind the command: a server that reads "١٢" as 12 takes them as the chunk.
    assert wire.say(line.encode() + b"\r\nNOOP\r\nNOOP\r\n")[:10] == b"501 5.5.4 "
    assert wire.reply() == replies.OK.encode()
    assert wire.reply() == replies.OK.encode()


# Clients that vanish in the middle of a message ------------------------------------

@pytest.mark.parametrize("reset", [False, True], ids=["FIN", "RST"])
@pytest.mark.parametrize("tail", [b"", b"\r\n", b"\r\n.", b"\r\n.\r"], ids=repr)
def test_disconnect_mid_data_stores_nothing(server, tail, reset):
    marker = unique()
    wire = connect(server)
    start_transaction(wire)
    assert wire.say(b"DATA\r\n") == replies.START_DATA.encode()
    wire.send(message(subject=marker, body="cut off") + tail)
    wire.close(reset)
    deliver(server, unique())
    assert not find(server, USERS[0], marker)


@pytest.mark.parametrize("reset", [False, True], ids=["FIN", "RST"])
def test_disconnect_mid_bdat_chunk_stores_nothing(server, reset):
    marker = unique()
    raw = message(subject=marker)
    wire = connect(server)
    start_transaction(wire)
    assert wire.say(b"BDAT 20\r\n" + raw[:20]) == replies.CHUNK_OK("Ok: 20 octets received").encode()
    wire.send(f"BDAT {len(raw) - 20} LAST\r\n".encode() + raw[20:-10])  # ten octets short
    wire.close(reset)
    deliver(server, unique())
    assert not find(server, USERS[0], marker)


# Limits on a private server ------------------------------------------------------------

def test_connections_per_ip_over_the_limit_get_421(start_server):
    private = start_server(extra_limits="connections_per_ip = 3")
    port = private.ports["smtp"]
    wires = [Wire(port) for _ in range(3)]
    for wire in wires:
        assert wire.reply().startswith(b"220 ")
    fourth = Wire(port)
    assert fourth.rest() == replies.TOO_MANY_CONNECTIONS.encode()
    assert wires[0].say(b"QUIT\r\n") == replies.BYE.encode()
    assert wires[0].rest() == b""  # closed by the server, so its count is already down
    again = Wire(port)
    assert again.reply().startswith(b"220 ")
    assert again.say(b"NOOP\r\n") == replies.OK.encode()
    assert "too many connections from 127.0.0.1" in private.log()


def tls_submission(server, name: str = "submission") -> Wire:
    wire = connect(server, name)
    assert wire.say(b"STARTTLS\r\n") == replies.READY_FOR_TLS.encode()
    wire.starttls(server.client_tls())
    assert wire.say(b"EHLO client.test\r\n").endswith(b"250 AUTH PLAIN LOGIN\r\n")
    return wire


def test_failed_logins_get_535_until_the_limit_then_refused(start_server):
    private = start_server(extra_limits="failed_logins = 3")
    wire = tls_submission(private)
    for attempt in (1, 2, 3):  # three failures allowed, each answered as a failure
        reply = wire.say(b"AUTH PLAIN " + plain(USERS[0], "wrong") + b"\r\n")
        assert reply == replies.AUTH_FAILED.encode(), f"attempt {attempt}: {reply!r}"
    refused = wire.say(b"AUTH PLAIN " + plain(USERS[0], PASSWORD) + b"\r\n")
    assert refused in (replies.LOGINS_BLOCKED.encode(), replies.LOGINS_BLOCKED_CLOSING.encode())
    log = private.log()
    assert "wrong password" in log and "too many failed logins" in log


def test_blocked_address_is_refused_even_with_the_right_password_on_every_port(start_server):
    private = start_server(extra_limits="failed_logins = 3")
    for _ in range(3):
        wire = tls_submission(private)
        reply = wire.say(b"AUTH PLAIN " + plain(USERS[1], "wrong") + b"\r\n")
        assert reply[:3] in (b"535", b"421"), reply
        wire.close()
    wire = tls_submission(private)
    assert wire.say(b"AUTH PLAIN " + plain(USERS[0], PASSWORD) + b"\r\n") == replies.LOGINS_BLOCKED.encode()
    # refused before any challenge; told twice in one session, the connection is closed
    assert wire.say(b"AUTH LOGIN\r\n") == replies.LOGINS_BLOCKED_CLOSING.encode()
    client = private.submissions()
    with pytest.raises(smtplib.SMTPAuthenticationError) as error:
        client.login(USERS[0], PASSWORD)
    # smtplib tries PLAIN (454) then LOGIN, which as the second refusal closes with 421
    assert error.value.smtp_code in (replies.LOGINS_BLOCKED.code, replies.LOGINS_BLOCKED_CLOSING.code)
    assert error.value.smtp_error.startswith(b"4.7.0")
    assert "login refused" in private.log() and "too many failed logins from 127.0.0.1" in private.log()


@pytest.mark.parametrize("command", [b"AUTH PLAIN " + plain(USERS[0], PASSWORD), b"AUTH LOGIN"], ids=["PLAIN", "LOGIN"])
def test_plaintext_auth_on_submission_is_538_and_logged(server, command):
    before = server.log().count("plaintext AUTH")
    wire = connect(server, "submission")
    assert wire.say(command + b"\r\n") == replies.ENCRYPTION_REQUIRED.encode()  # no 334: no password sent
    assert wire.say(b"QUIT\r\n") == replies.BYE.encode()
    assert server.log().count("plaintext AUTH") == before + 1


def test_idle_connection_gets_421_4_4_2_and_is_closed(start_server):
    private = start_server(extra_limits="idle_timeout = 1.0")
    wire = Wire(private.ports["smtp"])
    assert wire.reply().startswith(b"220 ")
    assert wire.rest() == replies.TIMEOUT.encode()
    mid_data = connect(private)
    start_transaction(mid_data)
    assert mid_data.say(b"DATA\r\n") == replies.START_DATA.encode()
    mid_data.send(message(subject="stalled"))
    assert mid_data.rest() == replies.TIMEOUT.encode()
    assert not find(private, USERS[0], "stalled")
    assert "timeout, client=127.0.0.1" in private.log()
