"""Hostile input for every parser that reads what a client sends, and what each must do with it.

One ``Property`` per parser: a hypothesis strategy of inputs (raw bytes, and
grammar-aware soups that reach past the first check: literals, deep lists,
search keys, MIME nesting, addresses) and a check that the parser returns its
protocol's own error or a result, never raises anything else, and stays within
``memory_limit`` of its input's size (tracemalloc's peak: linear, not worse).

``tests/parsers/test_fuzz_parsers.py`` runs each with a modest number of
examples; ``bench/fuzz_parsers.py --examples N`` runs the same for longer.
"""

from __future__ import annotations

import encodings.aliases
import json
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hypothesis import strategies as st

from postar.auth import sasl
from postar.imap import fetch
from postar.imap.grammar import MAX_LIST_DEPTH, decode_mutf7, parse_sequence_set
from postar.imap.parser import (
    BadArguments, Command as ImapCommand, Invalid as ImapInvalid, astring, atom, mailbox_name, number,
    parenthesized, parse_command as parse_imap, sequence_set,
)
from postar.imap.search import Body, Candidate, Scope, SearchRequest, matches, parse_search
from postar.imap.sort_thread import Sortable, address_key, base_subject, display_key, parse_sort_criteria
from postar.message import MAX_DEPTH, MAX_PARTS, summarize, summarize_json
from postar.message.text import decode_text, decode_words, unbase64
from postar.pop3.parser import Command as PopCommand, ParseError, line_count, message_number, parse_command as parse_pop
from postar.smtp.params import MailParams, RcptParams, check_mail_params, check_rcpt_params
from postar.smtp.parser import (
    Invalid as SmtpInvalid, MailFrom, RcptTo, decode_xtext, parse_command as parse_smtp, parse_mailbox, parse_path,
    unstuff,
)
from postar.smtp.replies import Reply

MEMORY_BASE = 512 * 1024  # interpreter noise: regex caches, hypothesis' own bookkeeping
# Octets of peak allocation allowed per octet of input, about four times the worst seen in
# 5,000 examples each: a MIME summary holds a dict of ~1 KiB per part and a part can take 5
# octets; an IMAP token is an object of ~50 bytes for 1-2 octets.
PER_BYTE = {"smtp": 256, "pop3": 256, "text": 256, "imap": 1024, "address": 1024, "mime": 2048}


