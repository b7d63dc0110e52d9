"""postar.imap.search: parsing every search key, matching real messages, the replies.

Parsing: each key of RFC 9051/3501 §6.4.4, RETURN (RFC 4731), CHARSET, MODSEQ
(RFC 7162), ``$`` (RFC 5182), and every kind of syntax error. Matching: messages
built as bytes and summarized as at delivery (encoded words, base64 and
quoted-printable bodies, multipart, attached messages, the server's prefix
lines), flags, OR/NOT nesting, sequence and UID sets with ``*``, dates at day
boundaries. Replies: ESEARCH and SEARCH lines byte for byte. Properties:
parse_search never raises on any token list, matches never on any message.
"""

from __future__ import annotations

import calendar
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postar.imap.grammar import SequenceSet, tokenize
from postar.imap.search import (
    BADCHARSET, And, Body, Candidate, Const, Day, Flag, Header, ModSeq, Not, Numbers, Or, Scope,
    SearchRequest, Size, decode_words, esearch_response, matches, parse_search, saved_result,
    search_response,
)
from postar.message import summarize

PREFIX = b"Return-Path: <sender@example.net>\r\nReceived: from mx.example.net by postar\r\n"


def parse(line: bytes | str) -> SearchRequest | str:
    """Tokenize as the server would; a str is sent as UTF-8."""
    return parse_search(tokenize(line.encode() if isinstance(line, str) else line))


def key(line: bytes | str):
    request = parse(line)
    assert isinstance(request, SearchRequest), request
    return request.key


def error(line: bytes) -> str:
    request = parse(line)
    assert isinstance(request, str), request
    return request


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return float(calendar.timegm((year, month, day, hour, minute, second)))


def candidate(data: bytes, msn: int = 1, uid: int = 1, flags: tuple[str, ...] = (),
              internal_date: float = utc(2024, 3, 10, 12), modseq: int = 1, prefix: bytes = PREFIX) -> Candidate:
    content = prefix + data
    return Candidate(msn=msn, uid=uid, flags=flags, internal_date=internal_date, size=len(content),
                     modseq=modseq, summary=summarize(data), content=content, prefix_length=len(prefix))


def found(line: bytes | str, message: Candidate, scope: Scope | None = None) -> bool:
    return matches(key(line), message, scope or Scope(largest_msn=5, largest_uid=50))


def message(*header: bytes, body: bytes = b"Hello world\r\n") -> bytes:
    return b"".join(line + b"\r\n" for line in header) + b"\r\n" + body


SIMPLE = message(b"From: =?utf-8?q?Ren=C3=A9_Dupont?= <rene@example.org>",
                 b"To: Alice <alice@example.com>, bob@example.com",
                 b"Cc: carol@example.com",
                 b"Subject: Quarterly\r\n report",
                 b"Date: Sun, 10 Mar 2024 23:30:00 -0800",
                 b"X-Mailer: Hand 1.0",
                 b"X-Mailer: Second 2.0")


