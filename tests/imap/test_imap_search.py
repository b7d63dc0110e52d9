"""SEARCH over real sockets (RFC 9051 §6.4.4; ESEARCH RFC 4731; SEARCHRES RFC 5182).

One mailbox of the shared account alice, filled once by APPEND with three
messages of known flags, dates, sizes and text; every test EXAMINEs it, so
none changes it. The keys themselves are unit-tested in test_search_keys.py;
here they go over the wire. Compared with Dovecot 2.3.19 on the same three
messages: the same results for every search below; Dovecot orders ESEARCH as
MIN MAX ALL COUNT (order is free), accepts CHARSET KOI8-R where postar says
NO [BADCHARSET (US-ASCII UTF-8)] (both allowed), and treats a message without
a Date: header as sent in 1970 for SENTBEFORE (RFC 9051 says nothing; postar
never matches it).
"""

from __future__ import annotations

import pytest

from tests.imap.wire import (
    Wire,
    capabilities,
    imapclient,
    unique,
)

MESSAGES = [
    # (flags, internal date, message)
    ("\\Seen", "01-Jan-2020 10:00:00 +0000",
     (b"From: Ann Example <ann@x.test>\r\nTo: team@example.test\r\nSubject: alpha report\r\n"
      b"Date: Wed, 1 Jan 2020 10:00:00 +0000\r\n\r\napple pie\r\n")),
    ("\\Flagged", "01-Jun-2023 10:00:00 +0000",
     (b"From: bob@y.test\r\nTo: alice@example.test\r\nCc: carol@z.test\r\nSubject: beta\r\n"
      b"X-Marker: mk1\r\nDate: Thu, 1 Jun 2023 10:00:00 +0000\r\n\r\nbanana split\r\n")),
    ("", "01-Jun-2024 10:00:00 +0000",
     "From: carol@z.test\r\nTo: alice@example.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
     "Date: Sat, 1 Jun 2024 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n"
     "Content-Transfer-Encoding: 8bit\r\n\r\ncherry Käse\r\n".encode() + b"x" * 5000 + b"\r\n"),
]


@pytest.fixture(scope="module")
def mailbox(server) -> str:
    wire = Wire.login(server)
    name = unique("search-")
    wire.expect("OK", f"CREATE {name}")
    for flags, date, data in MESSAGES:
        wire.expect("OK [APPENDUID", f'APPEND {name} ({flags}) "{date}" {{{len(data)}+}}\r\n'.encode() + data)
    wire.close()
    return name


@pytest.fixture
def wire(server, mailbox):
    wire = Wire.login(server)
    assert b"* 3 EXISTS" in wire.expect("OK [READ-ONLY]", f"EXAMINE {mailbox}")
    yield wire
    wire.close()


def search(wire: Wire, criteria: str | bytes, command: str = "SEARCH") -> list[int]:
    data = criteria if isinstance(criteria, bytes) else criteria.encode()
    [line] = [u for u in wire.expect("OK", command.encode() + b" " + data) if u.startswith(b"* SEARCH")]
    return [int(n) for n in line.split()[2:]]


