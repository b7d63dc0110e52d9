"""SELECT and FETCH over real sockets, on mail delivered over SMTP (RFC 9051 §6.3.2, §6.4.5, RFC 3516).

Each test delivers to a fresh account, so sequence numbers, UIDs and flags are
exact. BODY[] must be byte for byte what the store holds: the Return-Path and
Received lines the server added, then the bytes the client sent. Compared
with Dovecot 2.3.19 on the same stored bytes: the same ENVELOPE, sections,
partials and BINARY; Dovecot writes MIME names in lower case (postar upper-
cases them, as RFC 9051's examples do) and sends BINARY always as literal8
(postar only when there is a NUL, which RFC 3516 allows).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime

import pytest

from tests.conftest import USERS
from tests.imap.wire import (
    Wire,
    deliver,
    imapclient,
    new_user,
    unique,
)

ATTACHMENT = bytes(range(256)) * 4  # has NUL: BINARY must come as literal8 (~{n})


def mime_message(subject: str, to: str) -> bytes:
    encoded = base64.encodebytes(ATTACHMENT).replace(b"\n", b"\r\n")
    return (f"From: Bob Example <bob@remote.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            "Date: Tue, 1 Oct 2024 10:00:00 +0200\r\n"
            f"Message-ID: <{subject}@remote.test>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="BB"\r\n\r\n'
            "preamble\r\n--BB\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe aus Z=C3=BCrich\r\n"
            '--BB\r\nContent-Type: application/octet-stream; name="a.bin"\r\n'
            'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="a.bin"\r\n\r\n'
            ).encode() + encoded + b"--BB--\r\n"


@dataclass
class Delivered:
    wire: Wire
    user: str
    plain: bytes  # message 1, as sent
    mime: bytes   # message 2, as sent
    stored: list  # both as the store holds them (StoredMessage), by UID


@pytest.fixture
def mailbox(server):
    """A fresh account with two messages delivered over SMTP: a plain one, then a MIME one."""
    user = new_user(server)
    plain = deliver(server, user, unique("plain-"), body="Hello Alice,\r\nsee you.\r\n")
    mime = mime_message(unique("mime-"), user)
    client = server.smtp()
    client.sendmail("bob@remote.test", [user], mime)
    client.quit()
    stored = sorted(server.messages(user), key=lambda m: m.uid)
    assert [m.content.endswith(raw) for m, raw in zip(stored, (plain, mime))] == [True, True]
    wire = Wire.login(server, user)
    yield Delivered(wire, user, plain, mime, stored)
    wire.close()


def fetch_literal(response: bytes, item: bytes) -> bytes:
    """The literal that follows ``item`` in one FETCH response."""
    match = re.search(re.escape(item) + rb" ~?\{(\d+)\}\r\n", response)
    assert match, (item, response)
    return response[match.end():match.end() + int(match.group(1))]


def test_select_after_delivery(server, mailbox):
    wire, stored = mailbox.wire, mailbox.stored
    status = wire.expect("OK", "STATUS INBOX (UIDVALIDITY)")[0]
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", status).group(1))
    untagged = wire.expect("OK [READ-WRITE]", "SELECT INBOX")
    assert b"* 2 EXISTS" in untagged
    assert f"* OK [UIDVALIDITY {uidvalidity}] UIDs valid".encode() in untagged
    assert b"* OK [UIDNEXT 3] Predicted next UID" in untagged
    assert b"* OK [UNSEEN 1] First unseen" in untagged
    assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in untagged
    assert any(u.startswith(b"* OK [PERMANENTFLAGS (") and b"\\*" in u for u in untagged)
    assert [m.uid for m in stored] == [1, 2]


def test_fetch_metadata(server, mailbox):
    wire, stored = mailbox.wire, mailbox.stored
    wire.expect("OK", "SELECT INBOX")
    [response] = wire.expect("OK", "FETCH 1 (FLAGS UID INTERNALDATE RFC822.SIZE)")
    match = re.fullmatch(rb'\* 1 FETCH \(FLAGS \(\) UID 1 INTERNALDATE "([^"]+)" RFC822.SIZE (\d+)\)', response)
    assert match, response
    assert int(match.group(2)) == len(stored[0].content)
    when = datetime.strptime(match.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    assert when.timestamp() == int(stored[0].internal_date)
    uids = wire.expect("OK", "FETCH 1:* UID")
    assert uids == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 2)"]
    assert wire.expect("OK", "UID FETCH 2 FLAGS") == [b"* 2 FETCH (UID 2 FLAGS ())"]
    assert wire.expect("OK", "UID FETCH 3:* FLAGS") == [b"* 2 FETCH (UID 2 FLAGS ())"]  # n:* names the last
    assert wire.expect("OK", "UID FETCH 99 FLAGS") == []


def test_fetch_envelope_and_bodystructure(server, mailbox):
    wire, mime = mailbox.wire, mailbox.mime
    wire.expect("OK", "SELECT INBOX")
    subject = re.search(rb"Subject: (\S+)", mime).group(1).decode()
    [envelope] = wire.expect("OK", "FETCH 2 ENVELOPE")
    local, domain = mailbox.user.split("@")
    assert envelope == (f'* 2 FETCH (ENVELOPE ("Tue, 1 Oct 2024 10:00:00 +0200" "{subject}" '
                        '(("Bob Example" NIL "bob" "remote.test")) (("Bob Example" NIL "bob" "remote.test")) '
                        f'(("Bob Example" NIL "bob" "remote.test")) ((NIL NIL "{local}" "{domain}")) '
                        f'NIL NIL NIL "<{subject}@remote.test>"))').encode()
    [structure] = wire.expect("OK", "FETCH 2 BODYSTRUCTURE")
    encoded_size = len(base64.encodebytes(ATTACHMENT).replace(b"\n", b"\r\n")) - 2  # the last CRLF is the delimiter's
    assert structure == (b'* 2 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" '
                         b'31 0 NIL NIL NIL NIL)("APPLICATION" "OCTET-STREAM" ("NAME" "a.bin") NIL NIL "BASE64" '
                         b'%d NIL ("ATTACHMENT" ("FILENAME" "a.bin")) NIL NIL) "MIXED" ("BOUNDARY" "BB") '
                         b'NIL NIL NIL))' % encoded_size)
    [body] = wire.expect("OK", "FETCH 1 BODY")
    assert re.fullmatch(rb'\* 1 FETCH \(BODY \("TEXT" "PLAIN" \("CHARSET" "us-ascii"\) NIL NIL "7BIT" 24 2\)\)', body)


def test_body_equals_what_the_store_holds(server, mailbox):
    wire, plain, mime, stored = mailbox.wire, mailbox.plain, mailbox.mime, mailbox.stored
    wire.expect("OK", "EXAMINE INBOX")
    for number, message in ((1, stored[0]), (2, stored[1])):
        [response] = wire.expect("OK", f"FETCH {number} BODY.PEEK[]")
        assert fetch_literal(response, b"BODY[]") == message.content
        assert message.content.startswith(b"Return-Path: <bob@remote.test>\r\nReceived: from client.test")
    assert stored[0].content.endswith(plain) and stored[1].content.endswith(mime)


def test_header_text_and_partial_sections(server, mailbox):
    wire, plain, stored = mailbox.wire, mailbox.plain, mailbox.stored
    wire.expect("OK", "SELECT INBOX")
    content = stored[0].content
    header, text = content.split(b"\r\n\r\n", 1)
    [response] = wire.expect("OK", "FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[]<0.10> BODY.PEEK[]<10.5>)")
    assert fetch_literal(response, b"BODY[HEADER]") == header + b"\r\n\r\n"
    assert fetch_literal(response, b"BODY[TEXT]") == text == b"Hello Alice,\r\nsee you.\r\n"
    assert fetch_literal(response, b"BODY[]<0>") == content[:10]
    assert fetch_literal(response, b"BODY[]<10>") == content[10:15]
    [beyond] = wire.expect("OK", f"FETCH 1 BODY.PEEK[]<{len(content) + 5}.10>")
    assert fetch_literal(beyond, f"BODY[]<{len(content) + 5}>".encode()) == b""
    [fields] = wire.expect("OK", "FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT TO)]")
    to, subject = (re.search(rb"(?m)^" + name + rb": .*\r\n", plain).group() for name in (b"To", b"Subject"))
    assert fetch_literal(fields, b"BODY[HEADER.FIELDS (SUBJECT TO)]") == to + subject + b"\r\n"
    [no_fields] = wire.expect("OK", "FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (RECEIVED RETURN-PATH)]")
    assert fetch_literal(no_fields, b"BODY[HEADER.FIELDS.NOT (RECEIVED RETURN-PATH)]").startswith(b"From: ")
    assert wire.expect("OK", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS ())"]  # .PEEK did not set \Seen


def test_mime_parts_and_binary(server, mailbox):
    wire = mailbox.wire
    wire.expect("OK", "SELECT INBOX")
    [response] = wire.expect("OK", "FETCH 2 (BODY.PEEK[1] BODY.PEEK[1.MIME] BINARY.PEEK[1] BINARY.PEEK[2])")
    assert fetch_literal(response, b"BODY[1]") == b"Gr=C3=BC=C3=9Fe aus Z=C3=BCrich"
    assert fetch_literal(response, b"BODY[1.MIME]") == \
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    assert fetch_literal(response, b"BINARY[1]") == "Grüße aus Zürich".encode()
    assert b"BINARY[2] ~{1024}\r\n" in response  # NUL inside: literal8 (RFC 3516 §4.3)
    assert fetch_literal(response, b"BINARY[2]") == ATTACHMENT
    [partial] = wire.expect("OK", "FETCH 2 BINARY.PEEK[2]<1.3>")
    assert re.fullmatch(rb"\* 2 FETCH \(BINARY\[2\]<1> ~?\{3\}\r\n\x01\x02\x03\)", partial), partial
    assert wire.expect("OK", "FETCH 2 BODY.PEEK[3]")[0] in (b'* 2 FETCH (BODY[3] "")',  # no such part: empty
                                                            b"* 2 FETCH (BODY[3] {0}\r\n)")
    assert wire.expect("OK", "FETCH 2 FLAGS") == [b"* 2 FETCH (FLAGS ())"]
    [sizes] = wire.expect("OK", "FETCH 2 (BINARY.SIZE[1] BINARY.SIZE[2])")  # its \Seen: the next test
    assert sizes.startswith(b"* 2 FETCH (BINARY.SIZE[1] 19 BINARY.SIZE[2] 1024")


def test_binary_size_does_not_set_seen(server, mailbox):
    # RFC 9051 §6.4.5 and RFC 3516 §4.2: only BINARY[...] (not .PEEK) sets \Seen; BINARY.SIZE is like
    # RFC822.SIZE. Dovecot leaves the flags alone.
    wire = mailbox.wire
    wire.expect("OK", "SELECT INBOX")
    assert wire.expect("OK", "FETCH 2 BINARY.SIZE[1]") == [b"* 2 FETCH (BINARY.SIZE[1] 19)"]
    assert wire.expect("OK", "FETCH 2 FLAGS") == [b"* 2 FETCH (FLAGS ())"]


def test_fetch_without_peek_sets_seen(server, mailbox):
    wire = mailbox.wire
    wire.expect("OK", "SELECT INBOX")
    [first] = wire.expect("OK", "FETCH 1 BODY[TEXT]")
    assert first.endswith(b" FLAGS (\\Seen))")  # the change comes with the FETCH (§6.4.5)
    assert wire.expect("OK", "FETCH 1:2 FLAGS") == [b"* 1 FETCH (FLAGS (\\Seen))", b"* 2 FETCH (FLAGS ())"]
    [again] = wire.expect("OK", "FETCH 1 BODY[TEXT]")
    assert b"FLAGS" not in again  # already seen: no change to report
    [binary] = wire.expect("OK", "FETCH 2 BINARY[1]")
    assert b"FLAGS (\\Seen)" in binary
    assert wire.expect("OK", "FETCH 1:2 (FLAGS)") == [b"* 1 FETCH (FLAGS (\\Seen))", b"* 2 FETCH (FLAGS (\\Seen))"]
    wire.expect("OK", "SELECT INBOX")
    assert not any(u.startswith(b"* OK [UNSEEN") for u in wire.expect("OK", "SELECT INBOX"))


def test_rfc822_items(server, mailbox):
    wire, stored = mailbox.wire, mailbox.stored
    wire.expect("OK", "SELECT INBOX")
    header, text = stored[0].content.split(b"\r\n\r\n", 1)
    [response] = wire.expect("OK", "FETCH 1 RFC822.HEADER")
    assert fetch_literal(response, b"RFC822.HEADER") == header + b"\r\n\r\n"
    assert wire.expect("OK", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS ())"]  # as BODY.PEEK[HEADER]
    [response] = wire.expect("OK", "FETCH 2 RFC822.TEXT")  # as BODY[TEXT]: sets \Seen
    assert fetch_literal(response, b"RFC822.TEXT") == stored[1].content.split(b"\r\n\r\n", 1)[1]
    assert b"FLAGS (\\Seen)" in response
    assert text == b"Hello Alice,\r\nsee you.\r\n"
    [response] = wire.expect("OK", "FETCH 1 RFC822")
    assert fetch_literal(response, b"RFC822") == stored[0].content and b"FLAGS (\\Seen)" in response


def test_fetch_macros(server, mailbox):
    wire = mailbox.wire
    wire.expect("OK", "SELECT INBOX")
    [fast] = wire.expect("OK", "FETCH 1 FAST")
    assert re.fullmatch(rb'\* 1 FETCH \(FLAGS \(\) INTERNALDATE "[^"]+" RFC822.SIZE \d+\)', fast)
    [full] = wire.expect("OK", "FETCH 1 FULL")
    assert b"ENVELOPE (" in full and b"BODY (" in full
    wire.expect("BAD", "FETCH 1 (FAST)")  # a macro is not an item in a list
    wire.expect("BAD", "FETCH 1 (BOGUS)")


def test_examine_fetch_does_not_set_seen(server, mailbox):
    wire = mailbox.wire
    untagged = wire.expect("OK [READ-ONLY]", "EXAMINE INBOX")
    assert b"* OK [PERMANENTFLAGS ()] Flags permitted" in untagged
    [response] = wire.expect("OK", "FETCH 1 BODY[]")
    assert b"FLAGS" not in response
    assert wire.expect("OK", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS ())"]


def test_imapclient_fetch(server):
    user = new_user(server)
    subject = unique("ic-")
    deliver(server, user, subject, body="imapclient body\r\n")
    client = imapclient(server, user)
    client.select_folder("INBOX")
    [uid] = client.search(["SUBJECT", subject])
    data = client.fetch([uid], ["ENVELOPE", "BODY.PEEK[TEXT]", "FLAGS", "RFC822.SIZE"])[uid]
    assert data[b"ENVELOPE"].subject == subject.encode()
    assert data[b"BODY[TEXT]"] == b"imapclient body\r\n"
    assert data[b"FLAGS"] == ()
    assert data[b"RFC822.SIZE"] == server.messages(user)[0].size
    client.logout()


def test_shared_inbox_select_is_consistent_with_status(server):
    wire = Wire.login(server, USERS[1])
    status = wire.expect("OK", "STATUS INBOX (MESSAGES UIDNEXT)")[0]
    messages, uidnext = map(int, re.search(rb"MESSAGES (\d+) UIDNEXT (\d+)", status).groups())
    untagged = wire.expect("OK", "SELECT INBOX")
    assert f"* {messages} EXISTS".encode() in untagged
    assert f"* OK [UIDNEXT {uidnext}] Predicted next UID".encode() in untagged
    wire.close()
