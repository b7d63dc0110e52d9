"""Deep nesting and odd mailbox names get NO or BAD and the session goes on (issue 17, item 7).

Over raw TLS, as a hostile client sends them: 30,000 "(" after LOGIN before
logging in, SEARCH with 30,000 nested parentheses or a chain of 15,000 NOT
after, odd mailbox names (``SELECT ~foo`` is an atom: issue 10, item 3); then
a message of 10,000 nested MIME parts delivered on port 25 and fetched
(BODYSTRUCTURE, BODY[1.1.1...], SEARCH BODY).
The bounds are grammar.MAX_LIST_DEPTH and message.MAX_DEPTH, both 100;
tests/parsers/test_nesting_bounds.py checks them without a socket.
"""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, USERS
from tests.imap.wire import Wire, new_user, quote
from tests.parsers.fuzz import nested

TOO_DEEP = "BAD lists nested more than 100 deep"


@pytest.fixture
def wire(server):
    wire = Wire.login(server)
    wire.expect("OK", "SELECT INBOX")
    return wire


def test_thirty_thousand_parentheses_before_login(server):
    wire = Wire.connect(server)
    wire.expect(TOO_DEEP, b"LOGIN " + b"(" * 30000)
    wire.expect("OK", "NOOP")
    wire.expect("OK", f"LOGIN {USERS[0]} {quote(PASSWORD)}")


@pytest.mark.parametrize("command, reply", [
    (b"SEARCH " + b"(" * 30000 + b"ALL" + b")" * 30000, TOO_DEEP),
    (b"UID SEARCH " + b"(" * 30000, TOO_DEEP),
    (b"FETCH 1:* " + b"(" * 30000 + b"FLAGS" + b")" * 30000, TOO_DEEP),
    (b"SEARCH " + b"NOT " * 15000 + b"ALL", "BAD SEARCH: search criteria nested too deeply"),
    (b"SEARCH " + b"OR ALL " * 9000 + b"ALL", "BAD SEARCH: search criteria nested too deeply"),
    (b"SEARCH " + b"(" * 80 + b"ALL" + b")" * 80, "BAD SEARCH: search criteria nested too deeply"),
])
def test_deep_nesting_after_login_is_bad_and_the_session_goes_on(wire, command, reply):
    wire.expect(reply, command)
    wire.expect("OK", "NOOP")
    assert wire.expect("OK", "SEARCH ALL")[0].startswith(b"* SEARCH")


def test_nesting_within_the_bounds_is_answered(wire):
    [found] = wire.expect("OK", b"SEARCH " + b"(" * 60 + b"NOT NOT ALL" + b")" * 60)
    assert found.startswith(b"* SEARCH")


@pytest.mark.parametrize("command, reply", [
    ("SELECT ~foo", "NO [NONEXISTENT] Mailbox does not exist: ~foo"),  # an atom (issue 10, item 3)
    ("SELECT ~", "NO [NONEXISTENT] Mailbox does not exist: ~"),
    ("SELECT ~{x}", "BAD bad literal"),
    ("EXAMINE ~foo", "NO [NONEXISTENT] Mailbox does not exist: ~foo"),
    ("STATUS ~foo (MESSAGES)", "NO [NONEXISTENT] Mailbox does not exist: ~foo"),
    ('SELECT "~foo"', "NO [NONEXISTENT] Mailbox does not exist: ~foo"),
    ("SELECT ~{3+}\r\nfoo", "NO [NONEXISTENT] Mailbox does not exist: foo"),
    ("SELECT &", "BAD SELECT: mailbox name is not valid modified UTF-7"),
    ("SELECT &Jjo", "BAD SELECT: mailbox name is not valid modified UTF-7"),
    ("SELECT &2D3-", "BAD SELECT: mailbox name is not valid modified UTF-7"),  # a lone surrogate
    ('SELECT ""', "BAD SELECT: bad mailbox name"),
    ('SELECT "/"', "BAD SELECT: bad mailbox name"),
    ('SELECT "a//b"', "BAD SELECT: bad mailbox name"),
    ("SELECT {3+}\r\na\0b", "BAD SELECT: mailbox name is not valid modified UTF-7"),
    ("SELECT (INBOX)", "BAD SELECT: expected a mailbox name"),
    ('SELECT "' + "x" * 20000 + '"', "NO [NONEXISTENT] Mailbox does not exist: " + "x" * 20000),
])
def test_odd_mailbox_names_get_no_or_bad_and_the_session_goes_on(wire, command, reply):
    wire.expect(reply, command)
    wire.expect("OK", "NOOP")
    wire.expect("OK", "SELECT INBOX")


