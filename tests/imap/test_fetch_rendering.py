"""postar.imap.fetch: FETCH data items rendered byte for byte from a message summary.

Each message is built as bytes, summarized, read back from JSON as the store
keeps it, and rendered. Expected bytes follow the examples of RFC 9051 and
RFC 3501 and what Dovecot 2.3.19 (Debian 12's dovecot-imapd, run
pre-authenticated on these same messages) sent; the DOVECOT_* constants are its
replies verbatim. Where postar differs on purpose the test says so: type,
subtype, encoding and parameter names are upper-cased (RFC 9051's examples;
Dovecot sends them as written), sections are echoed as sent (Dovecot upper-cases
them), sub-parts of a leaf part do not exist (Dovecot returns the leaf),
HEADER.FIELDS of a message without a blank line gets none (RFC 9051 §6.4.5;
Dovecot adds one), and the grammar's nz-number, partial and section-binary are
enforced (Dovecot accepts [0], [01], <0>, <0.0>, BINARY[HEADER]).
"""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from postar.imap.fetch import (FetchAttribute, Section, addresses, binary, bodystructure, envelope,
                               expand_macro, parse_disposition, parse_fetch_attribute, parse_section,
                               partial, response_name, section, string)
from postar.message import ENVELOPE_FIELDS, summarize_json

PREFIX = (b"Return-Path: <alice@example.test>\r\n"
          b"Received: from client.example.test by mx.example.test; Tue, 1 Oct 2024 10:00:01 +0200\r\n")


def stored(data: bytes, prefix: bytes = PREFIX) -> tuple[bytes, int, dict]:
    """(content, prefix_len, summary) as the store hands them over."""
    return prefix + data, len(prefix), json.loads(summarize_json(data))


def structure(data: bytes, extensible: bool = True) -> bytes:
    return bodystructure(stored(data)[2]["part"], extensible)


def fetch(data: bytes, spec: str, prefix: bytes = PREFIX) -> bytes | None:
    return section(*stored(data, prefix), spec)


def fetch_binary(data: bytes, spec: str) -> bytes | None:
    return binary(*stored(data), spec)


def part(header: bytes, body: bytes) -> bytes:
    return header + b"\r\n" + body


def multipart(boundary: bytes, *parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    out = preamble
    for each in parts:
        out += b"--" + boundary + b"\r\n" + each + b"\r\n"
    return out + b"--" + boundary + b"--\r\n" + epilogue


_ATOM = re.compile(rb"NIL|[0-9]+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x80-\xff]|\\["\\])*)"')
_LITERAL = re.compile(rb"\{([0-9]+)\}\r\n")


def read_imap(data: bytes):
    """Parse one IMAP value strictly: lists to lists, strings to bytes, NIL to None, numbers to int."""
    value, end = _read(data, 0)
    assert end == len(data), data[end:]
    return value


def _read(data: bytes, i: int):
    if data.startswith(b"(", i):
        items, i = [], i + 1
        while not data.startswith(b")", i):
            if items and data.startswith(b" ", i):  # bodies of a multipart follow without a space
                i += 1
            item, i = _read(data, i)
            items.append(item)
        return items, i + 1
    if quoted := _QUOTED.match(data, i):
        return re.sub(rb"\\(.)", rb"\1", quoted[1]), quoted.end()
    if literal := _LITERAL.match(data, i):
        start = literal.end()
        assert len(data) >= start + int(literal[1])
        return data[start:start + int(literal[1])], start + int(literal[1])
    atom = _ATOM.match(data, i)
    assert atom, data[i:]
    return (None if atom[0] == b"NIL" else int(atom[0])), atom.end()


# Messages --------------------------------------------------------------------------------------

# RFC 3501 §8 / RFC 9051 §8: the example message, its body 3028 octets in 92 lines.
RFC_MESSAGE = part(b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
                   b"From: Terry Gray <gray@cac.washington.edu>\r\n"
                   b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
                   b"To: imap@cac.washington.edu\r\n"
                   b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
                   b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
                   b"MIME-Version: 1.0\r\n"
                   b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n",
                   (b"x" * 31 + b"\r\n") * 91 + b"y" * 23 + b"\r\n")

