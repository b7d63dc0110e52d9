"""APPEND (with MULTIAPPEND), COPY and MOVE over real sockets (RFC 9051 §6.3.12, §6.4.7; RFC 3502, 4315, 6851).

Fresh mailboxes of the shared account alice. Compared with Dovecot 2.3.19:
the same APPENDUID/COPYUID and TRYCREATE codes; Dovecot answers INTERNALDATE
in the zone it was given where postar answers +0000 (the same instant, which is
what §2.3.3 asks). Dovecot 2.3 has no UTF8=ACCEPT, so the UTF8 APPEND data
extension is checked against RFC 6855 alone.
"""

from __future__ import annotations

import imaplib
import re
from datetime import UTC, datetime

import pytest

from tests.imap.wire import (
    Wire,
    append,
    capabilities,
    imapclient,
    quote,
    unique,
)


def message(subject: str) -> bytes:
    return f"From: a@remote.test\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n".encode()


def appenduid(wire: Wire) -> tuple[int, list[int]]:
    """(uidvalidity, uids) from the last tagged APPENDUID reply."""
    match = re.search(rb"\[APPENDUID (\d+) ([\d:,]+)\]", wire.tagged)
    assert match, wire.tagged
    return int(match.group(1)), expand(match.group(2).decode())


def expand(uid_set: str) -> list[int]:
    out = []
    for part in uid_set.split(","):
        low, _, high = part.partition(":")
        out += range(int(low), int(high or low) + 1)
    return out


def body(wire: Wire, number: int) -> bytes:
    [response] = [u for u in wire.expect("OK", f"FETCH {number} BODY.PEEK[]") if u.startswith(f"* {number} FETCH".encode())]
    match = re.search(rb"BODY\[\] \{(\d+)\}\r\n", response)
    return response[match.end():match.end() + int(match.group(1))]


@pytest.fixture
def wire(server):
    wire = Wire.login(server)
    yield wire
    wire.close()


# APPEND --------------------------------------------------------------------------------