# Parsing: each key ----------------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    (b"ALL", Const(True)),
    (b"ANSWERED", Flag("\\Answered", True)),
    (b"DELETED", Flag("\\Deleted", True)),
    (b"DRAFT", Flag("\\Draft", True)),
    (b"FLAGGED", Flag("\\Flagged", True)),
    (b"SEEN", Flag("\\Seen", True)),
    (b"UNANSWERED", Flag("\\Answered", False)),
    (b"UNDELETED", Flag("\\Deleted", False)),
    (b"UNDRAFT", Flag("\\Draft", False)),
    (b"UNFLAGGED", Flag("\\Flagged", False)),
    (b"UNSEEN", Flag("\\Seen", False)),
    (b"RECENT", Const(False)),
    (b"OLD", Not(Const(False))),
    (b"NEW", And((Const(False), Flag("\\Seen", False)))),
    (b"KEYWORD $Forwarded", Flag("$Forwarded", True)),
    (b"UNKEYWORD Junk", Flag("Junk", False)),
    (b"BCC boss", Header("bcc", "boss", address=True)),
    (b'CC "Carol Smith"', Header("cc", "carol smith", address=True)),
    (b"FROM {5}\r\nRen\xc3\xa9", Header("from", "rené", address=True)),
    (b'SUBJECT ""', Header("subject", "")),
    (b"TO Alice", Header("to", "alice", address=True)),
    (b'HEADER Message-ID "<abc@x>"', Header("message-id", "<abc@x>")),
    (b'HEADER "X-Spam" ""', Header("x-spam", "")),
    (b"BODY Hello", Body("hello", with_header=False)),
    (b'TEXT "Hello World"', Body("hello world", with_header=True)),
    (b"BEFORE 1-Feb-1994", Day(False, "before", date(1994, 2, 1))),
    (b'ON "01-feb-1994"', Day(False, "on", date(1994, 2, 1))),
    (b"SINCE 28-Dec-2023", Day(False, "since", date(2023, 12, 28))),
    (b"SENTBEFORE 1-Jan-2000", Day(True, "before", date(2000, 1, 1))),
    (b'SENTON "29-Feb-2024"', Day(True, "on", date(2024, 2, 29))),
    (b"SENTSINCE 31-DEC-1999", Day(True, "since", date(1999, 12, 31))),
    (b"LARGER 1000", Size(True, 1000)),
    (b"SMALLER 0", Size(False, 0)),
    (b"2:4,7", Numbers(SequenceSet(((2, 4), (7, 7))), uid=False)),
    (b"*", Numbers(SequenceSet(((None, None),)), uid=False)),
    (b"UID 10:*", Numbers(SequenceSet(((10, None),)), uid=True)),
    (b"$", Numbers(SequenceSet((), saved=True), uid=False)),
    (b"UID $", Numbers(SequenceSet((), saved=True), uid=True)),
    (b"MODSEQ 620162338", ModSeq(620162338)),
    (b'MODSEQ "/flags/\\\\draft" all 0', ModSeq(0)),
    (b'MODSEQ "/flags/$Junk" PRIV 5', ModSeq(5)),
    (b"NOT SEEN", Not(Flag("\\Seen", True))),
    (b"OR SEEN FLAGGED", Or(Flag("\\Seen", True), Flag("\\Flagged", True))),
    (b"(SEEN)", Flag("\\Seen", True)),
    (b"(SEEN FLAGGED)", And((Flag("\\Seen", True), Flag("\\Flagged", True)))),
])
def test_each_key(line: bytes, expected) -> None:
    assert key(line) == expected


def test_keys_are_case_insensitive() -> None:
    assert key(b"or seen Not fLaGgEd") == Or(Flag("\\Seen", True), Not(Flag("\\Flagged", True)))
    assert key(b"uid 1 sentsince 1-jan-2020") == And((Numbers(SequenceSet(((1, 1),)), uid=True),
                                                       Day(True, "since", date(2020, 1, 1))))


def test_keys_are_anded_and_nest() -> None:
    assert key(b'OR (FROM a TO b) NOT (OR SEEN (DELETED))') == Or(
        And((Header("from", "a", address=True), Header("to", "b", address=True))),
        Not(Or(Flag("\\Seen", True), Flag("\\Deleted", True))))
    assert key(b"1:3 UNSEEN") == And((Numbers(SequenceSet(((1, 3),)), uid=False), Flag("\\Seen", False)))


def test_return_options() -> None:
    assert parse(b"RETURN (MIN MAX) ALL").options == ("MIN", "MAX")
    assert parse(b"return (count save all) ALL").options == ("COUNT", "SAVE", "ALL")
    assert parse(b"RETURN () ALL").options == ("ALL",)
    assert parse(b"RETURN (MIN MIN) ALL").options == ("MIN",)
    assert parse(b"ALL").options == ()