PLAIN = b"Caf=C3=A9 at noon? This line is long enough to need a soft line=\r\n break.\r\n"
PLAIN_MIME = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
HTML = b"<p>Caf&eacute; at noon?</p>\r\n"
HTML_PART = part(b"Content-Type: text/html; charset=\"utf-8\"\r\n", HTML)
ALTERNATIVE_BODY = multipart(b"alt-1", PLAIN_MIME + PLAIN, HTML_PART)
ALTERNATIVE = part(b"Content-Type: multipart/alternative; boundary=alt-1\r\n", ALTERNATIVE_BODY)
PDF_BYTES = b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n5 0 obj\n<</Length 6 0 R>>\nstream\n\x00\x01\x02endstream\n"
PDF = base64.encodebytes(PDF_BYTES).replace(b"\n", b"\r\n")
PDF_MIME = (b"Content-Type: application/pdf; name=\"report 2024.pdf\"\r\n"
            b"Content-Disposition: attachment; filename=\"report 2024.pdf\"; size=64\r\n"
            b"Content-Transfer-Encoding: base64\r\nContent-ID: <pdf@example.test>\r\n"
            b"Content-Language: en, de\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\r\n")
INNER_HEADER = (b"From: Carol <carol@other.test>\r\nSubject: inner\r\nDate: Mon, 30 Sep 2024 09:00:00 +0000\r\n"
                b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n")
INNER_BODY = b"Forwarded text.\r\nSecond line.\r\n"
INNER = INNER_HEADER + INNER_BODY
RFC822_MIME = b"Content-Type: message/rfc822\r\nContent-Description: a forwarded message\r\n\r\n"
MIXED_HEADER = (b"From: \"Alice Example\" <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: report\r\n"
                b"Date: Tue, 1 Oct 2024 10:00:00 +0200\r\nMessage-ID: <m1@example.test>\r\nMIME-Version: 1.0\r\n"
                b"Content-Type: multipart/mixed;\r\n boundary=\"=_mixed 1\"\r\n\r\n")
MIXED_BODY = multipart(b"=_mixed 1", ALTERNATIVE, PDF_MIME + PDF, RFC822_MIME + INNER,
                       preamble=b"This is a multi-part message in MIME format.\r\n", epilogue=b"The end.\r\n")
MIXED = MIXED_HEADER + MIXED_BODY

DOVECOT_MIXED_BODYSTRUCTURE = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 75 2 NIL NIL NIL NIL)("text" "html" '
    b'("charset" "utf-8") NIL NIL "7bit" 29 1 NIL NIL NIL NIL) "alternative" ("boundary" "alt-1") NIL NIL NIL)'
    b'("application" "pdf" ("name" "report 2024.pdf") "<pdf@example.test>" NIL "base64" 88 '
    b'"Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "report 2024.pdf" "size" "64")) ("en" "de") NIL)'
    b'("message" "rfc822" NIL NIL "a forwarded message" "7bit" 166 ("Mon, 30 Sep 2024 09:00:00 +0000" "inner" '
    b'(("Carol" NIL "carol" "other.test")) (("Carol" NIL "carol" "other.test")) (("Carol" NIL "carol" '
    b'"other.test")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "iso-8859-1") NIL NIL "7bit" 31 2 NIL NIL '
    b'NIL NIL) 7 NIL NIL NIL NIL) "mixed" ("boundary" "=_mixed 1") NIL NIL NIL)')
DOVECOT_MIXED_BODY = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 75 2)("text" "html" ("charset" "utf-8") '
    b'NIL NIL "7bit" 29 1) "alternative")("application" "pdf" ("name" "report 2024.pdf") "<pdf@example.test>" '
    b'NIL "base64" 88)("message" "rfc822" NIL NIL "a forwarded message" "7bit" 166 ("Mon, 30 Sep 2024 09:00:00 '
    b'+0000" "inner" (("Carol" NIL "carol" "other.test")) (("Carol" NIL "carol" "other.test")) (("Carol" NIL '
    b'"carol" "other.test")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "iso-8859-1") NIL NIL "7bit" 31 2) '
    b'7) "mixed")')


# Strings (RFC 9051 §4.3) -------------------------------------------------------------------------

def test_string_is_nil_or_quoted_with_escapes():
    assert string(None) == b"NIL"
    assert string("") == b'""'
    assert string("Lunch?") == b'"Lunch?"'
    assert string('say "hi" \\ bye') == b'"say \\"hi\\" \\\\ bye"'
    assert string(b"bytes\ttoo") == b'"bytes\ttoo"'


