"""What the IMAP server does with bad input: BAD and carry on, refuse big literals, close after too many errors.

Raw sockets, because the point is bytes a well-behaved client would not send.
Compared with Dovecot 2.3.19: BAD for the same lines and sequence sets; for a
tag with nothing after it Dovecot answers with that tag ("a1 BAD"), postar
untagged ("* BAD"), both allowed (RFC 9051 §7.1.3).
"""

from __future__ import annotations

import socket

import pytest

from tests.conftest import PASSWORD, USERS
from tests.imap.wire import (
    Wire,
    append,
    quote,
    unique,
)

LIMIT = 1048576  # the shared server's [limits] message_size


@pytest.fixture
def wire(server):
    wire = Wire.login(server)
    yield wire
    wire.close()


@pytest.mark.parametrize("line", [b"", b"   ", b")(*&^%", b"* NOOP", b"+ NOOP", b"\x00\x01\x02",
                                  b"\xff\xfe NOOP"])
def test_a_line_without_a_tag_gets_untagged_bad_and_the_session_goes_on(wire, line):
    wire.send(line + b"\r\n")
    assert wire.response().startswith(b"* BAD")
    wire.expect("OK", "NOOP")


def test_a_literal_without_a_tag_is_not_solicited(wire):
    # A line that cannot be a command is answered at once, as Dovecot does ("* BAD"); a "+" here
    # would make the server read the next 5 octets, eating the start of the client's next command.
    wire.send(b"{5}\r\n")
    assert wire.response().startswith(b"* BAD")
    wire.expect("OK", "NOOP")


def test_a_tag_alone_is_bad(wire):
    wire.send(b"a1\r\n")
    reply = wire.response()
    assert reply.startswith((b"* BAD", b"a1 BAD"))
    wire.expect("OK", "NOOP")


@pytest.mark.parametrize("command", ["FOO", "NOOP extra", "LOGOUTX", "UID", "UID FOO 1", "UID NOOP", "SELECT",
                                     "SELECT a b c", 'SELECT "unterminated', "SELECT (INBOX", "SELECT INBOX)",
                                     'STATUS INBOX "MESSAGES"', "STATUS INBOX (FOO)", 'CREATE "a\\x"',
                                     "LIST", 'LIST "" "*" RETURN', "ENABLE", "NOOP\t"])
def test_bad_commands_are_bad_and_the_session_goes_on(wire, command):
    wire.expect("BAD", command)
    wire.expect("OK", "NOOP")


def test_lower_case_commands_work(wire):
    wire.expect("OK", "noop")
    wire.expect("OK", "select inbox")
    wire.expect("OK", "uid fetch 1:* (flags)")


@pytest.mark.parametrize("sequence", ["0", "1:x", "1,,2", "-1", "4294967296", "1:2:3", "", "a", "$x"])
def test_bad_sequence_sets_are_bad(server, sequence):
    wire = Wire.login(server)
    name = unique("seq-")
    wire.expect("OK", f"CREATE {name}")
    for n in (1, 2, 3):
        append(wire, name, b"Subject: s\r\n\r\nx\r\n")
    wire.expect("OK", f"SELECT {name}")
    wire.expect("BAD", f"FETCH {sequence} FLAGS")
    wire.expect("BAD", f"UID STORE {sequence} +FLAGS (\\Seen)")
    wire.expect("BAD", "FETCH 4 FLAGS")  # beyond the last message
    wire.expect("BAD", "FETCH 2:4 FLAGS")
    assert wire.expect("OK", "UID FETCH 4:9 FLAGS") in ([], [b"* 3 FETCH (UID 3 FLAGS ())"])
    assert wire.expect("OK", "FETCH 1:* UID") == [b"* %d FETCH (UID %d)" % (n, n) for n in (1, 2, 3)]
    wire.close()


def test_sequence_numbers_in_an_empty_mailbox(wire):
    name = unique("empty-")
    wire.expect("OK", f"CREATE {name}")
    wire.expect("OK", f"SELECT {name}")
    wire.expect("BAD", "FETCH 1:* FLAGS")
    wire.expect("BAD", "STORE * +FLAGS (\\Seen)")
    assert wire.expect("OK", "UID FETCH 1:* FLAGS") == []
    assert wire.expect("OK", "SEARCH 1:*") == [b"* SEARCH"]