def test_charset() -> None:
    for line in (b"CHARSET UTF-8 ALL", b"CHARSET us-ascii ALL", b'CHARSET "utf-8" ALL',
                 b"RETURN (COUNT) CHARSET UTF-8 ALL"):
        assert key(line) == Const(True)
    assert error(b"CHARSET KOI8-R ALL").startswith(BADCHARSET)
    assert error(b"CHARSET ISO-8859-1 ALL").startswith("BADCHARSET")


def test_needs_content_and_modseq() -> None:
    cheap = parse(b"FROM a SUBJECT b HEADER Message-ID c SENTON 1-Jan-2020 OR SEEN LARGER 5")
    assert not cheap.needs_content and not cheap.uses_modseq
    for line in (b"BODY x", b"TEXT x", b"HEADER X-Spam yes", b"NOT (OR SEEN BODY x)", b"HEADER Received x"):
        assert parse(line).needs_content, line
    assert parse(b"OR SEEN (NOT MODSEQ 5)").uses_modseq


# Parsing: errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("line, fragment", [
    (b"", "search key expected"),
    (b"RETURN (MIN)", "search key expected"),
    (b"CHARSET UTF-8", "search key expected"),
    (b"CHARSET", "charset expected"),
    (b"RETURN MIN ALL", "parenthesized"),
    (b"RETURN (PARTIAL 1:10) ALL", "unknown RETURN option PARTIAL"),
    (b"RETURN", "RETURN options expected"),
    (b"FOO", "unknown search key FOO"),
    (b'"SEEN"', "must be an atom"),
    (b"0", "unknown search key 0"),
    (b"1:2,", "unknown search key"),
    (b"()", "search key expected"),
    (b"FROM", "FROM string expected"),
    (b"FROM (a)", "not a list"),
    (b"HEADER Subject", "HEADER string expected"),
    (b"HEADER", "HEADER field name expected"),
    (b"BODY", "BODY string expected"),
    (b"TEXT", "TEXT string expected"),
    (b"KEYWORD", "KEYWORD flag expected"),
    (b'KEYWORD "x"', "KEYWORD flag expected"),
    (b"UNKEYWORD", "UNKEYWORD flag expected"),
    (b"LARGER", "LARGER size expected"),
    (b"LARGER -1", "LARGER size expected"),
    (b"SMALLER 1.5", "SMALLER size expected"),
    (b"SMALLER 99999999999999999999", "SMALLER size expected"),
    (b"BEFORE", "BEFORE date expected"),
    (b"BEFORE 1-Foo-2020", "BEFORE needs a date"),
    (b"ON 32-Jan-2020", "ON needs a date"),
    (b"SINCE 29-Feb-2023", "SINCE needs a date"),
    (b"SENTON 1-Jan-20", "SENTON needs a date"),
    (b"SENTSINCE 2020-01-01", "SENTSINCE needs a date"),
    (b"SENTBEFORE 1-Jan-0000", "SENTBEFORE needs a date"),
    (b"UID", "UID set expected"),
    (b"UID x", "UID set expected"),
    (b"UID 0", "UID set expected"),
    (b"MODSEQ", "MODSEQ value expected"),
    (b'MODSEQ "/flags/\\\\seen" everything 3', "MODSEQ entry type"),
    (b'MODSEQ "/flags/\\\\seen" all', "MODSEQ value expected"),
    (b"NOT", "search key expected"),
    (b"OR SEEN", "search key expected"),
    (b"NOT " * 100 + b"SEEN", "nested too deeply"),
    (b"(" * 80 + b"SEEN" + b")" * 80, "nested too deeply"),
])
def test_errors(line: bytes, fragment: str) -> None:
    assert fragment in error(line)


# Matching: headers ----------------------------------------------------------------------------

def test_from_matches_decoded_display_name_and_address() -> None:
    m = candidate(SIMPLE)
    assert found('FROM "rené dupont"', m)
    assert found('FROM "RENÉ"', m)
    assert found(b"FROM rene@EXAMPLE.org", m)
    assert found(b"FROM <rene@", m)
    assert not found(b"FROM alice", m)
    assert found(b"TO alice", m) and found(b"TO bob@example", m)
    assert found(b"CC carol", m) and not found(b"BCC carol", m)


