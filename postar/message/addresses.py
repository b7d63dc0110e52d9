"""RFC 5322 §3.4 address lists, read leniently: for ENVELOPE (RFC 9051 §7.5.2), SORT and SEARCH.

``parse_addresses`` gives ENVELOPE's address structures, groups marked as RFC
3501 §7.4.2 does (a NIL host); a missing mailbox or host is "" (ENVELOPE fills
them in). ``address_text`` writes the addresses of a field back plainly, the
text SEARCH FROM, TO, CC and BCC look in, as Dovecot does (message_address_write
in index-search.c): no comments, no quoting, no route, spaces around "@" gone.
A comment names an address without a display name when it comes after the
address starts ("bob@x (Bob)", "bob(Bob)@x"), not before it, as in Dovecot.
"""

from __future__ import annotations

import re

_WORD = re.compile(r'\s+|"(?:[^"\\]|\\.)*"?|\[(?:[^\]\\]|\\.)*\]?|[<>@,;:]|[^\s()<>@,;:"\[\]]+|[^(]', re.S)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
Address = tuple[str | None, str | None, str | None, str | None]  # name, route, mailbox, host


def _comment(text: str, start: int) -> tuple[str, int]:
    """A (possibly nested) comment's text and the offset after it; to the end when unclosed."""
    depth, i = 0, start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
        if depth == 0:
            return text[start + 1:i - 1], i
    return text[start + 1:], len(text)


def _tokens(text: str) -> list[str]:
    """Words, quoted strings, domain literals, specials, and comments kept as "(" + text."""
    tokens, i = [], 0
    while i < len(text):
        if text[i] == "(":
            comment, i = _comment(text, i)
            tokens.append("(" + comment)
            continue
        match = _WORD.match(text, i)
        if not match[0].isspace():
            tokens.append(match[0])
        i = match.end()
    return tokens


def word(token: str) -> str:
    """An atom as it is, a quoted string without its quotes and escapes (even when unclosed)."""
    if not token.startswith('"'):
        return token
    quoted = _QUOTED.fullmatch(token)
    return re.sub(r"\\(.)", r"\1", quoted[1] if quoted else token[1:], flags=re.S)


def _units(tokens: list[str]):
    """Split at "," ";" ":" outside angle brackets, yielding (tokens, delimiter)."""
    unit: list[str] = []
    angle = False
    for token in tokens:
        angle = {"<": True, ">": False}.get(token, angle)
        if not angle and token in (",", ";", ":"):
            yield unit, token
            unit = []
        else:
            unit.append(token)
    yield unit, ""


def _addr_spec(tokens: list[str]) -> tuple[str, str]:
    at = tokens.index("@") if "@" in tokens else len(tokens)
    return "".join(word(t) for t in tokens[:at]), "".join(tokens[at + 1:])


def _mailbox(unit: list[str]) -> Address:
    words = [t for t in unit if not t.startswith("(")]
    first = next((i for i, t in enumerate(unit) if not t.startswith("(")), len(unit))
    comments = [t[1:].strip() for t in unit[first:] if t.startswith("(")]  # not one before the address
    route = None
    if "<" in words:
        at = words.index("<")
        name = " ".join(word(t) for t in words[:at])
        inside = words[at + 1:]
        inside = inside[:inside.index(">")] if ">" in inside else inside
        if ":" in inside:  # obs-route: <@a,@b:mailbox@host>
            route = "".join(inside[:inside.index(":")]) or None
            inside = inside[inside.index(":") + 1:]
    else:
        name, inside = (comments[-1] if comments else ""), words  # "bob@x (Bob)" names Bob
    return (name or None, route, *_addr_spec(inside))


def parse_addresses(value: str) -> list[Address]:
    """RFC 5322 address-list to ENVELOPE addresses, groups as RFC 3501 marks them (NIL host)."""
    found: list[Address] = []
    in_group = False
    for unit, delimiter in _units(_tokens(value)):
        if delimiter == ":" and not in_group:
            found.append((None, None, " ".join(word(t) for t in unit if not t.startswith("(")), None))
            in_group = True
            continue
        if any(not t.startswith("(") for t in unit):
            found.append(_mailbox(unit))
        if delimiter == ";" and in_group:
            found.append((None, None, None, None))
            in_group = False
    if in_group:
        found.append((None, None, None, None))
    return found


def address_text(value: str) -> str:
    """The addresses written back as "name <mailbox@host>" or "mailbox@host", ", " between
    them, a group as "name: ...;"; encoded words are left for the caller to decode."""
    text, after = "", ""
    for name, _route, mailbox, host in parse_addresses(value):
        if host is None:  # a group's start (its name) or end
            text = text + f"{after}{mailbox}: " if mailbox is not None else text.rstrip(" ") + ";"
            after = "" if mailbox is not None else ", "
            continue
        spec = f"{mailbox}@{host}" if host else mailbox or ""
        text += after + (f"{name} <{spec}>" if name else spec)
        after = ", "
    return text