@contextmanager
def memory_limit(size: int, per_byte: int) -> Iterator[None]:
    """The block allocates at most MEMORY_BASE + per_byte * size at its peak."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1] - base
        assert peak <= MEMORY_BASE + per_byte * size, f"{peak} bytes at the peak for {size} of input"
    finally:
        if started:
            tracemalloc.stop()


@dataclass(frozen=True)
class Property:
    name: str
    inputs: st.SearchStrategy
    check: Callable[[object], None]


def soup(pieces: list[bytes], max_size: int = 40, run: int = 300) -> st.SearchStrategy[bytes]:
    """Grammar pieces, runs of up to ``run`` of one piece (deep nesting), and stray bytes, joined."""
    piece = st.one_of(st.sampled_from(pieces), st.binary(max_size=6),
                      st.tuples(st.sampled_from(pieces), st.integers(0, run)).map(lambda t: t[0] * t[1]))
    return st.lists(piece, max_size=max_size).map(b"".join)


# SMTP (RFC 5321 §4.1, RFC 3461, RFC 1870, RFC 4954) and SASL ---------------------------------------

SMTP_PIECES = [b"MAIL FROM:", b"RCPT TO:", b"EHLO ", b"HELO ", b"BDAT ", b"AUTH PLAIN ", b"DATA", b"VRFY ",
               b"<", b">", b"<>", b"@", b"@a,@b:", b'"', b"\\", b".", b"a", b"example.test", b"[127.0.0.1]",
               b" ", b"SIZE=", b"1048577", b"BODY=8BITMIME", b"SMTPUTF8", b"RET=HDRS", b"ENVID=", b"+2B", b"+",
               b"NOTIFY=", b"SUCCESS,DELAY", b"NEVER", b"ORCPT=rfc822;", b"AUTH=<>", b"=", b"\xc3\xa9", b"\r\n"]


def check_smtp(line: bytes) -> None:
    with memory_limit(len(line), PER_BYTE["smtp"]):
        command = parse_smtp(line)
        if isinstance(command, SmtpInvalid):
            assert 500 <= command.reply.code < 600 and command.reply.enhanced.startswith("5.")
        elif isinstance(command, MailFrom):
            assert isinstance(check_mail_params(command.params, 1048576), MailParams | Reply)
            if command.sender is not None:
                assert parse_mailbox(str(command.sender)) == command.sender  # what we log and write back parses
        elif isinstance(command, RcptTo):
            assert isinstance(check_rcpt_params(command.params), RcptParams | Reply)
        assert isinstance(unstuff(line), bytes)
        text = line.decode("utf-8", "replace")
        assert decode_xtext(text) is None or isinstance(decode_xtext(text), str)
        assert isinstance(sasl.parse_plain(text), sasl.Login | sasl.SASLError)
        assert isinstance(sasl.parse_login_field(text, "password"), str | sasl.SASLError)


# IMAP (RFC 9051 §9: command, literals, search, fetch-att, sort and thread criteria) ---------------

IMAP_PIECES = [b"a1 ", b"SEARCH ", b"UID SEARCH ", b"FETCH ", b"SELECT ", b"LOGIN ", b"SORT ", b"THREAD ",
               b"STORE ", b"APPEND ", b"LIST ", b"STATUS ", b"(", b")", b" ", b'"', b'\\"', b"\\", b"{3}\r\nabc",
               b"{5+}\r\nab", b"~{2}\r\n\x00\xff", b"{", b"}", b"~", b"[", b"]", b"<0.10>", b"BODY[", b"BODY.PEEK[",
               b"BINARY[", b"HEADER.FIELDS (FROM)", b"1.2.3", b"1.", b"MIME", b"TEXT", b"NOT ", b"OR ", b"ALL",
               b"SEEN", b"HEADER X y", b"BODY x", b"SINCE 1-Feb-1994", b"UID 1:*", b"1:*", b"$", b"*", b"0",
               b"CHARSET UTF-8 ", b"RETURN (MIN MAX SAVE) ", b"MODSEQ 5", b"LARGER 10", b"REFERENCES ", b"REVERSE",
               b"INBOX", b"&", b"&-", b"&Jjo-", b"~foo", b"\xff", b"\r\n", b"\x00", b"9" * 30]
SUMMARY = summarize(b"From: a@b\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                    b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n")
CANDIDATE = Candidate(msn=1, uid=1, flags=("\\Seen",), internal_date=0.0, size=100, modseq=1,
                      summary=SUMMARY, content=b"", prefix_length=0)
SCOPE = Scope(largest_msn=3, largest_uid=9)


deep_imap = st.tuples(st.sampled_from([b"a LOGIN ", b"a SEARCH ", b"a UID FETCH 1 ", b"a SORT "]),
                      st.integers(0, 30000), soup(IMAP_PIECES, 10), st.integers(0, 30000)).map(
    lambda t: t[0] + b"(" * t[1] + t[2] + b")" * t[3])  # the 30,000 "(", and near the bound


def _tokens(args: list) -> Iterator[object]:
    """Every token, lists included, without recursing (a list's depth comes along)."""
    stack = [(token, 1) for token in args]
    while stack:
        token, depth = stack.pop()
        assert depth <= MAX_LIST_DEPTH + 1
        yield token
        if isinstance(token, list):
            stack.extend((inner, depth + 1) for inner in token)


def _readers(token: object) -> None:
    """The argument readers raise BadArguments and nothing else."""
    for reader in (astring, atom, number, sequence_set, parenthesized,
                   lambda t: mailbox_name(t, True), lambda t: mailbox_name(t, False)):
        try:
            reader(token)
        except BadArguments:
            pass


def check_imap(data: bytes) -> None:
    with memory_limit(len(data), PER_BYTE["imap"]):
        command = parse_imap(data)
        if isinstance(command, ImapInvalid):
            assert command.reason and isinstance(command.tag, str)
            return
        assert isinstance(command, ImapCommand)
        for token in _tokens(command.args):
            _readers(token)
            if isinstance(token, str):
                attribute = fetch.parse_fetch_attribute(token)
                assert attribute is None or isinstance(fetch.response_name(attribute), str)
                fetch.expand_macro(token)
                parse_sequence_set(token)
                decode_mutf7(token)
        for start in range(min(len(command.args), 3)):  # SEARCH, SORT (crit) cs keys, THREAD alg cs keys
            request = parse_search(command.args[start:])
            if isinstance(request, SearchRequest):
                assert matches(request.key, CANDIDATE, SCOPE) in (True, False)
            else:
                assert isinstance(request, str) and request
        if command.args:
            parse_sort_criteria(command.args[0])


# POP3 (RFC 1939 §3, RFC 2449) ---------------------------------------------------------------------

POP_PIECES = [b"USER ", b"PASS ", b"RETR ", b"TOP ", b"LIST ", b"UIDL ", b"DELE ", b"CAPA", b"AUTH ", b"STLS",
              b"1", b"0", b"-1", b"4294967296", b"\xd9\xa1", b"\xc2\xb2", b" ", b"\t", b"\x7f", b"\xff"]


def check_pop3(line: bytes) -> None:
    with memory_limit(len(line), PER_BYTE["pop3"]):
        command = parse_pop(line)
        if isinstance(command, ParseError):
            assert command.reason
            return
        assert isinstance(command, PopCommand) and 3 <= len(command.verb) <= 4
        for arg in command.args:
            found = message_number(arg)
            assert found is None or found >= 1
            count = line_count(arg)
            assert count is None or count >= 0


# MIME (RFC 2045-2046), FETCH of its parts, SEARCH BODY ------------------------------------------

MIME_HEADERS = [b"Content-Type: multipart/mixed; boundary=b\r\n", b'Content-Type: multipart/digest; boundary="b"\r\n',
                b"Content-Type: message/rfc822\r\n", b'Content-Type: text/plain; charset="a\\"b\r\n',
                b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
                b"Content-Disposition: attachment; filename*0*=utf-8''%C3; filename*1=x\r\n",
                b"Subject: =?utf-8?b?w6k=?= =?x?q?=FF?=\r\n", b" folded\r\n", b"From:"]
MIME_PIECES = [b"\r\n", b"\r\n\r\n", b"--b\r\n", b"--b--\r\n", b"\r\n--b", b"--b", b"--", b"\n", b"\r", b"x",
               b"=\r\n", b"=4", b"\x00", *MIME_HEADERS]
SECTIONS = ["", "1", "1.1", "1.2.3", "2", "1.MIME", "HEADER", "TEXT", "1.HEADER", "1.TEXT",
            "HEADER.FIELDS (From Subject)", "1.HEADER.FIELDS.NOT (X)", "1." * 120 + "1", "99999999999", "0"]


def nested(levels: int, kind: int) -> bytes:
    """``levels`` parts each inside the last: multiparts with their own boundary, or messages."""
    if kind == 0:
        return b"Content-Type: message/rfc822\r\n\r\n" * levels + b"Subject: bottom\r\n\r\nneedle\r\n"
    # "b1." and "b10." (unlike "b1" and "b10"): no delimiter starts another one (RFC 2046 §5.1.1).
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d."\r\n\r\n--b%d.\r\n' % (i, i)
                       for i in range(levels))
    closing = b"".join(b"\r\n--b%d.--" % i for i in reversed(range(levels)))
    return opening + b"Content-Type: text/plain\r\n\r\nneedle" + closing + b"\r\n"


