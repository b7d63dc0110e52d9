"""POP3 command lines (RFC 1939 §3, RFC 2449 §3): a keyword and its arguments.

Keywords are case-insensitive words of three or four letters; arguments are
separated by single spaces. PASS is the exception: its argument is the rest of
the line, since a password may contain spaces (as Dovecot and most servers allow).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    verb: str            # upper-cased keyword
    args: tuple[str, ...]
    rest: str            # everything after the keyword and one space, verbatim


@dataclass(frozen=True)
class ParseError:
    reason: str


def parse_command(line: bytes) -> Command | ParseError:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return ParseError("Command is not valid UTF-8.")
    if any(ord(ch) < 32 and ch != "\t" or ord(ch) == 127 for ch in text):
        return ParseError("Control characters in the command.")
    keyword, _, rest = text.partition(" ")
    if not keyword:
        return ParseError("Empty command.")
    if not (3 <= len(keyword) <= 4 and keyword.isascii() and keyword.isalpha()):
        return ParseError(f"Unknown command: {keyword[:20]}")
    return Command(keyword.upper(), tuple(rest.split()), rest)


def message_number(text: str) -> int | None:
    """A message number argument (decimal, from 1), or None."""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    number = int(text)
    return number if number >= 1 else None


def line_count(text: str) -> int | None:
    """TOP's count of body lines (decimal, from 0), or None."""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    return int(text)