def test_string_is_a_literal_when_quoting_cannot_carry_it():
    assert string("J\u00f6rg") == b"{5}\r\nJ\xc3\xb6rg"
    assert string(b"two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert string("x" * 1001) == b"{1001}\r\n" + b"x" * 1001
    assert string("x" * 1000) == b'"' + b"x" * 1000 + b'"'
    # CHAR8 has no NUL: Dovecot sends U+FFFD in header text, 0x80 in raw bytes, and so does postar.
    assert string(b"nul\x00") == b"{4}\r\nnul\x80"
    assert string("nul\x00") == b"{6}\r\nnul\xef\xbf\xbd"


@given(st.one_of(st.text(), st.binary()))
def test_string_round_trips_through_an_imap_reader(value):
    raw = value.replace("\0", "\ufffd").encode() if isinstance(value, str) else value.replace(b"\0", b"\x80")
    assert read_imap(string(value)) == raw


# ENVELOPE ---------------------------------------------------------------------------------------

def test_envelope_of_the_rfc_example():
    assert envelope(stored(RFC_MESSAGE)[2]["envelope"]) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
        b'"<B27397-0100000@cac.washington.edu>")')


def test_envelope_without_fields_is_all_nil():
    assert envelope({}) == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def test_sender_and_reply_to_default_to_from_when_absent_or_empty():
    data = part(b"From: a@b.test\r\nReply-To: \r\nSubject: no body\r\nTo: c@d.test", b"")
    assert envelope(stored(data)[2]["envelope"]) == (
        b'(NIL "no body" ((NIL NIL "a" "b.test")) ((NIL NIL "a" "b.test")) ((NIL NIL "a" "b.test")) '
        b'((NIL NIL "c" "d.test")) NIL NIL NIL NIL)')


ADDRESSES = part(b'From: "Smith, John (Sales)" <john.smith@example.test> (work)\r\n'
                 b"Sender: <@relay.test,@other.test:list@lists.test>\r\n"
                 b'To: Team: ann@example.test, "Bob \\"B\\" Jones" <bob@example.test>;, undisclosed-recipients:;\r\n'
                 b"Cc: carol@example.test (Carol C.), =?utf-8?q?J=C3=B6rg?= <joerg@example.test>\r\n"
                 b'Bcc: "quoted local"@example.test\r\n'
                 b"Reply-To: \r\n"
                 b'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= "quoted" \\ back\r\n'
                 b"In-Reply-To: <0@x.test>\r\n", b"body\r\n")


def test_envelope_groups_quoted_names_comments_and_routes():
    """Dovecot writes the same values; it sends the subject and Bob's name as literals."""
    assert envelope(stored(ADDRESSES)[2]["envelope"]) == (
        b'(NIL "=?utf-8?q?Gr=C3=BC=C3=9Fe?= \\"quoted\\" \\\\ back" '
        b'(("Smith, John (Sales)" NIL "john.smith" "example.test")) '
        b'((NIL "@relay.test,@other.test" "list" "lists.test")) '
        b'(("Smith, John (Sales)" NIL "john.smith" "example.test")) '
        b'((NIL NIL "Team" NIL)(NIL NIL "ann" "example.test")("Bob \\"B\\" Jones" NIL "bob" "example.test")'
        b'(NIL NIL NIL NIL)(NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
        b'(("Carol C." NIL "carol" "example.test")("=?utf-8?q?J=C3=B6rg?=" NIL "joerg" "example.test")) '
        b'((NIL NIL "quoted local" "example.test")) "<0@x.test>" NIL)')


def test_envelope_with_8bit_names_uses_literals_as_dovecot_does():
    data = "From: Jörg <joerg@example.test>\r\nSubject: Grüße\r\nTo: a\r\n\r\nbody\r\n".encode()
    assert envelope(stored(data)[2]["envelope"]) == (
        b'(NIL {7}\r\nGr\xc3\xbc\xc3\x9fe (({5}\r\nJ\xc3\xb6rg NIL "joerg" "example.test")) '
        b'(({5}\r\nJ\xc3\xb6rg NIL "joerg" "example.test")) (({5}\r\nJ\xc3\xb6rg NIL "joerg" "example.test")) '
        b'((NIL NIL "a" "MISSING_DOMAIN")) NIL NIL NIL NIL)')