def _parts(summary: dict) -> Iterator[tuple[dict, int]]:
    stack = [(summary["part"], 0)]
    while stack:
        part, depth = stack.pop()
        yield part, depth
        stack.extend((child, depth + 1) for child in part.get("parts", []))
        if "message" in part:
            stack.append((part["message"]["part"], depth + 1))


def check_mime(data: bytes) -> None:
    with memory_limit(len(data), PER_BYTE["mime"]):
        summary = json.loads(summarize_json(data))
        assert summary == summarize(data)
        parts = list(_parts(summary))
        assert len(parts) <= MAX_PARTS and max(depth for _, depth in parts) < MAX_DEPTH
        for part, _ in parts:
            (h0, h1), (b0, b1) = part["header"], part["body"]
            assert 0 <= h0 <= h1 == b0 <= b1 <= len(data)
        for extensible in (False, True):
            structure = fetch.bodystructure(summary["part"], extensible)
            assert structure.startswith(b"(") and structure.endswith(b")")
        assert fetch.envelope(summary["envelope"]).startswith(b"(")
        for spec in SECTIONS:
            assert fetch.section(data, 0, summary, spec) is not None or fetch.parse_section(spec) is None
            fetch.binary(data, 0, summary, spec)
        candidate = Candidate(msn=1, uid=1, flags=(), internal_date=0.0, size=len(data), modseq=1,
                              summary=summary, content=data, prefix_length=0)
        for key in (Body("needle", False), Body("needle", True)):
            assert matches(key, candidate, SCOPE) in (True, False)


