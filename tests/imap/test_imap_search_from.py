"""SEARCH FROM over every form of the From field (issue 10, item 9).

RFC 9051 §6.4.4: FROM matches "the envelope structure's FROM field". Dovecot
parses the field's addresses, writes them back plainly (name <mailbox@host>,
no comments, quotes or route) and looks for the string in that, decoded, in
every From field of the message. postar did a substring match on the raw
field's decoded text, of the first From field only (the summary kept the
first of a repeated field): FROM user-from@domain.org missed messages 7, 10,
15, 18, 22 and 23 below, and "comment" found 6.

The 32 messages (APPENDed to both, "To: t@example.org", "Subject: m<n>"),
their From lines, and what Dovecot 2.3.19 answers::

     1 From: user-from@domain.org
     2 From: User From <user-from@domain.org>
     3 From: "Quoted, Name" <user-from@domain.org>
     4 From: =?utf-8?q?J=C3=B6rg?= <user-from@domain.org>
     5 From: user-from@domain.org (comment)
     6 From: (comment) user-from@domain.org
     7 From: user-from(comment)@domain.org
     8 From: other@example.com, user-from@domain.org
     9 From: group: other@example.com, user-from@domain.org;
    10 From: other@example.com  /  From: user-from@domain.org    (two fields)
    11 From: =?utf-8?q?user-from=40domain=2Eorg?=
    12 From: "user-from@domain.org" <x@example.com>
    13 From: <user-from@domain.org>
    14 From: USER-FROM@DOMAIN.ORG
    15 From: user-from @ domain.org
    16 From: User  /  <user-from@domain.org>                     (folded)
    17 Sender: user-from@domain.org                              (no From)
    18 From: "user-from"@domain.org
    19 From:user-from@domain.org
    20 From: user-from@domain.org.uk
    21 From: =?utf-8?b?dXNlci1mcm9tQGRvbWFpbi5vcmc=?=
    22 From: user-from@(c)domain.org
    23 From: undisclosed:;  /  From: user-from@domain.org       (two fields)
    24 FROM: user-from@domain.org
    25 From : user-from@domain.org
    26 From: =?utf-8?q?a?= =?utf-8?q?b?= <user-from@domain.org>
    27 From: user-from@domain.org  /  From: other@example.com    (two fields)
    28 From: a@b.c,  /  <TAB>user-from@domain.org                (folded)
    29 From: "a\\"b" <user-from@domain.org>
    30 From: user-from@domain.org, <>
    31 From: user-from@domain.org;
    32 From: g1:;, user-from@domain.org

    SEARCH FROM user-from@domain.org   * SEARCH 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 18 19 20 21 22 23
                                                24 25 26 27 28 29 30 31 32
    SEARCH FROM user-from              (the same; so FROM domain.org)
    SEARCH FROM "User From"            * SEARCH 2
    SEARCH CHARSET UTF-8 FROM Jörg     * SEARCH 4
    SEARCH FROM comment                * SEARCH 5 7
    SEARCH FROM group                  * SEARCH 9
    SEARCH FROM "Quoted, Name"         * SEARCH 3
    SEARCH FROM other@example.com      * SEARCH 8 9 10 27
    SEARCH NOT FROM user-from@domain.org   * SEARCH 17
    SEARCH HEADER FROM user-from@domain.org   (the field's decoded text, every From field)
                                       * SEARCH 1 2 3 4 5 6 8 9 10 11 12 13 14 16 19 20 21 23 24 25 26
                                                27 28 29 30 31 32
    SEARCH HEADER FROM comment         * SEARCH 5 6 7

postar answers the same, and its ENVELOPE of the 32 is Dovecot's (10 and 23
with both fields' addresses, 6 without a name), save that Dovecot sends the
name a"b of 29 as a literal where postar quotes it.
"""

from __future__ import annotations

import pytest

from tests.imap.wire import Wire, append, new_user, examined