@pytest.mark.parametrize("value, expected", [
    ("a@b.test", [(None, None, "a", "b.test")]),
    ("a@b.test,, c@d.test,", [(None, None, "a", "b.test"), (None, None, "c", "d.test")]),
    ("John Q. Public <jqp@x.test>", [("John Q. Public", None, "jqp", "x.test")]),
    ("<>", [(None, None, "MISSING_MAILBOX", "MISSING_DOMAIN")]),
    ("user@[192.0.2.1]", [(None, None, "user", "[192.0.2.1]")]),
    ("a@b.test (outer (nested) comment)", [("outer (nested) comment", None, "a", "b.test")]),
    ("a(inside)@b.test", [("inside", None, "a", "b.test")]),  # Dovecot: the same
    ("(before) a@b.test", [(None, None, "a", "b.test")]),  # a comment before the address names nothing
    ("g: a@b.test; c@d.test", [(None, None, "g", None), (None, None, "a", "b.test"), (None, None, None, None),
                               (None, None, "c", "d.test")]),  # two From fields, as the summary joins them
    ("A Group:;", [(None, None, "A Group", None), (None, None, None, None)]),
    ("open: a@b.test", [(None, None, "open", None), (None, None, "a", "b.test"), (None, None, None, None)]),
    ('"unclosed <a@b.test>', [(None, None, "unclosed <a@b.test>", "MISSING_DOMAIN")]),
    ("(only a comment)", []),
    ("", []),
])
def test_address_lists(value, expected):
    assert addresses(value) == expected


# BODY and BODYSTRUCTURE --------------------------------------------------------------------------

def test_rfc_example_body_and_bodystructure():
    assert structure(RFC_MESSAGE, False) == b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'
    assert structure(RFC_MESSAGE) == b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92 NIL NIL NIL NIL)'


def test_message_without_content_type_is_text_plain_us_ascii():
    data = part(b"Subject: hi\r\n", b"Noon?\r\n")
    assert structure(data) == b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 7 1 NIL NIL NIL NIL)'


def test_any_text_part_without_charset_gets_us_ascii():
    data = part(b"Content-Type: text/html\r\n", b"<p>hi</p>")
    assert structure(data, False) == b'("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 9 0)'


def test_mixed_bodystructure():
    assert structure(MIXED) == (
        b'((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 75 2 NIL NIL NIL NIL)'
        b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 29 1 NIL NIL NIL NIL) "ALTERNATIVE" '
        b'("BOUNDARY" "alt-1") NIL NIL NIL)'
        b'("APPLICATION" "PDF" ("NAME" "report 2024.pdf") "<pdf@example.test>" NIL "BASE64" 88 '
        b'"Q2hlY2sgSW50ZWdyaXR5IQ==" ("ATTACHMENT" ("FILENAME" "report 2024.pdf" "SIZE" "64")) ("en" "de") NIL)'
        b'("MESSAGE" "RFC822" NIL NIL "a forwarded message" "7BIT" 166 ("Mon, 30 Sep 2024 09:00:00 +0000" "inner" '
        b'(("Carol" NIL "carol" "other.test")) (("Carol" NIL "carol" "other.test")) '
        b'(("Carol" NIL "carol" "other.test")) NIL NIL NIL NIL NIL) '
        b'("TEXT" "PLAIN" ("CHARSET" "iso-8859-1") NIL NIL "7BIT" 31 2 NIL NIL NIL NIL) 7 NIL NIL NIL NIL) '
        b'"MIXED" ("BOUNDARY" "=_mixed 1") NIL NIL NIL)')
    assert structure(MIXED).lower() == DOVECOT_MIXED_BODYSTRUCTURE.lower()


def test_mixed_body_has_no_extension_data():
    assert structure(MIXED, False).lower() == DOVECOT_MIXED_BODY.lower()
    assert structure(MIXED, False).startswith(b'((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 75 2)')


TOP_RFC822 = part(b"Content-Type: message/rfc822\r\nSubject: outer\r\n", INNER)
NO_DELIMITERS = part(b"Content-Type: multipart/mixed; boundary=b\r\n", b"no delimiters here\r\n")
NO_BOUNDARY = part(b"Content-Type: multipart/mixed\r\n", b"--x\r\n\r\nhi\r\n--x--\r\n")
CONTINUED = part(b"Content-Type: application/octet-stream; name*0=\"long \"; name*1=\"name.txt\"\r\n"
                 b"Content-Disposition: inline; filename*=utf-8''%C3%A9.txt\r\n"
                 b"Content-Transfer-Encoding: X-UUENCODE\r\nContent-Location: http://example.test/a\r\n", b"begin\r\n")