@pytest.mark.parametrize("criteria, expected", [
    ("ALL", [1, 2, 3]),
    ("UNSEEN", [2, 3]),
    ("SEEN", [1]),
    ("FLAGGED", [2]),
    ("UNFLAGGED UNDELETED", [1, 3]),
    ("SUBJECT beta", [2]),
    ("SUBJECT BETA", [2]),
    ('SUBJECT "alpha report"', [1]),
    ("FROM ann", [1]),
    ('FROM "Ann Example"', [1]),
    ("FROM x.test", [1]),
    ("TO alice", [2, 3]),
    ("CC carol", [2]),
    ("BODY banana", [2]),
    ("BODY alpha", []),  # the subject is not in the body
    ("TEXT alpha", [1]),  # but it is in the text
    ("TEXT cherry", [3]),
    ("HEADER X-Marker mk1", [2]),
    ('HEADER X-Marker ""', [2]),  # every message that has the field
    ("HEADER Content-Type utf-8", [3]),
    ("LARGER 4000", [3]),
    ("SMALLER 4000", [1, 2]),
    ("SINCE 1-Jan-2023", [2, 3]),
    ("BEFORE 1-Jan-2021", [1]),
    ("ON 1-Jun-2023", [2]),
    ("SENTSINCE 1-Jan-2024", [3]),
    ("SENTON 1-Jan-2020", [1]),
    ("NOT SEEN", [2, 3]),
    ("OR SEEN FLAGGED", [1, 2]),
    ("OR SEEN FLAGGED NOT SEEN", [2]),
    ("(OR 1 2) UNSEEN", [2]),
    ("NOT (OR SUBJECT beta FROM ann)", [3]),
    ("NOT (SUBJECT beta OR FROM ann FROM carol)", [1, 2, 3]),  # inside: beta AND (ann OR carol)
    ("1,3", [1, 3]),
    ("2:*", [2, 3]),
    ("*", [3]),
    ("4", []),
    ("KEYWORD $NoSuch", []),
])
def test_search_keys(wire, criteria, expected):
    assert search(wire, criteria) == expected


def test_uid_ranges(wire):
    uids = search(wire, "ALL", command="UID SEARCH")
    assert len(uids) == 3 and uids == sorted(uids)
    assert search(wire, f"UID {uids[1]}:*") == [2, 3]
    assert search(wire, f"UID {uids[0]},{uids[2]}") == [1, 3]
    assert search(wire, f"UID {uids[2] + 1}:*") == [3]  # n:* always names the highest
    assert search(wire, f"UID {uids[1]}", command="UID SEARCH") == [uids[1]]
    assert search(wire, "2:3", command="UID SEARCH") == uids[1:]  # sequence numbers in, UIDs out
    assert search(wire, f"UID {uids[2] + 10}:{uids[2] + 20}") == []


def test_charset_utf8_with_literals(wire):
    word = "Grüße".encode()
    assert search(wire, b"CHARSET UTF-8 SUBJECT {%d+}\r\n%s" % (len(word), word)) == [3]
    cheese = "KÄSE".encode()
    assert search(wire, b"CHARSET UTF-8 BODY {%d+}\r\n%s" % (len(cheese), cheese)) == [3]  # any case
    wire.send(b"s1 SEARCH CHARSET UTF-8 TEXT {%d}\r\n" % len(word))  # synchronizing
    assert wire.response().startswith(b"+")
    wire.send(word + b"\r\n")
    assert wire.until("s1", "OK") == [b"* SEARCH 3"]
    assert search(wire, "CHARSET US-ASCII SUBJECT alpha") == [1]
    wire.expect("NO [BADCHARSET", "SEARCH CHARSET X-NO-SUCH-CHARSET ALL")


def esearch(untagged: list[bytes], tag: str) -> tuple[bool, dict[str, str]]:
    """(uid, {MIN: .., MAX: .., COUNT: .., ALL: ..}) of the one ESEARCH response for ``tag``; order is free."""
    [line] = untagged
    prefix = f'* ESEARCH (TAG "{tag}")'.encode()
    assert line.startswith(prefix), line
    words = line[len(prefix):].decode().split()
    uid = bool(words) and words[0] == "UID"
    words = words[1:] if uid else words
    return uid, dict(zip(words[::2], words[1::2]))