FROMS = [
    b"From: user-from@domain.org",
    b"From: User From <user-from@domain.org>",
    b'From: "Quoted, Name" <user-from@domain.org>',
    b"From: =?utf-8?q?J=C3=B6rg?= <user-from@domain.org>",
    b"From: user-from@domain.org (comment)",
    b"From: (comment) user-from@domain.org",
    b"From: user-from(comment)@domain.org",
    b"From: other@example.com, user-from@domain.org",
    b"From: group: other@example.com, user-from@domain.org;",
    b"From: other@example.com\r\nFrom: user-from@domain.org",
    b"From: =?utf-8?q?user-from=40domain=2Eorg?=",
    b'From: "user-from@domain.org" <x@example.com>',
    b"From: <user-from@domain.org>",
    b"From: USER-FROM@DOMAIN.ORG",
    b"From: user-from @ domain.org",
    b"From: User\r\n <user-from@domain.org>",
    b"Sender: user-from@domain.org",
    b'From: "user-from"@domain.org',
    b"From:user-from@domain.org",
    b"From: user-from@domain.org.uk",
    b"From: =?utf-8?b?dXNlci1mcm9tQGRvbWFpbi5vcmc=?=",
    b"From: user-from@(c)domain.org",
    b"From: undisclosed:;\r\nFrom: user-from@domain.org",
    b"FROM: user-from@domain.org",
    b"From : user-from@domain.org",
    b"From: =?utf-8?q?a?= =?utf-8?q?b?= <user-from@domain.org>",
    b"From: user-from@domain.org\r\nFrom: other@example.com",
    b"From: a@b.c,\r\n\tuser-from@domain.org",
    b'From: "a\\"b" <user-from@domain.org>',
    b"From: user-from@domain.org, <>",
    b"From: user-from@domain.org;",
    b"From: g1:;, user-from@domain.org",
]
ALL_BUT_17 = [n for n in range(1, 33) if n != 17]


@pytest.fixture(scope="module")
def user(server) -> str:
    user = new_user(server)
    wire = Wire.login(server, user)
    for number, field in enumerate(FROMS, 1):
        append(wire, "INBOX", field + b"\r\nTo: t@example.org\r\nSubject: m%d\r\n\r\nbody\r\n" % number)
    wire.close()
    return user


@pytest.fixture
def wire(server, user):
    return examined(server, user)


def found(untagged: list[bytes]) -> list[int]:
    [line] = untagged
    assert line.startswith(b"* SEARCH")
    return [int(n) for n in line.split()[2:]]


@pytest.mark.parametrize("command, expected", [
    ("SEARCH FROM user-from@domain.org", ALL_BUT_17),
    ("SEARCH FROM user-from", ALL_BUT_17),
    ("SEARCH FROM domain.org", ALL_BUT_17),
    ("SEARCH FROM USER-FROM@domain.ORG", ALL_BUT_17),
    ('SEARCH FROM "User From"', [2]),
    (b"SEARCH CHARSET UTF-8 FROM {5+}\r\nJ\xc3\xb6rg", [4]),
    ("SEARCH FROM comment", [5, 7]),
    ("SEARCH FROM group", [9]),
    ('SEARCH FROM "Quoted, Name"', [3]),
    ("SEARCH FROM other@example.com", [8, 9, 10, 27]),
    ("SEARCH NOT FROM user-from@domain.org", [17]),
    ("SEARCH HEADER FROM user-from@domain.org", [n for n in ALL_BUT_17 if n not in (7, 15, 18, 22)]),
    ("SEARCH HEADER FROM comment", [5, 6, 7]),
])
def test_search_from_as_dovecot(wire, command, expected):
    assert found(wire.expect("OK", command)) == expected


def test_envelope_has_the_addresses_of_every_from_field(wire):
    [tenth] = wire.expect("OK", "FETCH 10 (ENVELOPE)")
    assert b'((NIL NIL "other" "example.com")(NIL NIL "user-from" "domain.org"))' in tenth
    [sixth] = wire.expect("OK", "FETCH 6 (ENVELOPE)")  # a comment before the address names nothing
    assert b'"m6" ((NIL NIL "user-from" "domain.org"))' in sixth


def test_a_second_from_field_delivered_over_smtp_is_searched(server):
    user = new_user(server)
    client = server.smtp()
    client.sendmail("bob@remote.test", [user], b"From: list@remote.test\r\nFrom: user-from@domain.org\r\n"
                                               b"To: " + user.encode() + b"\r\nSubject: twice\r\n\r\nbody\r\n")
    client.quit()
    wire = Wire.login(server, user)
    wire.expect("OK", "EXAMINE INBOX")
    assert found(wire.expect("OK", "SEARCH FROM user-from@domain.org")) == [1]
    assert found(wire.expect("OK", 'SEARCH HEADER FROM "user-from@domain.org"')) == [1]