@pytest.mark.parametrize("data, dovecot", [
    (TOP_RFC822, b'("message" "rfc822" NIL NIL NIL "7bit" 166 ("Mon, 30 Sep 2024 09:00:00 +0000" "inner" '
                 b'(("Carol" NIL "carol" "other.test")) (("Carol" NIL "carol" "other.test")) (("Carol" NIL "carol" '
                 b'"other.test")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "iso-8859-1") NIL NIL "7bit" 31 2 '
                 b'NIL NIL NIL NIL) 7 NIL NIL NIL NIL)'),
    # 1*body: a multipart with no parts shows one empty text/plain, with or without a boundary.
    (NO_DELIMITERS, b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" '
                    b'("boundary" "b") NIL NIL NIL)'),
    (NO_BOUNDARY, b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" '
                  b'NIL NIL NIL NIL)'),
    # RFC 2231: continuations joined, an encoded value left encoded under name*.
    (CONTINUED, b'("application" "octet-stream" ("name" "long name.txt") NIL NIL "X-UUENCODE" 7 NIL '
                b'("inline" ("filename*" "utf-8\'\'%C3%A9.txt")) NIL "http://example.test/a")'),
])
def test_bodystructure_as_dovecot_writes_it_apart_from_letter_case(data, dovecot):
    assert structure(data).lower() == dovecot.lower()


def test_message_rfc822_past_the_depth_limit_ends_in_a_text_leaf():
    """The summary stops at 100 levels (as Dovecot's message parser): the last level is a
    text/plain leaf holding the rest, unparsed; every level above keeps body-type-msg's shape."""
    data = b"Content-Type: message/rfc822\r\n\r\n" * 150 + b"Subject: bottom\r\n\r\nx\r\n"
    parsed, levels = read_imap(structure(data)), 0
    while parsed[:2] == [b"MESSAGE", b"RFC822"]:
        assert len(parsed[7]) == 10  # an envelope
        parsed, levels = parsed[8], levels + 1
    assert 90 < levels < 101
    assert parsed[:2] == [b"TEXT", b"PLAIN"] and parsed[6] > 0  # the deeper levels, as text


def test_parse_disposition():
    assert parse_disposition('attachment; filename="a \\"b\\".pdf"; SIZE=3') == \
        ("attachment", {"filename": 'a "b".pdf', "size": "3"})
    assert parse_disposition("inline") == ("inline", {})
    assert parse_disposition("") is None and parse_disposition("; filename=x") is None


# BODY[section] ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("", PREFIX + MIXED),
    ("HEADER", PREFIX + MIXED_HEADER),
    ("TEXT", MIXED_BODY),
    ("1", ALTERNATIVE_BODY),
    ("1.MIME", b"Content-Type: multipart/alternative; boundary=alt-1\r\n\r\n"),
    ("1.1", PLAIN),
    ("1.1.MIME", PLAIN_MIME),
    ("1.2", HTML),
    ("2", PDF),
    ("2.MIME", PDF_MIME),
    ("3", INNER),
    ("3.MIME", RFC822_MIME),
    ("3.HEADER", INNER_HEADER),
    ("3.TEXT", INNER_BODY),
    ("3.1", INNER_BODY),  # the enclosed message is not multipart: its part 1 is its body
    ("3.1.MIME", INNER_HEADER),
    ("3.HEADER.FIELDS (subject FROM)", b"From: Carol <carol@other.test>\r\nSubject: inner\r\n\r\n"),
    ("header.fields.not (Content-Type From To MIME-Version Return-Path)",
     b"Received: from client.example.test by mx.example.test; Tue, 1 Oct 2024 10:00:01 +0200\r\n"
     b"Subject: report\r\nDate: Tue, 1 Oct 2024 10:00:00 +0200\r\nMessage-ID: <m1@example.test>\r\n\r\n"),
    # Parts that do not exist, and HEADER/TEXT of a part that is no message: empty, as from Dovecot.
    ("4", b""), ("3.2", b""), ("3.1.1", b""), ("2.HEADER", b""), ("1.TEXT", b""), ("9.8.7.HEADER", b""),
    # Dovecot answers these two with the leaf itself; RFC 9051 §6.4.5 gives a leaf part no sub-parts.
    ("1.1.1", b""), ("2.1", b""),
])
def test_sections_of_a_mixed_message(spec, expected):
    assert fetch(MIXED, spec) == expected


def test_single_part_message_has_part_1_and_nothing_else():
    data = part(b"Subject: hi\r\n", b"Noon?\r\n")
    assert fetch(data, "1") == fetch(data, "TEXT") == b"Noon?\r\n"
    assert fetch(data, "1.MIME") == fetch(data, "HEADER") == PREFIX + b"Subject: hi\r\n\r\n"
    assert fetch(data, "2") == fetch(data, "1.1") == fetch(data, "1.HEADER") == b""