def test_subject_encoded_words() -> None:
    q = candidate(message(b"Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?="))
    b = candidate(message(b"Subject: =?UTF-8?B?5pel5pys6Kqe?= =?utf-8?b?44Gn44GZ?= ok"))
    assert found('SUBJECT "café crème"', q)
    assert found('SUBJECT "CAFÉ CRÈME"', q)
    assert found(b'SUBJECT "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xa7\xe3\x81\x99 ok"', b)  # words joined
    assert not found(b"SUBJECT =?UTF-8?B?", b)


def test_decode_words_edge_cases() -> None:
    assert decode_words("=?utf-8?q?a?=  =?utf-8?q?b?=") == "ab"
    assert decode_words("=?utf-8?q?a?= x =?utf-8?q?b?=") == "a x b"
    assert decode_words("Réné =?iso-8859-1?q?Andr=E9?=") == "Réné André"
    assert decode_words("=?x-unknown?q?caf=E9?=") == "café"  # unknown charset: UTF-8, then Latin-1
    assert decode_words("=?utf-8*en?Q?hi?=") == "hi"  # RFC 2231 language suffix
    assert decode_words("=?utf-8?b?!!!?=") == ""


def test_folded_subject_is_unfolded() -> None:
    assert found(b'SUBJECT "quarterly report"', candidate(SIMPLE))


def test_header_presence_and_fields_outside_the_envelope() -> None:
    m = candidate(SIMPLE)
    assert found(b'HEADER X-Mailer ""', m)
    assert found(b"HEADER x-mailer second", m)  # every occurrence, not just the first
    assert not found(b'HEADER X-Spam ""', m)
    assert found(b'HEADER Subject ""', m) and not found(b'HEADER In-Reply-To ""', m)
    assert found(b"HEADER Received mx.example.net", m)  # the server's own lines count
    assert found(b'HEADER Return-Path "<sender@"', m)
    assert not found(b"HEADER Received x", candidate(SIMPLE, prefix=b""))


def test_header_without_content_does_not_match() -> None:
    m = candidate(SIMPLE)
    bare = Candidate(m.msn, m.uid, m.flags, m.internal_date, m.size, m.modseq, m.summary)
    assert not found(b'HEADER X-Mailer ""', bare)
    assert found(b"FROM rene", bare)


# Matching: bodies ------------------------------------------------------------------------------

def test_body_plain_and_text() -> None:
    m = candidate(SIMPLE)
    assert found(b"BODY WORLD", m)
    assert not found(b"BODY Quarterly", m)  # BODY is not the header
    assert found(b"TEXT Quarterly", m) and found(b"TEXT world", m)
    assert found(b'TEXT "subject: quarterly report"', m)
    assert found('TEXT "rené dupont"', m)  # header text is decoded too
    assert found(b"TEXT mx.example.net", m)


def test_body_base64_and_quoted_printable() -> None:
    b64 = candidate(message(b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: base64",
                            body=b"R3LDvMOfZSBhdXMgTcO8bmNoZW4=\r\n"))
    qp = candidate(message(b"Content-Type: text/plain; charset=iso-8859-1",
                           b"Content-Transfer-Encoding: Quoted-Printable",
                           body=b"Gr=FC=DFe aus M=FCn=\r\nchen\r\n"))
    for m in (b64, qp):
        assert found(b'BODY "gr\xc3\xbc\xc3\x9fe aus m\xc3\xbcnchen"', m)
    assert not found(b"BODY R3LDvMOf", b64)
    assert not found(b"BODY =FC", qp)


def test_body_charsets() -> None:
    latin = candidate(message(b"Content-Type: text/plain; charset=windows-1252", body=b"na\xefve \x80\r\n"))
    unknown = candidate(message(b"Content-Type: text/plain; charset=x-bogus", body=b"caf\xc3\xa9\r\n"))
    mislabeled = candidate(message(body=b"caf\xc3\xa9\r\n"))  # us-ascii by default, UTF-8 in fact
    assert found(b'BODY "na\xc3\xafve \xe2\x82\xac"', latin)
    assert found(b'BODY "caf\xc3\xa9"', unknown)
    assert found(b'BODY "CAF\xc3\x89"', mislabeled)