def test_esearch_return_options(wire):
    assert esearch(wire.expect("OK", "SEARCH RETURN (MIN MAX COUNT ALL) ALL", tag="e1"), "e1") == (
        False, {"MIN": "1", "MAX": "3", "COUNT": "3", "ALL": "1:3"})
    assert esearch(wire.expect("OK", "SEARCH RETURN (COUNT) UNSEEN", tag="e2"), "e2") == (False, {"COUNT": "2"})
    assert esearch(wire.expect("OK", "SEARCH RETURN () FLAGGED", tag="e3"), "e3") == (False, {"ALL": "2"})
    # RFC 4731 §3.1: no MIN, MAX or ALL when nothing matched
    assert esearch(wire.expect("OK", "SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nosuch", tag="e4"), "e4") == (
        False, {"COUNT": "0"})
    uids = search(wire, "ALL", command="UID SEARCH")
    assert esearch(wire.expect("OK", "UID SEARCH RETURN (MIN MAX) ALL", tag="e5"), "e5") == (
        True, {"MIN": str(uids[0]), "MAX": str(uids[2])})
    wire.expect("BAD", "SEARCH RETURN (BOGUS) ALL")


def test_return_save_then_fetch_dollar(wire):
    assert wire.expect("OK", "SEARCH RETURN (SAVE) FLAGGED") == []  # SAVE alone: no ESEARCH (RFC 5182 §2.1)
    uids = search(wire, "ALL", command="UID SEARCH")
    assert wire.expect("OK", "FETCH $ (UID)") == [f"* 2 FETCH (UID {uids[1]})".encode()]
    assert search(wire, "$") == [2]
    assert search(wire, "$ SEEN") == []
    assert esearch(wire.expect("OK", "UID SEARCH RETURN (SAVE MIN) SUBJECT alpha", tag="v1"), "v1") == (
        True, {"MIN": str(uids[0])})
    assert wire.expect("OK", "UID FETCH $ UID") == [f"* 1 FETCH (UID {uids[0]})".encode()]
    assert esearch(wire.expect("OK", "SEARCH RETURN (SAVE ALL) UNSEEN", tag="v2"), "v2") == (False, {"ALL": "2:3"})
    assert search(wire, "$") == [2, 3]
    wire.expect("BAD", "SEARCH RETURN (SAVE) BOGUS")
    assert search(wire, "$") == [2, 3]  # a BAD search leaves the saved result alone


def test_return_save_that_fails_with_no_empties_the_result(wire):
    # RFC 5182 §2.1: "A SEARCH command with the SAVE result option that caused the server to return
    # the NO tagged response sets the value of the search result variable to the empty sequence."
    wire.expect("OK", "SEARCH RETURN (SAVE) ALL")
    wire.expect("NO [BADCHARSET", "SEARCH RETURN (SAVE) CHARSET X-NO-SUCH-CHARSET ALL")
    assert search(wire, "$") == []


def test_saved_result_is_dropped_on_select(wire, mailbox):
    wire.expect("OK", "SEARCH RETURN (SAVE) ALL")
    wire.expect("OK", f"EXAMINE {mailbox}")
    assert search(wire, "$") == []  # RFC 5182 §2.1: SELECT resets it
    assert wire.expect("OK", "FETCH $ UID") == []


def test_searchres_is_advertised(wire):
    # RFC 5182 §3: a server that takes RETURN (SAVE) and "$" announces SEARCHRES.
    assert "SEARCHRES" in capabilities(wire.expect("OK", "CAPABILITY"))


@pytest.mark.parametrize("criteria", ["FOO", "SINCE 2023-01-01", "LARGER abc", "OR SEEN", "(SEEN", "SEEN)",
                                      "0", "1:0", "UID", "HEADER X-Marker"])
def test_bad_search_is_bad_and_the_session_goes_on(wire, criteria):
    wire.expect("BAD", f"SEARCH {criteria}")
    assert search(wire, "ALL") == [1, 2, 3]


def test_imapclient_search(server, mailbox):
    client = imapclient(server)
    client.select_folder(mailbox, readonly=True)
    uids = client.search(["ALL"])
    assert client.search(["FLAGGED"]) == [uids[1]]
    assert client.search(["SUBJECT", "Grüße"], charset="UTF-8") == [uids[2]]
    assert client.search(["OR", "SEEN", "FLAGGED"]) == uids[:2]
    client.logout()