def test_top_level_message_rfc822_numbers_the_enclosed_message_inside_part_1():
    """The same bytes as Dovecot, with the prefix lines in the top-level header."""
    assert fetch(TOP_RFC822, "1") == fetch(TOP_RFC822, "TEXT") == INNER
    assert fetch(TOP_RFC822, "1.1") == fetch(TOP_RFC822, "1.TEXT") == INNER_BODY
    assert fetch(TOP_RFC822, "1.HEADER") == fetch(TOP_RFC822, "1.1.MIME") == INNER_HEADER
    assert fetch(TOP_RFC822, "1.MIME") == PREFIX + b"Content-Type: message/rfc822\r\nSubject: outer\r\n\r\n"
    assert fetch(TOP_RFC822, "2") == b""


def test_multipart_without_parts_has_an_empty_part_1():
    assert fetch(NO_DELIMITERS, "1") == fetch(NO_BOUNDARY, "1") == b""
    assert fetch(NO_DELIMITERS, "TEXT") == b"no delimiters here\r\n"


FOLDED = part(b"Subject: a long\r\n  subject\r\nX-A: 1\r\nsubject: second\r\nTO: x@y.z,\r\n\tw@y.z\r\nX-B: 2\r\n",
              b"body\r\n")


def test_header_fields_keep_folded_lines_repeats_and_spelling():
    """Byte for byte what Dovecot sent."""
    assert fetch(FOLDED, "HEADER.FIELDS (Subject To)", b"") == \
        b"Subject: a long\r\n  subject\r\nsubject: second\r\nTO: x@y.z,\r\n\tw@y.z\r\n\r\n"
    assert fetch(FOLDED, "HEADER.FIELDS.NOT (subject to)", b"") == b"X-A: 1\r\nX-B: 2\r\n\r\n"


def test_header_fields_see_the_prefix_lines_and_take_quoted_names():
    assert fetch(FOLDED, 'HEADER.FIELDS ("Received" X-B)') == \
        b"Received: from client.example.test by mx.example.test; Tue, 1 Oct 2024 10:00:01 +0200\r\nX-B: 2\r\n\r\n"
    assert fetch(FOLDED, "HEADER.FIELDS (X-None)") == b"\r\n"


def test_message_without_blank_line_is_all_header():
    data = b"Subject: no body\r\nFrom: a@b.c"
    assert fetch(data, "HEADER", b"") == data  # Dovecot: the same
    assert fetch(data, "TEXT") == fetch(data, "1") == b""
    # RFC 9051 §6.4.5: no blank line when the message has none (Dovecot adds one).
    assert fetch(data, "HEADER.FIELDS (SUBJECT)", b"") == b"Subject: no body\r\n"
    assert fetch(data, "HEADER.FIELDS (FROM)", b"") == b"From: a@b.c"  # Dovecot: the same


def test_nul_in_a_section_becomes_0x80():
    data = part(b"Subject: x\r\n", b"a\x00b\r\n")
    assert fetch(data, "TEXT") == b"a\x80b\r\n"
    assert fetch_binary(data, "1") == b"a\x00b\r\n"  # BINARY goes as literal8 (RFC 3516 §4.2)


@pytest.mark.parametrize("spec", ["MIME", "0", "01", "1.0", "1.", ".1", "1..2", "1.MIME.TEXT", "TEXT.MIME",
                                  "HEADER.FIELDS", "HEADER.FIELDS ()", "HEADER.FIELDS (a", "HEADER.FIELDS(a)",
                                  "HEADER.FIELDS  (a)", "FOO", "1.FOO", " HEADER", "HEADER ", "1HEADER", "1.m\u0131me",
                                  "HEADER\n"])
def test_invalid_section_specs(spec):
    assert parse_section(spec) is None
    assert fetch(MIXED, spec) is None


def test_parse_section():
    assert parse_section('1.2.header.fields.not (From "X \\"Y" to)') == \
        Section((1, 2), "HEADER.FIELDS.NOT", ("From", 'X "Y', "to"))
    assert parse_section("3.mime") == Section((3,), "MIME")
    assert parse_section("") == Section((), "")


def test_partial():
    assert partial(b"0123456789", 2, 5) == b"23456"
    assert partial(b"0123456789", 8, 5) == b"89"
    assert partial(b"0123456789", 10000, 5) == b""
    assert partial(b"0123456789", 3, None) == b"3456789"


# BINARY[section] (RFC 3516) -----------------------------------------------------------------

def test_binary_undoes_the_transfer_encoding():
    """The same octets Dovecot sent as literal8."""
    assert fetch_binary(MIXED, "1.1") == \
        "Café at noon? This line is long enough to need a soft line break.\r\n".encode()
    assert fetch_binary(MIXED, "2") == PDF_BYTES
    assert fetch_binary(MIXED, "3") == INNER
    assert fetch_binary(MIXED, "") == PREFIX + MIXED


