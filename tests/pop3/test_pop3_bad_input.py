"""Bad input to POP3: every error is a ``-ERR`` line that says what was wrong, the
session goes on (until ``limits.errors`` bad commands), and nothing is lost.
"""

from __future__ import annotations

import signal
import socket

import pytest

from postar.pop3 import responses
from tests.conftest import USERS
from tests.imap.wire import deliver, new_user
from tests.pop3.pop import Pop


@pytest.mark.parametrize("line, reply", [
    (b"FOO", b"-ERR Unknown command: FOO"),
    (b"XTND XMIT", b"-ERR Unknown command: XTND"),
    (b"", b"-ERR Empty command."),
    (b"RETRIEVE 1", b"-ERR Unknown command: RETRIEVE"),
    (b"\xff\xfe", b"-ERR Command is not valid UTF-8."),
    (b"NOOP\x00", b"-ERR Control characters in the command."),
    (b"STAT", responses.NOT_LOGGED_IN.rstrip(b"\r\n")),
    (b"RETR 1", responses.NOT_LOGGED_IN.rstrip(b"\r\n")),
    (b"PASS x", responses.NO_USERNAME.rstrip(b"\r\n")),
    (b"APOP alice c4c9334bac560ecc979e58001b3e22fb", b"-ERR Unknown command: APOP"),
])
def test_bad_commands_before_login(server, line, reply):
    pop = Pop.connect(server)
    assert pop.command(line) == reply
    assert pop.command("CAPA").startswith(b"+OK")  # the session goes on


@pytest.mark.parametrize("line, reply", [
    ("RETR", b"-ERR RETR takes a message number."),
    ("RETR 0", b"-ERR Invalid message number: 0"),
    ("RETR -1", b"-ERR Invalid message number: -1"),
    ("RETR one", b"-ERR Invalid message number: one"),
    ("RETR 1 2", b"-ERR RETR takes a message number."),
    ("DELE 99999999999", b"-ERR Invalid message number: 99999999999"),
    ("LIST 2", b"-ERR There's no message 2."),
    ("UIDL 5", b"-ERR There's no message 5."),
    ("TOP 1 -1", b"-ERR Invalid number of lines: -1"),
    ("USER bob@example.test", responses.ALREADY_LOGGED_IN.rstrip(b"\r\n")),
])
def test_bad_commands_in_transaction(server, line, reply):
    user = new_user(server)
    deliver(server, user, "only")
    pop = Pop.login(server, user)
    assert pop.command(line) == reply
    assert pop.command("STAT").startswith(b"+OK 1 ")


def test_an_over_long_line_is_refused_and_the_session_goes_on(server):
    pop = Pop.connect(server)
    assert pop.command(b"USER " + b"a" * 100_000) + b"\r\n" == responses.LINE_TOO_LONG
    assert pop.command(f"USER {USERS[0]}") == b"+OK"


def test_too_many_bad_commands_end_the_session(start_server):
    private = start_server("errors = 3")
    pop = Pop.connect(private)
    for _ in range(2):
        assert pop.command("BOGUS").startswith(b"-ERR Unknown command")
    assert pop.command("BOGUS").startswith(b"-ERR Unknown command")
    assert pop.line() + b"\r\n" == responses.TOO_MANY_ERRORS
    assert pop.closed()


def test_binary_junk_then_a_real_session(server):
    user = new_user(server)
    deliver(server, user, "survivor")
    with socket.create_connection(("127.0.0.1", server.ports["pop3"]), timeout=30) as junk:
        junk.recv(100)
        junk.sendall(bytes(range(256)) * 8 + b"\r\n")
    assert Pop.login(server, user).command("STAT").startswith(b"+OK 1 ")


def test_too_many_connections_from_one_address(start_server):
    private = start_server("connections_per_ip = 2")
    first, second = Pop.connect(private), Pop.connect(private)
    with socket.create_connection(("127.0.0.1", private.ports["pop3"]), timeout=30) as third:
        assert third.recv(200) == responses.TOO_MANY_CONNECTIONS
    assert first.command("CAPA").startswith(b"+OK") and second.command("CAPA").startswith(b"+OK")


def test_shutdown_tells_sessions_and_applies_nothing_without_quit(start_server):
    private = start_server()
    deliver(private, USERS[0], "kept through shutdown")
    pop = Pop.login(private, USERS[0])
    pop.command("DELE 1")
    private.stop(signal.SIGTERM)
    assert pop.line() + b"\r\n" == responses.SHUTTING_DOWN
    private.start()
    assert Pop.login(private, USERS[0]).command("STAT").startswith(b"+OK 1 ")