MULTIPART = message(
    b"From: a@example.org", b"Subject: parts", b'Content-Type: multipart/mixed; boundary="XX"',
    body=b"preamble needle-pre\r\n"
         b"--XX\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
         b"--XX\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
         b"PHA+c2Vjb25kIHBhcnQ8L3A+\r\n"
         b"--XX\r\nContent-Type: application/octet-stream\r\n\r\nbinary needle-attachment\r\n"
         b"--XX\r\nContent-Type: message/rfc822\r\n\r\n"
         b"Subject: =?utf-8?q?inner_subj=C3=A9ct?=\r\n\r\ninner body\r\n"
         b"--XX--\r\nepilogue\r\n")


def test_multipart() -> None:
    m = candidate(MULTIPART)
    assert found(b"BODY first", m)
    assert found(b'BODY "<p>second part</p>"', m)
    assert found(b'BODY "inner body"', m)
    assert found('BODY "inner subjéct"', m)  # an attached message's header is the outer body
    assert not found(b"BODY needle-attachment", m)  # not text
    assert not found(b"BODY needle-pre", m)  # preamble
    assert found(b'SUBJECT "parts"', m) and not found(b"SUBJECT inner", m)
    assert found(b'OR BODY nothing TEXT "subject: parts"', m)


# Matching: flags, sizes, numbers, dates, modseq --------------------------------------------------

def test_flags() -> None:
    m = candidate(SIMPLE, flags=("\\Seen", "\\Flagged", "$Forwarded"))
    assert found(b"SEEN FLAGGED UNANSWERED UNDELETED UNDRAFT", m)
    assert not found(b"UNSEEN", m) and not found(b"DELETED", m)
    assert found(b"KEYWORD $forwarded", m) and found(b"UNKEYWORD Junk", m)
    assert not found(b"KEYWORD junk", m)
    assert not found(b"RECENT", m) and not found(b"NEW", m) and found(b"OLD", m)
    assert not found(b"NEW", candidate(SIMPLE))


def test_or_not_nesting() -> None:
    m = candidate(SIMPLE, flags=("\\Seen",))
    assert found(b"OR FLAGGED SEEN", m)
    assert not found(b"NOT OR FLAGGED SEEN", m)
    assert found(b"NOT NOT SEEN", m)
    assert found(b"OR (FLAGGED FROM rene) (SEEN NOT DELETED)", m)
    assert not found(b"OR (FLAGGED FROM rene) (SEEN DELETED)", m)
    assert found(b"NOT (OR DELETED (UNSEEN))", m)


def test_sizes() -> None:
    m = candidate(SIMPLE)
    assert found(b"LARGER %d" % (m.size - 1), m) and not found(b"LARGER %d" % m.size, m)
    assert found(b"SMALLER %d" % (m.size + 1), m) and not found(b"SMALLER %d" % m.size, m)


def test_sequence_sets_with_star() -> None:
    scope = Scope(largest_msn=5, largest_uid=50)
    msns = lambda line: [n for n in range(1, 6) if found(line, candidate(SIMPLE, msn=n, uid=n * 10), scope)]
    assert msns(b"*") == [5]
    assert msns(b"2:*") == [2, 3, 4, 5]
    assert msns(b"*:4") == [4, 5]
    assert msns(b"1,3:2") == [1, 2, 3]
    assert msns(b"7:*") == [5]  # 7:* is 5:7 when 5 is the largest
    assert msns(b"UID 20:30") == [2, 3]
    assert msns(b"UID *") == [5]
    assert msns(b"UID 45:*") == [5]
    assert msns(b"UID 1:19,40") == [1, 4]
    assert msns(b"NOT 2:4") == [1, 5]