def test_binary_of_an_unknown_encoding_is_none():
    assert fetch_binary(CONTINUED, "1") is None  # NO [UNKNOWN-CTE], as Dovecot answers


def test_binary_of_a_missing_part_is_empty_and_of_a_non_binary_section_none():
    assert fetch_binary(MIXED, "5") == b""
    assert fetch_binary(MIXED, "HEADER") is None and fetch_binary(MIXED, "1.MIME") is None


@pytest.mark.parametrize("encoded, decoded", [
    (b"aGVs\r\nbG8=\r\n", b"hello"), (b"aGVsbG8", b"hello"), (b"aGVs*bG8=junk", b"hello"), (b"aGVsbG8hx", b"hello!"),
])
def test_base64_is_decoded_leniently(encoded, decoded):
    data = part(b"Content-Transfer-Encoding: BASE64\r\n", encoded)
    assert fetch_binary(data, "1") == decoded


@pytest.mark.parametrize("encoded, decoded", [
    (b"soft=  \t\r\nbreak", b"softbreak"),  # RFC 2045 §6.7 rule 3: padding after a soft break's "="
    (b"pad \t\r\nline  ", b"pad\r\nline"),  # ... and before a line end, dropped
    (b"keep =\r\n  \r\nx", b"keep \r\nx"),  # white space before "=" is text
    (b"=C3=a9=3D", "é=".encode()),  # lower-case hex too, as Dovecot
    (b"a=3=\r\nD", b"a=3D"),  # "=3" is no escape, and the soft break does not make one
    (b"bad = =zz", b"bad = =zz"),  # kept as it is (Dovecot: NO [PARSE])
])
def test_quoted_printable_is_decoded_as_dovecot_does(encoded, decoded):
    data = part(b"Content-Transfer-Encoding: quoted-printable\r\n", encoded)
    assert fetch_binary(data, "1") == decoded


# Fetch attributes ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("FLAGS", FetchAttribute("FLAGS")),
    ("uid", FetchAttribute("UID")),
    ("InternalDate", FetchAttribute("INTERNALDATE")),
    ("RFC822.SIZE", FetchAttribute("RFC822.SIZE")),
    ("ENVELOPE", FetchAttribute("ENVELOPE")),
    ("BODY", FetchAttribute("BODY")),
    ("BODYSTRUCTURE", FetchAttribute("BODYSTRUCTURE")),
    ("MODSEQ", FetchAttribute("MODSEQ")),
    ("RFC822", FetchAttribute("RFC822", "")),
    ("RFC822.HEADER", FetchAttribute("RFC822.HEADER", "HEADER", peek=True)),
    ("RFC822.TEXT", FetchAttribute("RFC822.TEXT", "TEXT")),
    ("BODY[]", FetchAttribute("BODY", "")),
    ("body.peek[text]", FetchAttribute("BODY", "text", peek=True)),
    ("BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>", FetchAttribute("BODY", "HEADER.FIELDS (FROM TO)", (0, 100), True)),
    ('BODY[1.2.HEADER.FIELDS ("Subject" x-a)]', FetchAttribute("BODY", '1.2.HEADER.FIELDS ("Subject" x-a)')),
    ('BODY[HEADER.FIELDS ("a]b")]', FetchAttribute("BODY", 'HEADER.FIELDS ("a]b")')),
    ("BODY[3.MIME]", FetchAttribute("BODY", "3.MIME")),
    ("BINARY[1]", FetchAttribute("BINARY", "1")),
    ("BINARY.PEEK[1]<0.10>", FetchAttribute("BINARY", "1", (0, 10), True)),
    ("BINARY[]", FetchAttribute("BINARY", "")),
    ("BINARY.SIZE[1]", FetchAttribute("BINARY.SIZE", "1")),
])
def test_parse_fetch_attribute(text, expected):
    assert parse_fetch_attribute(text) == expected


@pytest.mark.parametrize("text", ["", "FOO", "BODY.PEEK", "BODY[", "BODY[]]", "BODY[MIME]", "BODY[1.]",
                                  "BODY[]<0>", "BODY[]<0.0>", "BODY[]<1.-1>", "BODY[]<0.99999999999999999999>",
                                  "BODY[] ", "BINARY[HEADER]", "BINARY[1.MIME]", "BINARY.SIZE[1]<0.10>",
                                  "BINARY.SIZE.PEEK[1]", "RFC822.PEEK", "ALL", "FLAGS\n", "BODY[]\n"])
def test_invalid_fetch_attributes(text):
    assert parse_fetch_attribute(text) is None


