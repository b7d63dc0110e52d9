"""postar.message.summarize: envelope fields and the MIME tree with byte offsets.

A plain text message, a multipart/mixed holding a multipart/alternative, an
attachment and a message/rfc822 (types, parameters, offsets that slice exactly
each part's header and content, line counts), folded and repeated header
fields, messages without a blank line, digests, and the hypothesis property
that summarize never raises and keeps every offset inside the data and inside
its parent.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from postar.message import summarize, summarize_json


def body_of(data: bytes, part: dict) -> bytes:
    return data[slice(*part["body"])]


def header_of(data: bytes, part: dict) -> bytes:
    return data[slice(*part["header"])]


def part(header: bytes, body: bytes) -> bytes:
    return header + b"\r\n" + body


def multipart(boundary: bytes, *parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    """RFC 2046 §5.1.1: each part ends before the CRLF that starts the next delimiter."""
    out = preamble
    for each in parts:
        out += b"--" + boundary + b"\r\n" + each + b"\r\n"
    return out + b"--" + boundary + b"--\r\n" + epilogue


# A plain message ------------------------------------------------------------------------

SIMPLE_HEADER = (b"Date: Tue, 1 Oct 2024 10:00:00 +0200\r\n"
                 b"From: Bob <bob@remote.test>\r\n"
                 b"Sender: list@remote.test\r\n"
                 b"Reply-To: replies@remote.test\r\n"
                 b"To: alice@example.test\r\n"
                 b"Cc: carol@example.test\r\n"
                 b"Bcc: dave@example.test\r\n"
                 b"Subject: Lunch?\r\n"
                 b"In-Reply-To: <0@remote.test>\r\n"
                 b"Message-ID: <1@remote.test>\r\n"
                 b"X-Mailer: not an envelope field\r\n")
SIMPLE_BODY = b"Noon at the usual place?\r\n\r\n-- \r\nBob\r\n"
SIMPLE = part(SIMPLE_HEADER, SIMPLE_BODY)


def test_simple_message_envelope():
    assert summarize(SIMPLE)["envelope"] == {
        "date": "Tue, 1 Oct 2024 10:00:00 +0200", "from": "Bob <bob@remote.test>",
        "sender": "list@remote.test", "reply-to": "replies@remote.test", "to": "alice@example.test",
        "cc": "carol@example.test", "bcc": "dave@example.test", "subject": "Lunch?",
        "in-reply-to": "<0@remote.test>", "message-id": "<1@remote.test>",
    }


def test_simple_message_is_text_plain_with_exact_offsets():
    top = summarize(SIMPLE)["part"]
    assert (top["type"], top["subtype"]) == ("text", "plain")  # RFC 2045 §5.2 default
    assert header_of(SIMPLE, top) == SIMPLE_HEADER + b"\r\n"
    assert body_of(SIMPLE, top) == SIMPLE_BODY
    assert top["body"] == [len(SIMPLE_HEADER) + 2, len(SIMPLE)]
    assert top["lines"] == 4
    assert "parts" not in top and "message" not in top


def test_content_type_is_lower_cased_but_values_kept():
    data = part(b"Content-Type: TEXT/HTML; CHARSET=UTF-8; Format=\"Flowed\"\r\n", b"<p>hi</p>\r\n")
    top = summarize(data)["part"]
    assert (top["type"], top["subtype"], top["params"]) == ("text", "html", {"charset": "UTF-8", "format": "Flowed"})


def test_unreadable_content_type_falls_back_to_text_plain_us_ascii():
    top = summarize(part(b"Content-Type: garbage\r\n", b"x\r\n"))["part"]
    assert (top["type"], top["subtype"], top["params"]) == ("text", "plain", {"charset": "us-ascii"})


# Folded and repeated fields ------------------------------------------------------------------

def test_folded_fields_are_unfolded_and_the_first_of_a_repeated_field_wins():
    data = part(b"subject: a long\r\n  subject\r\n\tfolded twice\r\n"
                b"TO: alice@example.test,\r\n bob@example.test\r\n"
                b"Subject: the second subject\r\n"
                b"Content-Type: text/plain;\r\n\tcharset=\"iso-8859-1\"\r\n", b"body\r\n")
    summary = summarize(data)
    # RFC 5322 §2.2.3: unfolding removes the CRLF only; the whitespace stays.
    assert summary["envelope"]["subject"] == "a long  subject\tfolded twice"
    assert summary["envelope"]["to"] == "alice@example.test, bob@example.test"
    assert summary["part"]["params"] == {"charset": "iso-8859-1"}


def test_every_occurrence_of_a_repeated_address_field_is_kept():
    # As Dovecot's ENVELOPE and SEARCH FROM (issue 10, item 9); "; " closes a group left open.
    data = part(b"From: a@x.test\r\nSubject: one\r\nCc: team: b@x.test\r\nfrom: c@x.test\r\n"
                b"Subject: two\r\nCC: d@x.test\r\n", b"body\r\n")
    envelope = summarize(data)["envelope"]
    assert envelope["from"] == "a@x.test; c@x.test"
    assert envelope["cc"] == "team: b@x.test; d@x.test"
    assert envelope["subject"] == "one"


# Messages without a blank line, or without a header ----------------------------------------

def test_message_without_blank_line_is_all_header():
    for data in (b"Subject: x\r\nFrom: y@z.test", b"Subject: x\r\nFrom: y@z.test\r\n"):
        summary = summarize(data)
        assert summary["envelope"] == {"subject": "x", "from": "y@z.test"}
        assert summary["part"]["header"] == [0, len(data)] and summary["part"]["body"] == [len(data), len(data)]
        assert summary["part"]["lines"] == 0


def test_message_without_header_is_all_body():
    data = b"\r\njust a body\r\n"
    summary = summarize(data)
    assert summary["envelope"] == {}
    assert header_of(data, summary["part"]) == b"\r\n" and body_of(data, summary["part"]) == b"just a body\r\n"


def test_empty_message():
    assert summarize(b"") == {"envelope": {}, "part": {"type": "text", "subtype": "plain", "params": {"charset": "us-ascii"},
                                                       "header": [0, 0], "body": [0, 0], "lines": 0}}


# A multipart/mixed with a multipart/alternative, an attachment and a message/rfc822 ------------

PLAIN = b"Hello,\r\nworld.\r\n"
HTML = b"<p>Hello,<br>world.</p>\r\n"
PLAIN_PART = part(b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
                  PLAIN)
HTML_PART = part(b"Content-Type: text/html; charset=\"utf-8\"\r\n", HTML)
ALTERNATIVE_BODY = multipart(b"alt-1", PLAIN_PART, HTML_PART)
ALTERNATIVE = part(b"Content-Type: multipart/alternative; boundary=alt-1\r\n", ALTERNATIVE_BODY)
PDF = b"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\nZW5kc3RyZWFtCg==\r\n"
PDF_PART = part(b"Content-Type: application/pdf; name=\"report 2024.pdf\"\r\n"
                b"Content-Disposition: attachment; filename=\"report 2024.pdf\"\r\n"
                b"Content-Transfer-Encoding: base64\r\nContent-ID: <pdf@example.test>\r\n", PDF)
INNER_HEADER = b"From: carol@other.test\r\nSubject: inner\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
INNER_BODY = b"Forwarded text.\r\nSecond line.\r\n"
INNER = part(INNER_HEADER, INNER_BODY)
RFC822_PART = part(b"Content-Type: message/rfc822\r\nContent-Description: a forwarded message\r\n", INNER)
TOP_HEADER = (b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: report\r\nMIME-Version: 1.0\r\n"
              b"Content-Type: multipart/mixed;\r\n boundary=\"=_mixed 1\"\r\n")
TOP_BODY = multipart(b"=_mixed 1", ALTERNATIVE, PDF_PART, RFC822_PART,
                     preamble=b"This is a multi-part message in MIME format.\r\n", epilogue=b"The end.\r\n")
MIXED = part(TOP_HEADER, TOP_BODY)


def test_multipart_tree_types_and_params():
    top = summarize(MIXED)["part"]
    assert (top["type"], top["subtype"], top["params"]) == ("multipart", "mixed", {"boundary": "=_mixed 1"})
    alternative, pdf, rfc822 = top["parts"]
    assert (alternative["type"], alternative["subtype"], alternative["params"]) == \
        ("multipart", "alternative", {"boundary": "alt-1"})
    plain, html = alternative["parts"]
    assert (plain["type"], plain["subtype"], plain["params"]) == ("text", "plain", {"charset": "utf-8"})
    assert plain["content-transfer-encoding"] == "quoted-printable"
    assert (html["type"], html["subtype"], html["params"]) == ("text", "html", {"charset": "utf-8"})
    assert (pdf["type"], pdf["subtype"], pdf["params"]) == ("application", "pdf", {"name": "report 2024.pdf"})
    assert pdf["content-disposition"] == 'attachment; filename="report 2024.pdf"'
    assert (pdf["content-transfer-encoding"], pdf["content-id"]) == ("base64", "<pdf@example.test>")
    assert (rfc822["type"], rfc822["subtype"]) == ("message", "rfc822")
    assert rfc822["content-description"] == "a forwarded message"
    assert rfc822["message"]["envelope"] == {"from": "carol@other.test", "subject": "inner"}
    inner = rfc822["message"]["part"]
    assert (inner["type"], inner["subtype"], inner["params"]) == ("text", "plain", {"charset": "iso-8859-1"})


def test_multipart_offsets_slice_each_part_exactly():
    top = summarize(MIXED)["part"]
    assert body_of(MIXED, top) == TOP_BODY
    alternative, pdf, rfc822 = top["parts"]
    plain, html = alternative["parts"]
    inner = rfc822["message"]["part"]
    for got, whole, body in [(alternative, ALTERNATIVE, ALTERNATIVE_BODY), (plain, PLAIN_PART, PLAIN),
                             (html, HTML_PART, HTML), (pdf, PDF_PART, PDF), (rfc822, RFC822_PART, INNER),
                             (inner, INNER, INNER_BODY)]:
        assert MIXED[got["header"][0]:got["body"][1]] == whole
        assert body_of(MIXED, got) == body
        assert got["header"][1] == got["body"][0]
        assert got["lines"] == body.count(b"\n")
    assert (plain["lines"], html["lines"], pdf["lines"], rfc822["lines"]) == (2, 1, 2, 6)


def test_multipart_without_boundary_is_a_leaf():
    top = summarize(part(b"Content-Type: multipart/mixed\r\n", b"--x\r\n\r\nhi\r\n--x--\r\n"))["part"]
    assert (top["type"], top["subtype"]) == ("multipart", "mixed") and "parts" not in top


def test_multipart_without_close_delimiter_ends_at_the_data():
    data = part(b"Content-Type: multipart/mixed; boundary=b\r\n", b"--b\r\n\r\none\r\n--b\r\n\r\ntwo, cut off")
    first, second = summarize(data)["part"]["parts"]
    assert body_of(data, first) == b"one" and body_of(data, second) == b"two, cut off"


def test_digest_parts_default_to_message_rfc822():
    body = multipart(b"d", part(b"", INNER), part(b"Content-Type: text/plain\r\n", b"note\r\n"))
    data = part(b"Content-Type: multipart/digest; boundary=d\r\n", body)
    first, second = summarize(data)["part"]["parts"]
    assert (first["type"], first["subtype"]) == ("message", "rfc822")
    assert first["message"]["envelope"]["subject"] == "inner"
    assert body_of(data, first["message"]["part"]) == INNER_BODY
    assert (second["type"], second["subtype"]) == ("text", "plain")


def test_empty_part_has_empty_offsets():
    """A delimiter line followed at once by the next: the part is empty (RFC 2046 §5.1.1)."""
    data = part(b"Content-Type: multipart/mixed; boundary=b\r\n", b"--b\r\n\r\n--b--\r\n")
    [empty] = summarize(data)["part"]["parts"]
    start = data.index(b"--b\r\n") + 5
    assert empty["header"] == [start, start] and empty["body"] == [start, start]


def test_deep_nesting_stops_without_error():
    data = b"Content-Type: message/rfc822\r\n\r\n" * 2000 + b"Subject: bottom\r\n\r\nx\r\n"
    summary = summarize(data)
    levels, node = 0, summary["part"]
    while "message" in node:
        levels, node = levels + 1, node["message"]["part"]
    assert 0 < levels < 100
    assert summarize_json(data).startswith('{"envelope":{}')


# Properties ---------------------------------------------------------------------------------

def check_offsets(data: bytes, node: dict, lower: int, upper: int) -> None:
    """Offsets in order, inside [lower, upper], children inside their parent's body."""
    (h0, h1), (b0, b1) = node["header"], node["body"]
    assert lower <= h0 <= h1 == b0 <= b1 <= upper, (node["header"], node["body"], lower, upper)
    assert node["lines"] == data.count(b"\n", b0, b1)
    previous_end = b0
    for child in node.get("parts", []):
        assert child["header"][0] >= previous_end
        check_offsets(data, child, b0, b1)
        previous_end = child["body"][1]
    if "message" in node:
        inner = node["message"]["part"]
        assert (inner["header"][0], inner["body"][1]) == (b0, b1)
        check_offsets(data, inner, b0, b1)


HEADERS = [b"Content-Type: multipart/mixed; boundary=b\r\n", b"Content-Type: multipart/digest; boundary=\"b\"\r\n",
           b"Content-Type: message/rfc822\r\n", b"Content-Type: text/plain; charset=\"a\\\"b\r\n",
           b"Subject: s\r\n", b" folded\r\n", b"From:"]
TOKENS = [b"\r\n", b"\r\n\r\n", b"--b\r\n", b"--b--\r\n", b"\r\n--b", b"--b", b"--", b"\n", b"\r", b"x", *HEADERS]
soup = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)), max_size=40).map(b"".join)
mime_soup = st.tuples(st.sampled_from(HEADERS[:3]), soup).map(lambda t: t[0] + b"\r\n" + t[1])


@settings(max_examples=500)
@given(st.one_of(st.binary(max_size=2000), mime_soup))
@example(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--b--\r\n")  # an empty part
def test_summarize_never_raises_and_offsets_stay_inside(data):
    summary = summarize(data)
    assert isinstance(summary["envelope"], dict)
    check_offsets(data, summary["part"], 0, len(data))
    summarize_json(data)