def test_a_too_long_line_is_bad_and_the_session_goes_on(wire):
    wire.send(b"a1 NOOP " + b"x" * 70000 + b"\r\n")
    assert wire.response().startswith(b"* BAD")
    wire.expect("OK", "NOOP")


def test_a_synchronizing_literal_over_the_limit_is_toobig_without_a_continuation(wire):
    wire.send(b"a1 APPEND INBOX {%d}\r\n" % (LIMIT + 1))
    reply = wire.response()
    assert reply.startswith(b"a1 NO [TOOBIG]"), reply  # and no "+ " before it
    wire.expect("OK", "NOOP")  # the command is over; nothing of it is read as a command


def test_a_literal_of_exactly_the_limit_is_taken(wire):
    name = unique("big-")
    wire.expect("OK", f"CREATE {name}")
    data = b"Subject: big\r\n\r\n" + b"x" * (LIMIT - 18) + b"\r\n"
    assert len(data) == LIMIT
    append(wire, name, data)
    assert b"SIZE %d" % LIMIT in wire.expect("OK", f"STATUS {name} (SIZE)")[0]
    wire.expect("OK", f"DELETE {name}")


def test_a_non_synchronizing_literal_over_the_limit_closes_the_connection(wire):
    # RFC 7888 §4: the octets are on their way and cannot be refused; the server may close.
    wire.send(b"a1 APPEND INBOX {%d+}\r\n" % (LIMIT + 1))
    reply = wire.response()
    assert reply.startswith(b"* BYE [TOOBIG]"), reply
    assert wire.closed()


def test_too_many_bad_commands_end_the_session(wire):
    for n in range(19):
        wire.expect("BAD", f"BOGUS{n}")
    wire.expect("OK", "NOOP")  # 19 are tolerated
    wire.send(b"x1 BOGUS\r\n")
    assert wire.response().startswith(b"x1 BAD")
    assert wire.response().startswith(b"* BYE")
    assert wire.closed()


def test_untagged_bad_lines_count_too(server):
    wire = Wire.connect(server)
    for _ in range(20):
        wire.send(b")\r\n")
    replies = [wire.response() for _ in range(21)]
    assert all(r.startswith(b"* BAD") for r in replies[:20]) and replies[20].startswith(b"* BYE")
    assert wire.closed()


@pytest.mark.parametrize("marker", ["{100}", "{100+}"])
def test_a_client_that_disconnects_mid_literal_leaves_nothing_appended(server, wire, marker):
    name = unique("cut-")
    wire.expect("OK", f"CREATE {name}")
    cut = Wire.login(server)
    cut.send(f"a1 APPEND {name} {marker}\r\n".encode())
    if "+" not in marker:
        assert cut.response().startswith(b"+")
    cut.send(b"Subject: cut\r\n\r\n" + b"x" * 34)  # 50 of the 100 octets
    cut.sock.shutdown(socket.SHUT_RDWR)
    cut.close()
    wire.expect("OK", "NOOP")
    assert b"MESSAGES 0" in wire.expect("OK", f"STATUS {name} (MESSAGES)")[0]
    again = Wire.login(server)  # the server is fine
    again.expect("OK", f"STATUS {name} (MESSAGES)")
    again.close()


def test_a_literal_in_a_login_is_capped_before_login(server):
    # Before login a literal holds a user name or password: a few KiB (issue 17).
    wire = Wire.connect(server)
    wire.send(b"a1 LOGIN {%d}\r\n" % (LIMIT + 1))
    assert wire.response().startswith(b"a1 BAD Literal of %d octets is too large before login" % (LIMIT + 1))
    wire.expect("OK", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    wire.close()


def test_idle_interrupted_by_a_command_instead_of_done(wire):
    wire.expect("OK", "SELECT INBOX")
    wire.send(b"i1 IDLE\r\n")
    assert wire.response().startswith(b"+ ")
    wire.send(b"i2 NOOP\r\n")  # not DONE
    wire.until("i1", "BAD")
    wire.expect("OK", "NOOP")
