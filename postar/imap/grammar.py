"""IMAP grammar shared by the parser and the responses (RFC 9051 §9, RFC 3501 §9).

Tokens: an atom is a ``str`` (a section such as ``BODY[HEADER.FIELDS (TO)]<0.9>``
stays one atom), a string (quoted or literal) is ``bytes``, a parenthesized
list is a ``list``. Also: sequence sets (§9 ``sequence-set``), modified UTF-7
mailbox names (RFC 3501 §5.1.3), and quoting for responses.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

Token = str | bytes | list


class Literal(bytes):
    """A string sent as a literal; only these can carry a message (RFC 9051 §9 append-data)."""


class ParseError(ValueError):
    """The command does not follow the grammar; the text says where."""


# What ends an atom: atom-specials that can follow one on a command line (RFC 9051 §9: SP,
# "(", ")", "{", DQUOTE; CR and LF end the line). "]" and "}" are ASTRING-CHAR and ATOM-CHAR,
# part of an atom like any letter (a mailbox may be named x]y or a}b); "%", "*" and "\\"
# stay in the atom too, for list-mailbox patterns and flags.
_ATOM_STOP = frozenset(b' ()"{\r\n')
# The atoms a section follows (RFC 9051 §9 fetch-att, RFC 3516 §4): only after one of
# them does "[" open a section whose spaces and parentheses belong to the atom, as in
# BODY[HEADER.FIELDS (TO)]. Anywhere else "[" is an ATOM-CHAR: SELECT a[b names a mailbox.
_SECTION_NAMES = frozenset((b"BODY", b"BODY.PEEK", b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE"))
_LITERAL = re.compile(rb"~?\{(\d{1,10})(\+|-)?\}\r\n")
# How deep parenthesized lists may nest. No command needs more than three levels (a
# FETCH list holding BODY[HEADER.FIELDS (...)] is one list in one); 100 is the bound
# Dovecot puts on MIME nesting (message-parser.h), generous for any real client and
# small enough that whatever walks the tokens later may recurse over them. Deeper is
# a ParseError, so the command gets BAD and the session goes on.
MAX_LIST_DEPTH = 100


def tokenize(data: bytes, start: int = 0) -> list[Token]:
    """Read tokens up to the end of ``data``; literals are inline as ``{n}\\r\\n`` + n octets.

    Iterative, with an explicit stack of the lists still open, so no input can
    exhaust the Python stack; more than ``MAX_LIST_DEPTH`` open lists is an error.
    """
    tokens: list[Token] = []
    open_lists: list[list[Token]] = []  # the enclosing lists of ``tokens``, outermost first
    position = start
    while position < len(data):
        char = data[position]
        if char == 0x20:
            position += 1
        elif char == 0x28:  # (
            if len(open_lists) >= MAX_LIST_DEPTH:
                raise ParseError(f"lists nested more than {MAX_LIST_DEPTH} deep")
            inner: list[Token] = []
            tokens.append(inner)
            open_lists.append(tokens)
            tokens, position = inner, position + 1
        elif char == 0x29:  # )
            if not open_lists:
                raise ParseError("unexpected ')'")
            tokens, position = open_lists.pop(), position + 1
        elif char == 0x22:  # "
            value, position = _read_quoted(data, position)
            tokens.append(value)
        elif char == 0x7B or (char == 0x7E and data[position + 1:position + 2] == b"{"):
            # "{" starts a literal, "~" only when "{" follows (literal8, RFC 3516 §4.3):
            # otherwise "~" is an ATOM-CHAR like any other (LIST "" ~foo, SELECT ~foo).
            literal, position = _read_literal(data, position)
            tokens.append(literal)
        else:
            atom, position = _read_atom(data, position)
            tokens.append(atom)
    if open_lists:
        raise ParseError("missing ')'")
    return tokens


def _read_quoted(data: bytes, position: int) -> tuple[bytes, int]:
    out = bytearray()
    position += 1
    while position < len(data):
        char = data[position]
        if char == 0x5C:  # backslash: quoted-specials only
            if position + 1 >= len(data) or data[position + 1] not in b'"\\':
                raise ParseError("bad escape in quoted string")
            out.append(data[position + 1])
            position += 2
        elif char == 0x22:
            return bytes(out), position + 1
        elif char in (0x0D, 0x0A, 0x00):
            raise ParseError("CR, LF or NUL in quoted string")
        else:
            out.append(char)
            position += 1
    raise ParseError("unterminated quoted string")


def _read_literal(data: bytes, position: int) -> tuple[bytes, int]:
    match = _LITERAL.match(data, position)
    if not match:
        raise ParseError("bad literal")
    size = int(match.group(1))
    end = match.end() + size
    if end > len(data):
        raise ParseError("literal shorter than announced")
    return Literal(data[match.end():end]), end


def _read_atom(data: bytes, position: int) -> tuple[str, int]:
    start = position
    depth = 0  # inside a section's brackets
    while position < len(data):
        char = data[position]
        if char == 0x5B and (depth or data[start:position].upper() in _SECTION_NAMES):  # [
            depth += 1
        elif char == 0x5D and depth:  # ]
            depth -= 1
        elif depth == 0 and char in _ATOM_STOP:
            break
        elif char in (0x0D, 0x0A, 0x00):
            raise ParseError("CR, LF or NUL in atom")
        position += 1
    if depth:
        raise ParseError("missing ']'")
    if position == start:
        raise ParseError("empty atom")
    return data[start:position].decode("utf-8", "replace"), position


def literal_announced(line: bytes) -> tuple[int, bool] | None:
    """``(size, synchronizing)`` when a command line ends with a literal's ``{n}``."""
    match = re.search(rb"~?\{(\d{1,10})(\+|-)?\}$", line)
    if not match:
        return None
    return int(match.group(1)), match.group(2) is None