# Addresses (RFC 5322 §3.4 for ENVELOPE and SORT, RFC 5321 §4.1.2 for SMTP paths), RFC 2047 words ----

ADDRESS_PIECES = [b"a", b"@", b"<", b">", b",", b";", b":", b'"', b"\\", b"(", b")", b"[", b"]", b" ", b".",
                  b"bob@example.test", b"Bob <bob@x>", b"group: a@b, c@d;", b"<@a,@b:c@d>", b"(nested (comment))",
                  b"=?utf-8?q?Ren=C3=A9?=", b"=?x?b?AA?=", b"\xc3\xa9", b"\r\n "]
CHARSETS = sorted(set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())) + ["", "*", "utf-8*en"]


def check_address(raw: bytes) -> None:
    text = raw.decode("utf-8", "replace")
    with memory_limit(len(raw), PER_BYTE["address"]):
        for address in fetch.addresses(text):
            assert len(address) == 4 and all(part is None or isinstance(part, str) for part in address)
        envelope = {name: text for name in ("from", "sender", "reply-to", "to", "cc", "bcc", "subject", "date")}
        assert fetch.envelope(envelope).startswith(b"(")
        sortable = Sortable(msn=1, number=1, internal_date=0.0, size=0, envelope=envelope)
        address_key(sortable, "from"), display_key(sortable, "to"), base_subject(text)
        assert isinstance(decode_words(text), str)
        found = parse_path(text)
        assert found is None or parse_mailbox(str(found[0])) == found[0]


def check_text(case: tuple[bytes, str]) -> None:
    raw, charset = case
    with memory_limit(len(raw), PER_BYTE["text"]):
        assert isinstance(decode_text(raw, charset), str)
        assert isinstance(unbase64(raw), bytes)
        assert isinstance(decode_words(f"=?{charset}?b?{raw.hex()}?= =?{charset}?q?{raw.hex()}?="), str)


PROPERTIES = [
    Property("smtp", st.one_of(st.binary(max_size=300), soup(SMTP_PIECES)), check_smtp),
    Property("imap", st.one_of(st.binary(max_size=300), soup(IMAP_PIECES, run=3000), deep_imap), check_imap),
    Property("pop3", st.one_of(st.binary(max_size=100), soup(POP_PIECES, 10)), check_pop3),
    Property("mime", st.one_of(st.binary(max_size=2000), soup(MIME_PIECES),
                               st.tuples(st.integers(0, 400), st.integers(0, 1)).map(lambda t: nested(*t)),
                               st.tuples(st.sampled_from(MIME_HEADERS[:3]), soup(MIME_PIECES)).map(
                                   lambda t: t[0] + b"\r\n" + t[1])), check_mime),
    Property("address", st.one_of(st.binary(max_size=200), soup(ADDRESS_PIECES)), check_address),
    Property("text", st.tuples(st.binary(max_size=200), st.one_of(st.sampled_from(CHARSETS), st.text(max_size=12))),
             check_text),
]