def test_odd_mailbox_names_with_utf8_enabled(wire):
    wire.expect("OK", "ENABLE UTF8=ACCEPT")
    wire.expect("BAD SELECT: bad mailbox name", "SELECT {3+}\r\na\0b")
    wire.expect("NO [NONEXISTENT] Mailbox does not exist: ~foo", "SELECT ~foo")
    wire.expect("NO [NONEXISTENT] Mailbox does not exist: &Jjo", "SELECT &Jjo")  # UTF-8 now, not modified UTF-7
    wire.expect("OK", "NOOP")
    wire.expect("OK", "SELECT INBOX")


# 10,000 nested MIME parts, delivered on port 25 -----------------------------------------------------

@pytest.fixture(scope="module")
def deep_mail(server) -> str:
    """A fresh account whose INBOX holds 1: 10,000 nested multiparts, 2: 10,000 nested messages."""
    user = new_user(server)
    client = server.smtp()
    for kind, subject in ((1, "multiparts"), (0, "messages")):
        data = f"From: bob@remote.test\r\nTo: {user}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n".encode()
        client.sendmail("bob@remote.test", [user], data + nested(10000, kind))
    client.quit()
    return user


@pytest.fixture
def deep(server, deep_mail) -> Wire:
    wire = Wire.login(server, deep_mail)
    wire.expect("OK", "SELECT INBOX")
    return wire


def test_bodystructure_of_ten_thousand_nested_multiparts_is_a_hundred_levels(deep):
    [structure] = deep.expect("OK", "FETCH 1 BODYSTRUCTURE")
    assert structure.startswith(b"* 1 FETCH (BODYSTRUCTURE " + b"(" * 100 + b'"TEXT" "PLAIN" ("CHARSET" "us-ascii")')
    assert structure.endswith(b' "MIXED" ("BOUNDARY" "b0.") NIL NIL NIL))')
    [body] = deep.expect("OK", "FETCH 1 BODY")
    assert body.startswith(b"* 1 FETCH (BODY " + b"(" * 100 + b'"TEXT" "PLAIN"') and body.endswith(b' "MIXED"))')
    deep.expect("OK", "NOOP")


def test_bodystructure_of_ten_thousand_nested_messages_is_a_hundred_levels(deep):
    [structure] = deep.expect("OK", "FETCH 2 BODYSTRUCTURE")
    assert structure.count(b'("MESSAGE" "RFC822"') == 99 and structure.count(b'("TEXT" "PLAIN"') == 1
    deep.expect("OK", "NOOP")


def test_body_sections_down_to_the_last_level_and_past_it(deep):
    last = ".".join(["1"] * 99)
    [leaf] = deep.expect("OK", f"FETCH 1 BODY.PEEK[{last}]")
    head, _, data = leaf.partition(b"}\r\n")
    assert head.startswith(f"* 1 FETCH (BODY[{last}] {{".encode())
    assert data.startswith(b'--b99.\r\nContent-Type: multipart/mixed; boundary="b100."\r\n')
    assert data.endswith(b"\r\n--b99.--)") and b"needle" in data
    [mime] = deep.expect("OK", f"FETCH 1 BODY.PEEK[{last}.MIME]")
    assert mime == f'* 1 FETCH (BODY[{last}.MIME] {{50}}\r\nContent-Type: multipart/mixed; boundary="b99."\r\n\r\n)'.encode()
    for depth in (100, 10000):
        past = ".".join(["1"] * depth)
        assert deep.expect("OK", f"FETCH 1 BODY.PEEK[{past}]") == [f"* 1 FETCH (BODY[{past}] {{0}}\r\n)".encode()]
    deep.expect("OK", "NOOP")


def test_search_body_finds_text_below_the_last_level(deep):
    assert deep.expect("OK", "SEARCH BODY needle") == [b"* SEARCH 1 2"]
    assert deep.expect("OK", "SEARCH TEXT needle") == [b"* SEARCH 1 2"]
    assert deep.expect("OK", "SEARCH BODY haystack") == [b"* SEARCH"]
    assert deep.expect("OK", "UID SEARCH NOT BODY needle") == [b"* SEARCH"]
    deep.expect("OK", "NOOP")
