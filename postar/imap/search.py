"""SEARCH and UID SEARCH: parse the criteria, test one message, render the answer.

RFC 9051 §6.4.4 and RFC 3501 §6.4.4 (search keys), RFC 4466 §2.6 (RETURN before
CHARSET), RFC 4731 (ESEARCH result options and response), RFC 5182 (SAVE and
``$``), RFC 7162 §3.1.5 (the MODSEQ key and result item).

Pure code: ``parse_search`` turns the command's tokens into a ``SearchRequest``
(or the text of a BAD), ``matches`` tests one ``Candidate`` against its key
tree, and the two ``*_response`` functions render the reply. The caller reads
the message bytes only when ``SearchRequest.needs_content`` says so.

Choices where the RFCs leave room: strings match as case-insensitive substrings
after RFC 2047 decoding; FROM, TO, CC and BCC look in the addresses written back
plainly, HEADER in the field's text, and both in every occurrence of an address
field (as Dovecot); BODY looks only at text/* parts (after undoing base64
and quoted-printable) and the headers of attached messages; BEFORE/ON/SINCE
take the internal date's calendar day in UTC; there is no \\Recent, so RECENT
and NEW match nothing and OLD everything.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email.utils import parsedate_tz

from postar.imap.grammar import SequenceSet, Token, format_sequence, parse_sequence_set, quoted
from postar.message import ENVELOPE_FIELDS, MAX_DEPTH
from postar.message.addresses import address_text
from postar.message.text import decode_text, decode_words, unbase64, unquote_printable

BADCHARSET = "BADCHARSET (US-ASCII UTF-8)"  # the response code; parse_search's error starts with it
RETURN_OPTIONS = ("MIN", "MAX", "ALL", "COUNT", "SAVE")  # RFC 4731 §3.1, RFC 5182 §2.1
# NOT/OR/parentheses nesting, so a hostile command cannot exhaust the stack: parsing and
# matching recurse two or three frames a level. The tokenizer already stops lists at
# grammar.MAX_LIST_DEPTH (100); a chain of NOT or OR needs no list, so it is counted here.
_MAX_DEPTH = 64


# The key tree --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Const:
    value: bool  # ALL (True); RECENT (False)


@dataclass(frozen=True)
class Flag:
    flag: str
    present: bool  # SEEN vs UNSEEN, KEYWORD vs UNKEYWORD


@dataclass(frozen=True)
class Header:
    field: str  # lower case
    text: str   # casefolded; "" matches every message having the field
    address: bool = False  # FROM, TO, CC, BCC: the addresses, written back plainly


@dataclass(frozen=True)
class Body:
    text: str  # casefolded
    with_header: bool  # TEXT (header and body) vs BODY


@dataclass(frozen=True)
class Day:
    sent: bool  # SENT* (Date header) vs internal date
    compare: str  # "before", "on", "since"
    day: date


@dataclass(frozen=True)
class Size:
    larger: bool
    octets: int


@dataclass(frozen=True)
class Numbers:
    numbers: SequenceSet
    uid: bool


@dataclass(frozen=True)
class ModSeq:
    value: int


@dataclass(frozen=True)
class Not:
    key: Key


@dataclass(frozen=True)
class Or:
    left: Key
    right: Key


@dataclass(frozen=True)
class And:
    keys: tuple[Key, ...]


Key = Const | Flag | Header | Body | Day | Size | Numbers | ModSeq | Not | Or | And


@dataclass(frozen=True)
class SearchRequest:
    key: Key
    options: tuple[str, ...] = ()  # RETURN options, upper case; () when there was no RETURN
    needs_content: bool = False    # some key reads the message bytes, not just the summary
    uses_modseq: bool = False      # RFC 7162 §3.1.5: the reply carries the highest MODSEQ
    needs_details: bool = True     # some key reads more than flags, numbers and modseq


@dataclass(frozen=True)
class Candidate:
    msn: int
    uid: int
    flags: tuple[str, ...]
    internal_date: float  # epoch seconds
    size: int             # octets of header_prefix + data
    modseq: int
    summary: dict         # postar.message.summarize(data)
    content: bytes | None = None  # header_prefix + data, when needs_content
    prefix_length: int = 0        # len(header_prefix): shifts the summary's offsets


@dataclass(frozen=True)
class Scope:
    largest_msn: int  # what "*" means in a sequence set
    largest_uid: int  # ... and in a UID set
    saved: frozenset[int] | set[int] | None = None  # RFC 5182 "$", as UIDs


# Parsing (RFC 9051 §9: search, search-program, search-key) -----------------------------------

class _Bad(ValueError):
    """Syntax error inside parse_search; it never leaves this module."""


class _Reader:
    def __init__(self, tokens: list[Token]):
        self.tokens, self.position = tokens, 0

    def more(self) -> bool:
        return self.position < len(self.tokens)

    def peek(self) -> str:
        """The next token upper-cased when it is an atom, else ""."""
        token = self.tokens[self.position] if self.more() else None
        return token.upper() if isinstance(token, str) else ""

    def take(self, what: str) -> Token:
        if not self.more():
            raise _Bad(f"{what} expected")
        self.position += 1
        return self.tokens[self.position - 1]

    def astring(self, what: str) -> str:
        token = self.take(what)
        if isinstance(token, list):
            raise _Bad(f"{what} expected, not a list")
        return token.decode("utf-8", "replace") if isinstance(token, bytes) else token

    def atom(self, what: str) -> str:
        token = self.take(what)
        if not isinstance(token, str):
            raise _Bad(f"{what} expected")
        return token

    def number(self, what: str) -> int:
        text = self.atom(what)
        if not re.fullmatch(r"[0-9]{1,19}", text) or int(text) > 2**63 - 1:  # number64
            raise _Bad(f"{what} expected, not {text[:40]}")
        return int(text)

    def day(self, name: str) -> date:
        """RFC 9051 §9 date: d-Mon-yyyy, as an atom or quoted."""
        text = self.astring(f"{name} date")
        match = re.fullmatch(r"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})", text)
        if match and match.group(2).lower() in _MONTHS:
            try:
                return date(int(match.group(3)), _MONTHS[match.group(2).lower()], int(match.group(1)))
            except ValueError:  # 31-Feb, year 0
                pass
        raise _Bad(f"{name} needs a date like 1-Feb-1994, not {text[:40]}")

    def sequence(self, what: str) -> SequenceSet:
        text = self.atom(what)
        numbers = parse_sequence_set(text)
        if numbers is None:
            raise _Bad(f"{what} expected, not {text[:40]}")
        return numbers


_MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_RECENT = Const(False)  # this server keeps no \Recent (RFC 9051 §2.3.2 dropped it)
_SYSTEM_FLAGS = ("Answered", "Deleted", "Draft", "Flagged", "Seen")
_CONSTANT: dict[str, Key] = {
    "ALL": Const(True), "RECENT": _RECENT, "OLD": Not(_RECENT),
    "NEW": And((_RECENT, Flag("\\Seen", False))),  # RFC 3501: RECENT UNSEEN
    **{name.upper(): Flag("\\" + name, True) for name in _SYSTEM_FLAGS},
    **{"UN" + name.upper(): Flag("\\" + name, False) for name in _SYSTEM_FLAGS},
}
_DATES = {"BEFORE": (False, "before"), "ON": (False, "on"), "SINCE": (False, "since"),
          "SENTBEFORE": (True, "before"), "SENTON": (True, "on"), "SENTSINCE": (True, "since")}


def _modseq(reader: _Reader, depth: int) -> ModSeq:
    """RFC 7162 §3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer.

    There is one modseq per message here, so the entry (a flag's metadata name) is checked
    for syntax and otherwise ignored, as RFC 7162 allows a server without per-flag modseqs.
    """
    if reader.more() and isinstance(reader.tokens[reader.position], bytes):
        reader.take("MODSEQ entry name")
        kind = reader.atom("MODSEQ entry type").lower()
        if kind not in ("priv", "shared", "all"):
            raise _Bad(f"MODSEQ entry type must be priv, shared or all, not {kind[:40]}")
    return ModSeq(reader.number("MODSEQ value"))


_WITH_ARGUMENTS: dict[str, Callable[[_Reader, int], Key]] = {
    **{name: (lambda r, d, f=name.lower(): Header(f, r.astring(f"{f.upper()} string").casefold(),
                                                  address=f != "subject"))
       for name in ("BCC", "CC", "FROM", "SUBJECT", "TO")},
    **{name: (lambda r, d, n=name, how=how: Day(how[0], how[1], r.day(n))) for name, how in _DATES.items()},
    "HEADER": lambda r, d: Header(r.astring("HEADER field name").lower(), r.astring("HEADER string").casefold()),
    "BODY": lambda r, d: Body(r.astring("BODY string").casefold(), with_header=False),
    "TEXT": lambda r, d: Body(r.astring("TEXT string").casefold(), with_header=True),
    "KEYWORD": lambda r, d: Flag(r.atom("KEYWORD flag"), True),
    "UNKEYWORD": lambda r, d: Flag(r.atom("UNKEYWORD flag"), False),
    "LARGER": lambda r, d: Size(True, r.number("LARGER size")),
    "SMALLER": lambda r, d: Size(False, r.number("SMALLER size")),
    "UID": lambda r, d: Numbers(r.sequence("UID set"), uid=True),
    "MODSEQ": _modseq,
    "NOT": lambda r, d: Not(_search_key(r, d + 1)),
    "OR": lambda r, d: Or(_search_key(r, d + 1), _search_key(r, d + 1)),
}


def _search_key(reader: _Reader, depth: int) -> Key:
    if depth > _MAX_DEPTH:
        raise _Bad("search criteria nested too deeply")
    token = reader.take("search key")
    if isinstance(token, list):  # "(" search-key *(SP search-key) ")"
        return _program(_Reader(token), depth + 1)
    if isinstance(token, bytes):
        raise _Bad("a search key must be an atom, not a string")
    name = token.upper()
    if name in _CONSTANT:
        return _CONSTANT[name]
    if name in _WITH_ARGUMENTS:
        return _WITH_ARGUMENTS[name](reader, depth)
    numbers = parse_sequence_set(token)
    if numbers is None:
        raise _Bad(f"unknown search key {token[:40]}")
    return Numbers(numbers, uid=False)


def _program(reader: _Reader, depth: int) -> Key:
    keys = [_search_key(reader, depth)]
    while reader.more():
        keys.append(_search_key(reader, depth))
    return keys[0] if len(keys) == 1 else And(tuple(keys))


def _return_options(reader: _Reader) -> tuple[str, ...]:
    """RFC 4731 §3.1: RETURN (option ...); an empty list means ALL."""
    if reader.peek() != "RETURN":
        return ()
    reader.take("RETURN")
    listed = reader.take("RETURN options")
    if not isinstance(listed, list):
        raise _Bad("RETURN needs a parenthesized list of options")
    options: list[str] = []
    for option in listed:
        name = option.upper() if isinstance(option, str) else ""
        if name not in RETURN_OPTIONS:
            raise _Bad(f"unknown RETURN option {str(option)[:40]}")
        if name not in options:
            options.append(name)
    return tuple(options) or ("ALL",)


def _walk(key: Key) -> Iterator[Key]:
    yield key
    match key:
        case Not(inner):
            yield from _walk(inner)
        case Or(left, right):
            yield from _walk(left)
            yield from _walk(right)
        case And(keys):
            for each in keys:
                yield from _walk(each)


def parse_search(args: list) -> SearchRequest | str:
    """The arguments after SEARCH / UID SEARCH; a string is the text of a BAD (or BADCHARSET NO)."""
    reader = _Reader(args)
    try:
        options = _return_options(reader)
        if reader.peek() == "CHARSET":
            reader.take("CHARSET")
            charset = reader.astring("charset")
            if charset.upper() not in ("UTF-8", "US-ASCII"):
                return f"{BADCHARSET} charset {charset[:40]} is not supported"
        key = _program(reader, 0)
    except _Bad as e:
        return str(e)
    nodes = list(_walk(key))
    return SearchRequest(
        key, options,
        needs_content=any(isinstance(n, Body) or (isinstance(n, Header) and n.field not in ENVELOPE_FIELDS)
                          for n in nodes),
        uses_modseq=any(isinstance(n, ModSeq) for n in nodes),
        needs_details=any(isinstance(n, (Header, Body, Day, Size)) for n in nodes))


# Reading a message: headers, RFC 2047 words, body text ---------------------------------------

def _fields(block: bytes) -> list[tuple[str, str]]:
    """Every header field as (lower-case name, unfolded value), in order (RFC 5322 §2.2.3)."""
    fields: list[tuple[str, str]] = []
    for line in re.split(r"\r?\n", block.decode("utf-8", "replace")):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + line)
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append((name.strip().lower(), value.strip()))
    return fields


def _header_text(block: bytes) -> str:
    return "\n".join(f"{name}: {decode_words(value)}" for name, value in _fields(block)).casefold()


def _full_header(message: Candidate) -> bytes:
    """The top-level header as clients see it: the server's lines, then the sender's."""
    end = message.summary.get("part", {}).get("header", [0, 0])[1]
    return _content_slice(message, [-message.prefix_length, end])


def _content_slice(message: Candidate, span: object) -> bytes:
    if message.content is None or not isinstance(span, list) or len(span) != 2:
        return b""
    return message.content[message.prefix_length + span[0]:message.prefix_length + span[1]]


def _body_texts(message: Candidate, part: dict, depth: int = 0) -> Iterator[str]:
    """The text of each text/* leaf below ``part``, and the header of each attached message.

    No deeper than ``summarize`` nests (MAX_DEPTH), whatever the summary holds.
    """
    if depth >= MAX_DEPTH:
        return
    if "parts" in part:
        for child in part["parts"]:
            yield from _body_texts(message, child, depth + 1)
    elif "message" in part:
        inner = part["message"].get("part", {})
        yield _header_text(_content_slice(message, inner.get("header")))
        yield from _body_texts(message, inner, depth + 1)
    elif part.get("type") == "text":
        raw = _content_slice(message, part.get("body"))
        encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
        if encoding == "base64":
            raw = unbase64(raw)
        elif encoding == "quoted-printable":
            raw = unquote_printable(raw)
        yield decode_text(raw, str(part.get("params", {}).get("charset", "us-ascii"))).casefold()


def _sent_day(message: Candidate) -> date | None:
    """The calendar day of the Date header in its own zone (RFC 9051 §6.4.4), None if unreadable."""
    value = message.summary.get("envelope", {}).get("date")
    try:
        parsed = parsedate_tz(value) if isinstance(value, str) else None
        return date(*parsed[:3]) if parsed else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _internal_day(message: Candidate) -> date | None:
    try:
        return datetime.fromtimestamp(message.internal_date, timezone.utc).date()
    except (OverflowError, OSError, ValueError):
        return None


# Matching --------------------------------------------------------------------------------------

def _header_values(message: Candidate, field: str) -> list[str]:
    envelope = message.summary.get("envelope", {})
    if field in ENVELOPE_FIELDS:  # parsed at delivery: the first occurrence, every one of an address field
        value = envelope.get(field)
        return [value] if isinstance(value, str) else []
    return [value for name, value in _fields(_full_header(message)) if name == field]


def _match_header(key: Header, message: Candidate, scope: Scope) -> bool:
    """HEADER looks in the field's text; FROM, TO, CC and BCC in its addresses as ENVELOPE
    has them, written back without comments, quotes or routes, as Dovecot searches them: so
    FROM user@x finds "user(comment)@x", "user @ x" and "\"user\"@x", and a comment before
    the address names nothing (RFC 9051 §6.4.4: "the envelope structure's FROM field")."""
    values = _header_values(message, key.field)
    if key.address:
        values = [address_text(value) for value in values]
    return any(key.text in decode_words(value).casefold() for value in values)


def _match_body(key: Body, message: Candidate, scope: Scope) -> bool:
    if key.with_header and key.text in _header_text(_full_header(message)):
        return True
    return any(key.text in text for text in _body_texts(message, message.summary.get("part", {})))


_COMPARE = {"before": operator.lt, "on": operator.eq, "since": operator.ge}


def _match_day(key: Day, message: Candidate, scope: Scope) -> bool:
    day = _sent_day(message) if key.sent else _internal_day(message)
    return day is not None and _COMPARE[key.compare](day, key.day)


def _match_numbers(key: Numbers, message: Candidate, scope: Scope) -> bool:
    if key.numbers.saved:  # RFC 5182 §2.1: "$" names the saved messages; none when nothing is saved
        return scope.saved is not None and message.uid in scope.saved
    if key.uid:
        return key.numbers.contains(message.uid, scope.largest_uid)
    return key.numbers.contains(message.msn, scope.largest_msn)


_MATCHERS: dict[type, Callable[[Key, Candidate, Scope], bool]] = {
    Const: lambda k, m, s: k.value,
    Flag: lambda k, m, s: (k.flag.lower() in {f.lower() for f in m.flags}) == k.present,
    Header: _match_header,
    Body: _match_body,
    Day: _match_day,
    Size: lambda k, m, s: m.size > k.octets if k.larger else m.size < k.octets,
    Numbers: _match_numbers,
    ModSeq: lambda k, m, s: m.modseq >= k.value,
    Not: lambda k, m, s: not matches(k.key, m, s),
    Or: lambda k, m, s: matches(k.left, m, s) or matches(k.right, m, s),
    And: lambda k, m, s: all(matches(each, m, s) for each in k.keys),
}


def matches(key: Key, message: Candidate, scope: Scope) -> bool:
    """Whether ``message`` satisfies ``key`` (a SearchRequest's key tree)."""
    return _MATCHERS[type(key)](key, message, scope)


# Replies ---------------------------------------------------------------------------------------

def saved_result(found: list[int], options: tuple[str, ...]) -> set[int]:
    """What RETURN (SAVE ...) keeps (RFC 5182 §2.1): only MIN and/or MAX when those are all asked."""
    wanted = set(options) - {"SAVE"}
    if not found or not wanted or wanted - {"MIN", "MAX"}:
        return set(found)
    return {n for n, option in ((min(found), "MIN"), (max(found), "MAX")) if option in wanted}


def esearch_response(tag: str, uid: bool, found: list[int], options: tuple[str, ...],
                     modseqs: dict[int, int] | None = None) -> bytes:
    """``* ESEARCH (TAG "x") [UID] MIN n MAX n COUNT n ALL set [MODSEQ n]`` (RFC 4731 §3.1).

    No RETURN options mean ALL (RFC 9051 §6.4.4); RETURN (SAVE) alone gets no ESEARCH
    at all (RFC 5182 §2.1), so the result is b"". ``modseqs`` (number to modseq of the
    found messages), given when the search used MODSEQ, adds the highest modseq of the
    messages returned (RFC 4731 §3.2, RFC 7162 §3.1.5).
    """
    wanted = set(options) or {"ALL"}
    if wanted == {"SAVE"}:
        return b""
    found = sorted(found)
    items = [b"* ESEARCH (TAG " + quoted(tag) + b")"] + ([b"UID"] if uid else [])
    if found and "MIN" in wanted:
        items.append(b"MIN %d" % found[0])
    if found and "MAX" in wanted:
        items.append(b"MAX %d" % found[-1])
    if "COUNT" in wanted:
        items.append(b"COUNT %d" % len(found))
    if found and "ALL" in wanted:
        items.append(b"ALL " + format_sequence(found).encode())
    if found and modseqs:
        returned = found if wanted & {"ALL", "COUNT"} else saved_result(found, tuple(wanted))
        items.append(b"MODSEQ %d" % max(modseqs.get(n, 0) for n in returned))
    return b" ".join(items) + b"\r\n"


def search_response(found: list[int], modseq: int | None) -> bytes:
    """``* SEARCH 2 3 5 (MODSEQ 917)``: the MODSEQ item only when some message matched (RFC 7162 §3.1.5)."""
    line = b"* SEARCH" + b"".join(b" %d" % n for n in sorted(found))
    if modseq is not None and found:
        line += b" (MODSEQ %d)" % modseq
    return line + b"\r\n"