def test_append_with_flags_and_date(wire):
    name = unique("append-")
    wire.expect("OK", f"CREATE {name}")
    data = message("dated")
    wire.expect("OK [APPENDUID", f'APPEND {name} (\\Seen $Label1) "05-Oct-2024 12:34:56 +0200" {{{len(data)}+}}\r\n'
                .encode() + data)
    uidvalidity, [uid] = appenduid(wire)
    status = wire.expect("OK", f"STATUS {name} (UIDVALIDITY MESSAGES)")[0]
    assert f"UIDVALIDITY {uidvalidity}".encode() in status and b"MESSAGES 1" in status
    wire.expect("OK", f"SELECT {name}")
    [fetched] = wire.expect("OK", "FETCH 1 (UID FLAGS INTERNALDATE)")
    match = re.fullmatch(rb'\* 1 FETCH \(UID (\d+) FLAGS \(([^)]*)\) INTERNALDATE "([^"]+)"\)', fetched)
    assert match and int(match.group(1)) == uid
    assert set(match.group(2).split()) == {b"\\Seen", b"$Label1"}
    when = datetime.strptime(match.group(3).decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    assert when == datetime(2024, 10, 5, 10, 34, 56, tzinfo=UTC)
    assert body(wire, 1) == data  # exactly the literal: nothing is added on APPEND


def test_append_with_a_synchronizing_literal(wire):
    name = unique("append-")
    wire.expect("OK", f"CREATE {name}")
    data = message("sync")
    wire.send(f"a1 APPEND {name} {{{len(data)}}}\r\n")
    assert wire.response().startswith(b"+")
    wire.send(data + b"\r\n")
    wire.until("a1", "OK [APPENDUID")
    assert b"MESSAGES 1" in wire.expect("OK", f"STATUS {name} (MESSAGES)")[0]


def test_append_refusals(wire):
    name = unique("append-")
    wire.expect("NO [TRYCREATE]", f"APPEND {name} {{1+}}\r\nx")
    wire.expect("OK", f"CREATE {name}")
    wire.expect("BAD", f'APPEND {name} "not a date" {{1+}}\r\nx')
    wire.expect("BAD", f"APPEND {name} (\\Bogus) {{1+}}\r\nx")
    wire.expect("BAD", f"APPEND {name}")
    wire.expect("BAD", f"APPEND {name} (\\Seen)")
    assert b"MESSAGES 0" in wire.expect("OK", f"STATUS {name} (MESSAGES)")[0]


def test_append_to_the_selected_mailbox_reports_exists(wire):
    name = unique("append-")
    wire.expect("OK", f"CREATE {name}")
    wire.expect("OK", f"SELECT {name}")
    data = message("live")
    untagged = wire.expect("OK [APPENDUID", f"APPEND {name} {{{len(data)}+}}\r\n".encode() + data)
    assert untagged == [b"* 1 EXISTS"]


def test_multiappend_is_advertised(wire):
    # RFC 3502 §3: a server that accepts several messages in one APPEND says MULTIAPPEND.
    assert "MULTIAPPEND" in capabilities(wire.expect("OK", "CAPABILITY"))


def test_multiappend_two_messages_with_flags_in_one_command(wire):
    name = unique("multi-")
    wire.expect("OK", f"CREATE {name}")
    first, second = message("first"), message("second")
    wire.send(f"m1 APPEND {name} (\\Flagged) {{{len(first)}}}\r\n")
    assert wire.response().startswith(b"+")
    wire.send(first + f" (\\Seen) {{{len(second)}}}\r\n".encode())
    assert wire.response().startswith(b"+")
    wire.send(second + b"\r\n")
    wire.until("m1", "OK [APPENDUID")
    _, uids = appenduid(wire)
    assert len(uids) == 2 and uids[0] < uids[1]
    wire.expect("OK", f"SELECT {name}")
    assert wire.expect("OK", "FETCH 1:* FLAGS") == [b"* 1 FETCH (FLAGS (\\Flagged))", b"* 2 FETCH (FLAGS (\\Seen))"]
    assert body(wire, 1) == first and body(wire, 2) == second


def test_multiappend_two_bare_messages(wire):
    # RFC 3502 §6: append-message = [SP flag-list] [SP date-time] SP literal, repeated. The second
    # literal here is a message, not a date-time (a date-time is always a quoted string of 26 chars),
    # as Dovecot reads it too.
    name = unique("multi-")
    wire.expect("OK", f"CREATE {name}")
    first, second = message("bare one"), message("bare two")
    wire.send(f"m1 APPEND {name} {{{len(first)}}}\r\n")
    assert wire.response().startswith(b"+")
    wire.send(first + f" {{{len(second)}}}\r\n".encode())
    assert wire.response().startswith(b"+")
    wire.send(second + b"\r\n")
    wire.until("m1", "OK [APPENDUID")
    assert b"MESSAGES 2" in wire.expect("OK", f"STATUS {name} (MESSAGES)")[0]


def test_multiappend_is_all_or_nothing(wire):
    # RFC 3502 §3: if any message cannot be appended, none is.
    name = unique("multi-")
    wire.expect("OK", f"CREATE {name}")
    good = message("good")
    wire.expect("BAD", f"APPEND {name} (\\Seen) {{{len(good)}+}}\r\n".encode() + good + b" (\\Bogus) {1+}\r\nx")
    assert b"MESSAGES 0" in wire.expect("OK", f"STATUS {name} (MESSAGES)")[0]


def test_append_utf8_data_extension(wire):
    # RFC 6855 §4: with UTF8=ACCEPT a client "MUST send them [UTF-8 headers] using the "UTF8" data
    # extension to the "APPEND" command": append-data =/ "UTF8" SP "(" literal8 ")".
    name = unique("utf8-")
    wire.expect("OK", f"CREATE {name}")
    wire.expect("OK", "ENABLE UTF8=ACCEPT")
    data = "From: a@remote.test\r\nSubject: Grüße\r\n\r\nhallo\r\n".encode()
    wire.send(f"u1 APPEND {name} (\\Seen) UTF8 (~{{{len(data)}}}\r\n".encode())
    assert wire.response().startswith(b"+")
    wire.send(data + b")\r\n")
    wire.until("u1", "OK [APPENDUID")
    wire.expect("OK", f"SELECT {name}")
    assert body(wire, 1) == data


def test_append_binary_literal8(wire):
    # RFC 3516 §4.4 (BINARY is advertised): APPEND takes a literal8, which may hold NUL.
    name = unique("bin-")
    wire.expect("OK", f"CREATE {name}")
    data = b"From: a@remote.test\r\nSubject: nul\r\nContent-Transfer-Encoding: binary\r\n\r\na\x00b\r\n"
    wire.send(f"b1 APPEND {name} ~{{{len(data)}}}\r\n".encode())
    assert wire.response().startswith(b"+")
    wire.send(data + b"\r\n")
    wire.until("b1", "OK [APPENDUID")
    wire.expect("OK", f"SELECT {name}")
    [size] = wire.expect("OK", "FETCH 1 RFC822.SIZE")
    assert size == b"* 1 FETCH (RFC822.SIZE %d)" % len(data)


def test_imaplib_append(server):
    client = server.imap()
    name = unique("imaplib-")
    assert client.create(name)[0] == "OK"
    typ, data = client.append(name, "(\\Draft)", imaplib.Time2Internaldate(1700000000), message("imaplib"))
    assert typ == "OK" and b"APPENDUID" in data[0]
    client.select(name)
    typ, data = client.fetch("1", "(FLAGS INTERNALDATE)")
    assert b"\\Draft" in data[0]
    assert imaplib.Internaldate2tuple(data[0]) is not None
    client.logout()


# COPY and MOVE -------------------------------------------------------------------------

def test_copy_gives_copyuid_and_the_copy_appears(wire):
    source, target = unique("src-"), unique("dst-")
    wire.expect("OK", f"CREATE {source}")
    wire.expect("OK", f"CREATE {target}")
    data = [message(f"copy {n}") for n in range(3)]
    source_uids = [append(wire, source, d, flags="\\Flagged" if n == 1 else "") for n, d in enumerate(data)]
    target_validity = int(re.search(rb"UIDVALIDITY (\d+)",
                                    wire.expect("OK", f"STATUS {target} (UIDVALIDITY)")[0]).group(1))
    wire.expect("OK", f"SELECT {source}")
    assert wire.expect("OK [COPYUID", f"COPY 2:3 {target}") == []
    match = re.search(rb"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]", wire.tagged)
    assert int(match.group(1)) == target_validity
    assert expand(match.group(2).decode()) == source_uids[1:]
    copied = expand(match.group(3).decode())
    assert len(copied) == 2
    assert b"* 3 EXISTS" in wire.expect("OK", f"SELECT {source}")  # the source keeps its messages
    wire.expect("OK", f"SELECT {target}")
    fetched = wire.expect("OK", "UID FETCH 1:* FLAGS")
    assert fetched == [f"* 1 FETCH (UID {copied[0]} FLAGS (\\Flagged))".encode(),
                       f"* 2 FETCH (UID {copied[1]} FLAGS ())".encode()]
    assert body(wire, 1) == data[1] and body(wire, 2) == data[2]


def test_move_expunges_from_the_source(wire):
    source, target = unique("src-"), unique("dst-")
    wire.expect("OK", f"CREATE {source}")
    wire.expect("OK", f"CREATE {target}")
    data = [message(f"move {n}") for n in range(3)]
    uids = [append(wire, source, d) for d in data]
    wire.expect("OK", f"SELECT {source}")
    untagged = wire.expect("OK", f"UID MOVE {uids[1]} {target}")
    # RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGE
    assert re.fullmatch(rb"\* OK \[COPYUID \d+ %d \d+\].*" % uids[1], untagged[0])
    assert untagged[1:] == [b"* 2 EXPUNGE"]
    assert wire.expect("OK", "FETCH 1:* UID") == [f"* 1 FETCH (UID {uids[0]})".encode(),
                                                  f"* 2 FETCH (UID {uids[2]})".encode()]
    wire.expect("OK", f"EXAMINE {target}")
    assert body(wire, 1) == data[1]


def test_copy_and_move_refusals(wire):
    source = unique("src-")
    wire.expect("OK", f"CREATE {source}")
    append(wire, source, message("x"))
    wire.expect("OK", f"SELECT {source}")
    missing = unique("missing-")
    wire.expect("NO [TRYCREATE]", f"COPY 1 {missing}")
    wire.expect("NO [TRYCREATE]", f"MOVE 1 {missing}")
    wire.expect("BAD", "COPY 2 INBOX")  # no message 2
    wire.expect("BAD", "COPY 1")
    assert wire.expect("OK", f"UID COPY 999 {quote('INBOX')}") == []  # no such UID: nothing to copy
    assert b"* 1 EXISTS" in wire.expect("OK", f"SELECT {source}")


def test_imapclient_copy_and_move(server):
    client = imapclient(server)
    source, target = unique("ic-src-"), unique("ic-dst-")
    client.create_folder(source)
    client.create_folder(target)
    for n in range(2):
        client.append(source, message(f"ic {n}"))
    client.select_folder(source)
    uids = client.search(["ALL"])
    client.copy(uids[:1], target)
    client.move(uids[1:], target)
    assert client.search(["ALL"]) == uids[:1]
    assert client.folder_status(target, ["MESSAGES"])[b"MESSAGES"] == 2
    client.logout()