def test_saved_result_dollar() -> None:
    messages = [candidate(SIMPLE, msn=n, uid=n * 10) for n in range(1, 4)]
    saved = Scope(3, 30, saved={10, 30})
    assert [m.msn for m in messages if found(b"$", m, saved)] == [1, 3]
    assert [m.msn for m in messages if found(b"UID $", m, saved)] == [1, 3]
    assert [m.msn for m in messages if found(b"$", m, Scope(3, 30))] == []  # nothing saved: empty


def test_internal_date_day_boundaries() -> None:
    late = candidate(SIMPLE, internal_date=utc(2024, 3, 10, 23, 59, 59))
    early = candidate(SIMPLE, internal_date=utc(2024, 3, 11, 0, 0, 0))
    assert found(b"ON 10-Mar-2024", late) and not found(b"ON 10-Mar-2024", early)
    assert found(b"ON 11-Mar-2024", early)
    assert found(b"BEFORE 11-Mar-2024", late) and not found(b"BEFORE 11-Mar-2024", early)
    assert found(b"SINCE 11-Mar-2024", early) and not found(b"SINCE 11-Mar-2024", late)
    assert found(b"SINCE 10-Mar-2024", late) and not found(b"BEFORE 10-Mar-2024", late)


def test_sent_dates_use_the_date_header_in_its_own_zone() -> None:
    m = candidate(SIMPLE, internal_date=utc(2020, 1, 1))  # Date: 10 Mar 2024 23:30 -0800 is 11 Mar UTC
    assert found(b"SENTON 10-Mar-2024", m)
    assert not found(b"SENTON 11-Mar-2024", m)
    assert found(b"SENTBEFORE 11-Mar-2024", m) and not found(b"SENTBEFORE 10-Mar-2024", m)
    assert found(b"SENTSINCE 10-Mar-2024", m) and not found(b"SENTSINCE 11-Mar-2024", m)
    assert not found(b"ON 10-Mar-2024", m)


def test_sent_dates_without_a_date_never_match() -> None:
    for data in (message(b"Subject: x"), message(b"Date: someday soon")):
        m = candidate(data)
        for line in (b"SENTON 10-Mar-2024", b"SENTBEFORE 1-Jan-9999", b"SENTSINCE 1-Jan-1900"):
            assert not found(line, m)
        assert found(b"NOT SENTSINCE 1-Jan-1900", m)


def test_modseq() -> None:
    m = candidate(SIMPLE, modseq=917)
    assert found(b"MODSEQ 917", m) and found(b"MODSEQ 0", m) and not found(b"MODSEQ 918", m)


# Replies ---------------------------------------------------------------------------------------

def test_esearch_response() -> None:  # RFC 4731 §3.1 examples
    assert esearch_response("A282", False, [2, 10, 11], ("MIN", "COUNT")) == b'* ESEARCH (TAG "A282") MIN 2 COUNT 3\r\n'
    assert (esearch_response("A283", False, [11, 2, 10, 3, 4], ("ALL",))
            == b'* ESEARCH (TAG "A283") ALL 2:4,10:11\r\n')
    assert (esearch_response("A284", True, [4, 7, 9], ("MIN", "MAX", "COUNT", "ALL"))
            == b'* ESEARCH (TAG "A284") UID MIN 4 MAX 9 COUNT 3 ALL 4,7,9\r\n')
    assert esearch_response("A285", False, [3], ()) == b'* ESEARCH (TAG "A285") ALL 3\r\n'


def test_esearch_nothing_found() -> None:
    assert (esearch_response("A1", True, [], ("MIN", "MAX", "COUNT", "ALL"))
            == b'* ESEARCH (TAG "A1") UID COUNT 0\r\n')
    assert esearch_response("A2", False, [], ("ALL",)) == b'* ESEARCH (TAG "A2")\r\n'


