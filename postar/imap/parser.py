"""IMAP command lines to command values (RFC 9051 §2.2.1, §9 ``command``), pure.

``parse_command`` never raises: bytes it cannot read become ``Invalid`` with the
tag (``*`` when even that is missing) and a reason the session sends as BAD.
The arguments stay tokens (see ``grammar``); each handler reads its own with
the small readers below, which raise ``BadArguments``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from postar.imap.grammar import ParseError, Token, decode_mutf7, parse_sequence_set, SequenceSet, tokenize

# RFC 9051 §9 tag: any ASTRING-CHAR but "+", so "]" (resp-specials) and "}" too (Dovecot
# takes "}" but refuses "]"; the grammar allows both, and neither is ambiguous in a reply).
_TAG = re.compile(rb"[\x21\x23\x24\x26\x27\x2c-\x5b\x5d-\x7a\x7c-\x7e]+")


class BadArguments(ValueError):
    """A command's arguments are not what its syntax asks for."""


@dataclass(frozen=True)
class Command:
    tag: str
    name: str  # upper case; "UID FETCH" for the UID forms
    args: list[Token] = field(default_factory=list)

    @property
    def uid(self) -> bool:
        return self.name.startswith("UID ")


@dataclass(frozen=True)
class Invalid:
    tag: str
    reason: str


def starts_a_command(data: bytes) -> bool:
    """Whether ``data`` begins with a tag and a command name."""
    match = _TAG.match(data)
    return bool(match) and re.match(rb" [A-Za-z]+( |$)", data[match.end():]) is not None


def parse_command(data: bytes) -> Command | Invalid:
    """One complete command: its line(s) with any literals inline, without the final CRLF."""
    match = _TAG.match(data)
    if not match or not data[match.end():match.end() + 1] == b" ":
        return Invalid("*", "missing or bad tag")
    tag = match.group().decode()
    rest = match.end() + 1
    name_end = data.find(b" ", rest)
    name_end = len(data) if name_end < 0 else name_end
    name = data[rest:name_end].decode("ascii", "replace").upper()
    if not name.isalpha():
        return Invalid(tag, "missing or bad command name")
    try:
        args = tokenize(data, name_end)
    except ParseError as e:
        return Invalid(tag, str(e))
    if name == "UID":
        if not args or not isinstance(args[0], str):
            return Invalid(tag, "UID needs a command")
        name, args = f"UID {args[0].upper()}", args[1:]
    return Command(tag, name, args)


# Argument readers ------------------------------------------------------------------

def count(args: list[Token], low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(args) <= high:
        raise BadArguments("wrong number of arguments")


def astring(token: Token) -> str:
    if isinstance(token, list):
        raise BadArguments("expected a string, not a list")
    return token.decode("utf-8", "replace") if isinstance(token, bytes) else token


def atom(token: Token) -> str:
    if not isinstance(token, str):
        raise BadArguments("expected an atom")
    return token


def number(token: Token) -> int:
    if not isinstance(token, str) or not token.isascii() or not token.isdigit() or len(token) > 20:
        raise BadArguments("expected a number")
    return int(token)


def sequence_set(token: Token) -> SequenceSet:
    parsed = parse_sequence_set(token) if isinstance(token, str) else None
    if parsed is None:
        raise BadArguments("bad sequence set")
    return parsed


def parenthesized(token: Token) -> list[Token]:
    if not isinstance(token, list):
        raise BadArguments("expected a parenthesized list")
    return token


def mailbox_name(token: Token, utf8: bool) -> str:
    """A mailbox name as stored: UTF-8, INBOX in upper case, no trailing delimiter.

    Without UTF8=ACCEPT the client sends modified UTF-7 (RFC 3501 §5.1.3).
    """
    if isinstance(token, list):
        raise BadArguments("expected a mailbox name")
    if isinstance(token, bytes):
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise BadArguments("mailbox name is not UTF-8") from None
    else:
        text = token
    if not utf8:
        decoded = decode_mutf7(text)
        if decoded is None:
            raise BadArguments("mailbox name is not valid modified UTF-7")
        text = decoded
    text = text.rstrip("/")
    if text.upper() == "INBOX" or text.upper().startswith("INBOX/"):
        text = "INBOX" + text[5:]
    if not text or any(part == "" for part in text.split("/")) or any(ord(c) < 0x20 for c in text):
        raise BadArguments("bad mailbox name")
    return text