# Sequence sets (RFC 9051 §9: sequence-set, seq-range, seq-number) -------------------

@dataclass(frozen=True)
class SequenceSet:
    ranges: tuple[tuple[int | None, int | None], ...]  # None is "*"
    saved: bool = False  # "$": the last SEARCH result (RFC 5182)

    def contains(self, number: int, largest: int) -> bool:
        for low, high in self.ranges:
            a = largest if low is None else low
            b = largest if high is None else high
            if min(a, b) <= number <= max(a, b):
                return True
        return False

    def resolve(self, largest: int) -> list[int]:
        """The numbers named, ascending, no larger than ``largest`` (save a lone "*")."""
        found: set[int] = set()
        for low, high in self.ranges:
            a = largest if low is None else low
            b = largest if high is None else high
            found.update(range(min(a, b), min(max(a, b), largest) + 1))
        return sorted(found)


_NUMBER = re.compile(r"[1-9][0-9]{0,9}|\*")


def parse_sequence_set(text: str) -> SequenceSet | None:
    if text == "$":
        return SequenceSet((), saved=True)
    ranges = []
    for item in text.split(","):
        low, colon, high = item.partition(":")
        if not _NUMBER.fullmatch(low) or (colon and not _NUMBER.fullmatch(high)):
            return None
        first = None if low == "*" else int(low)
        last = first if not colon else (None if high == "*" else int(high))
        if (first is not None and first > 0xFFFFFFFF) or (last is not None and last > 0xFFFFFFFF):
            return None
        ranges.append((first, last))
    return SequenceSet(tuple(ranges))


def format_sequence(numbers: list[int]) -> str:
    """Ascending numbers as a compact sequence set: 1:3,7,9:10."""
    parts = []
    run_start = previous = None
    for number in numbers:
        if previous is not None and number == previous + 1:
            previous = number
            continue
        if run_start is not None:
            parts.append(str(run_start) if run_start == previous else f"{run_start}:{previous}")
        run_start = previous = number
    if run_start is not None:
        parts.append(str(run_start) if run_start == previous else f"{run_start}:{previous}")
    return ",".join(parts)


# Modified UTF-7 (RFC 3501 §5.1.3) --------------------------------------------------

def encode_mutf7(name: str) -> str:
    out = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def decode_mutf7(name: str) -> str | None:
    """None when ``name`` is not valid modified UTF-7."""
    out = []
    position = 0
    while position < len(name):
        char = name[position]
        if char != "&":
            if not 0x20 <= ord(char) <= 0x7E:
                return None
            out.append(char)
            position += 1
            continue
        end = name.find("-", position)
        if end < 0:
            return None
        chunk = name[position + 1:end]
        if not chunk:
            out.append("&")
        else:
            try:
                raw = base64.b64decode(chunk.replace(",", "/") + "=" * (-len(chunk) % 4), validate=True)
                out.append(raw.decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                return None
        position = end + 1
    return "".join(out)


# Quoting for responses ---------------------------------------------------------------

def quoted(value: str | bytes) -> bytes:
    """A quoted string, or a literal when the value cannot be quoted (CR, LF, NUL, long)."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if len(raw) > 1000 or any(c in raw for c in b"\r\n\0"):
        return b"{%d}\r\n" % len(raw) + raw
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def nstring(value: str | bytes | None) -> bytes:
    return b"NIL" if value is None else quoted(value)