@pytest.mark.parametrize("text, name", [
    ("flags", "FLAGS"), ("BODY", "BODY"), ("RFC822.HEADER", "RFC822.HEADER"), ("body[]", "BODY[]"),
    ("BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>", "BODY[HEADER.FIELDS (FROM TO)]<0>"),
    ("body.peek[1.header.fields (Date)]<5.10>", "BODY[1.header.fields (Date)]<5>"),
    ('BODY.PEEK[HEADER.FIELDS ("Subject" In-Reply-To)]', 'BODY[HEADER.FIELDS ("Subject" In-Reply-To)]'),
    ("BINARY.PEEK[1]<0.10>", "BINARY[1]<0>"), ("BINARY.SIZE[1]", "BINARY.SIZE[1]"),
])
def test_response_names(text, name):
    assert response_name(parse_fetch_attribute(text)) == name


def test_macros():
    assert expand_macro("fast") == tuple(map(FetchAttribute, ("FLAGS", "INTERNALDATE", "RFC822.SIZE")))
    assert expand_macro("ALL") == tuple(map(FetchAttribute, ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")))
    assert expand_macro("Full") == tuple(map(FetchAttribute, ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
                                                              "BODY")))
    assert expand_macro("FLAGS") is None and expand_macro("") is None


# Properties: nothing raises, everything rendered parses ------------------------------------------

HEADERS = [b"Content-Type: multipart/mixed; boundary=b\r\n", b"Content-Type: multipart/digest; boundary=\"b\"\r\n",
           b"Content-Type: message/rfc822\r\n", b"Content-Type: text/plain; charset=\"a\\\"b\r\n",
           b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
           b"Content-Disposition: attachment; filename*0=a; filename*1*=b\r\n", b"Content-Language: en,\r\n",
           b"From: \"a\\\" <b@c>, g: d@e;\r\n", b"To: (x (y) <@r:a@b>\r\n", b"Subject: s\x00\xff\r\n", b" folded\r\n"]
TOKENS = [b"\r\n", b"\r\n\r\n", b"--b\r\n", b"--b--\r\n", b"\r\n--b", b"--b", b"\n", b"\r", b"x", b"=", b"\x00",
          *HEADERS]
soup = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)), max_size=40).map(b"".join)
mime_soup = st.tuples(st.lists(st.sampled_from(HEADERS), max_size=4).map(b"".join), soup).map(
    lambda t: t[0] + b"\r\n" + t[1])
numbers = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(lambda ns: ".".join(map(str, ns)))
texts = st.sampled_from(["", "HEADER", "TEXT", "MIME", "HEADER.FIELDS (Subject FROM)", "HEADER.FIELDS.NOT (To)"])
specs = st.one_of(texts, st.tuples(numbers, texts).map(lambda t: t[0] + ("." + t[1] if t[1] else "")), st.text())


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=1500), mime_soup), st.sampled_from([b"", PREFIX]), st.lists(specs, max_size=6))
@example(MIXED, PREFIX, ["1.1", "3.HEADER"])
def test_nothing_raises_and_structures_parse(data, prefix, spec_list):
    content, prefix_len, summary = stored(data, prefix)
    assert len(read_imap(envelope(summary["envelope"]))) == 10
    for extensible in (False, True):
        assert isinstance(read_imap(bodystructure(summary["part"], extensible)), list)
    for spec in spec_list:
        result = section(content, prefix_len, summary, spec)
        assert (result is None) == (parse_section(spec) is None)
        decoded = binary(content, prefix_len, summary, spec)
        assert decoded is None or isinstance(decoded, bytes)
        if result is not None and "FIELDS" not in spec:
            assert result in content.replace(b"\0", b"\x80")


@given(st.dictionaries(st.sampled_from(ENVELOPE_FIELDS), st.text()))
def test_envelope_of_any_field_values_parses(fields):
    assert len(read_imap(envelope(fields))) == 10


ATTRIBUTE = r'(?i)(BODY|BINARY)(\.PEEK|\.SIZE)?\[[0-9.A-Z ()"]*\](<[0-9]{1,3}\.[0-9]{1,3}>)?'


@given(st.one_of(st.text(max_size=60), st.from_regex(ATTRIBUTE, fullmatch=True)))
def test_fetch_attributes_never_raise_and_response_names_parse_back(text):
    attr = parse_fetch_attribute(text)
    if attr is not None and attr.section is not None:
        assert parse_section(attr.section) is not None
        assert parse_fetch_attribute(response_name(attr).split("<")[0]).section == attr.section