def test_esearch_save_and_modseq() -> None:
    assert esearch_response("A1", False, [1, 2], ("SAVE",)) == b""
    assert esearch_response("A1", False, [1, 2], ("SAVE", "MIN")) == b'* ESEARCH (TAG "A1") MIN 1\r\n'
    modseqs = {1: 50, 2: 90, 3: 70}
    assert (esearch_response("A2", False, [1, 2, 3], ("MIN", "MAX"), modseqs)
            == b'* ESEARCH (TAG "A2") MIN 1 MAX 3 MODSEQ 70\r\n')  # the messages returned
    assert (esearch_response("A3", False, [1, 2, 3], ("COUNT",), modseqs)
            == b'* ESEARCH (TAG "A3") COUNT 3 MODSEQ 90\r\n')
    assert esearch_response("A4", False, [], ("COUNT",), modseqs) == b'* ESEARCH (TAG "A4") COUNT 0\r\n'


def test_saved_result() -> None:
    assert saved_result([3, 5, 9], ("SAVE",)) == {3, 5, 9}
    assert saved_result([3, 5, 9], ("SAVE", "MIN")) == {3}
    assert saved_result([3, 5, 9], ("MAX", "SAVE", "MIN")) == {3, 9}
    assert saved_result([3, 5, 9], ("SAVE", "MIN", "COUNT")) == {3, 5, 9}
    assert saved_result([], ("SAVE", "MIN")) == set()


def test_search_response() -> None:
    assert search_response([2, 3, 5], None) == b"* SEARCH 2 3 5\r\n"
    assert search_response([5, 2], 917) == b"* SEARCH 2 5 (MODSEQ 917)\r\n"  # RFC 7162 §3.1.5
    assert search_response([], 917) == b"* SEARCH\r\n"


# Properties ------------------------------------------------------------------------------------

_WORDS = st.sampled_from(["ALL", "NOT", "OR", "FROM", "HEADER", "BODY", "TEXT", "UID", "MODSEQ", "RETURN",
                          "CHARSET", "UTF-8", "BEFORE", "SENTON", "1-Feb-1994", "LARGER", "KEYWORD", "$",
                          "*", "1:*", "MIN", "SAVE", "priv", "all", "0", "99999999999999999999", "(", "\\Seen"])
_TOKENS = st.recursive(
    st.one_of(_WORDS, st.text(max_size=12), st.binary(max_size=12)),
    lambda inner: st.lists(inner, max_size=5), max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(st.lists(_TOKENS, max_size=12))
def test_parse_search_never_raises(tokens: list) -> None:
    result = parse_search(tokens)
    assert isinstance(result, (str, SearchRequest))


_HEADER_LINES = st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=b", b"Content-Type: text/plain; charset=utf-16",
    b"Content-Type: message/rfc822", b"Content-Type: text/html; charset=\"rot13\"",
    b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable",
    b"Subject: =?utf-8?b?=?= =?x?q?=ZZ?=", b"From: =?\xff?B?AAA?=", b"Date: Mon, 99 Foo 0 99:99 +9999",
    b"Date: 1 Jan 1", b" folded", b"--b", b"--b--", b"", b"X-Mailer: z"])
_MESSAGES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(_HEADER_LINES, st.binary(max_size=30)), max_size=20).map(b"\r\n".join))
_PROBES = [key(line) for line in (
    b'TEXT "z"', b"BODY a", b'HEADER X-Mailer ""', b"FROM x", b"SUBJECT a", b"SENTON 1-Jan-2001",
    b"SENTBEFORE 1-Jan-2001", b"SINCE 1-Jan-2001", b"OR $ UID 1:*", b"NOT (LARGER 3 KEYWORD k MODSEQ 2)")]


@settings(max_examples=300, deadline=None)
@given(_MESSAGES, st.binary(max_size=40), st.floats(allow_nan=True, allow_infinity=True))
def test_matches_never_raises(data: bytes, prefix: bytes, when: float) -> None:
    m = Candidate(msn=1, uid=1, flags=("\\Seen",), internal_date=when, size=len(prefix + data), modseq=1,
                  summary=summarize(data), content=prefix + data, prefix_length=len(prefix))
    for probe in _PROBES:
        assert matches(probe, m, Scope(1, 1, saved=None)) in (True, False)
