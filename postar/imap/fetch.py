"""Render FETCH data items from a message summary (RFC 9051 §7.5.2, RFC 3501 §7.4.2, RFC 3516).

The summary comes from ``postar.message.summarize`` (read back from JSON), the
content is ``header_prefix + data`` (the lines the server added, then the bytes
the client sent), and ``prefix_len`` shifts the summary's offsets into it. Every
function is pure and returns the exact bytes to send, or None for a request it
cannot answer; none raises on any summary or content.

Checked against Dovecot 2.3, which it follows (a missing part is an empty
string; CHAR8 has no NUL, so NUL becomes 0x80 in a body section and U+FFFD in
header text) except where it says otherwise: type, subtype, encoding and
parameter names are upper-cased as in RFC 9051's examples (Dovecot sends them
as written); a section is echoed as the client wrote it (Dovecot upper-cases
it); a leaf part has no part 1 (Dovecot answers with the leaf); HEADER.FIELDS of
a message without a blank line gets none (RFC 9051 §6.4.5; Dovecot adds one);
BINARY decodes damaged base64 and quoted-printable as best it can (Dovecot
answers NO [PARSE]).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postar.message import MAX_DEPTH
from postar.message.addresses import Address, parse_addresses, word
from postar.message.text import unbase64, unquote_printable

# Strings (RFC 9051 §4.3) --------------------------------------------------------------------

_QUOTED_MAX = 1000  # longer values go as literals: no escaping pass, no overlong lines
_NOT_QUOTABLE = re.compile(rb"[\r\n\x80-\xff]")  # quoted = TEXT-CHAR, 7-bit without CR/LF


def string(value: str | bytes | None) -> bytes:
    """An nstring: NIL, a quoted string, or a literal when quoting cannot carry the value."""
    if value is None:
        return b"NIL"
    # CHAR8 excludes NUL: Dovecot writes U+FFFD for it in header text, 0x80 in raw bytes.
    data = value.replace("\0", "\ufffd").encode("utf-8", "replace") if isinstance(value, str) else bytes(value)
    data = data.replace(b"\0", b"\x80")
    if len(data) > _QUOTED_MAX or _NOT_QUOTABLE.search(data):
        return b"{%d}\r\n%s" % (len(data), data)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _upper(value: str) -> str:
    return value.upper() if value.isascii() else value


# ENVELOPE: RFC 5322 §3.4 address lists ---------------------------------------------------------

def addresses(value: str) -> list[Address]:
    """A field's ENVELOPE addresses; a missing mailbox or host filled in as Dovecot does, since
    a NIL host means group syntax (RFC 3501 §7.4.2)."""
    return [a if a[3] is None else (a[0], a[1], a[2] or "MISSING_MAILBOX", a[3] or "MISSING_DOMAIN")
            for a in parse_addresses(value)]


def _address_list(value: object) -> bytes:
    found = addresses(value) if isinstance(value, str) else []
    return b"(" + b"".join(b"(" + b" ".join(map(string, a)) + b")" for a in found) + b")" if found else b"NIL"


def envelope(fields: dict) -> bytes:
    """ENVELOPE (RFC 9051 §7.5.2): a missing or empty Sender or Reply-To is the From."""
    text = {k: v for k, v in fields.items() if isinstance(v, str)} if isinstance(fields, dict) else {}
    lists = {name: _address_list(text.get(name)) for name in ("from", "sender", "reply-to", "to", "cc", "bcc")}
    for name in ("sender", "reply-to"):
        lists[name] = lists["from"] if lists[name] == b"NIL" else lists[name]
    items = [string(text.get("date")), string(text.get("subject")), *lists.values(),
             string(text.get("in-reply-to")), string(text.get("message-id"))]
    return b"(" + b" ".join(items) + b")"


# BODY and BODYSTRUCTURE -----------------------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 2045 §5.1 token
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_CONTINUED = re.compile(r"([^*]+)\*(?:([0-9]+)(\*?))?")  # name*, name*0, name*0*
_EMPTY = {"type": "text", "subtype": "plain", "params": {"charset": "us-ascii"}, "body": [0, 0], "lines": 0}


def _joined(params: dict) -> dict:
    """RFC 2231 §3-4: name*0, name*1... joined as one value, under name* when any piece is encoded.

    As Dovecot does: a plain first piece gets an empty charset and language (''), the "%" of
    plain pieces is escaped, and pieces numbered with gaps are left as they came.
    """
    out, pieces = {}, {}
    for key, value in params.items():
        piece = _CONTINUED.fullmatch(key)
        if piece:
            pieces.setdefault(piece[1], []).append((int(piece[2] or 0), piece[2] is None or piece[3] == "*", value))
        else:
            out[key] = value
    for name, parts in pieces.items():
        parts.sort(key=lambda p: p[0])
        if [p[0] for p in parts] != list(range(len(parts))):
            out.update((f"{name}*{n}{'*' if encoded else ''}", value) for n, encoded, value in parts)
        elif any(encoded for _, encoded, _ in parts):
            text = "".join(v if encoded else v.replace("%", "%25") for _, encoded, v in parts)
            out[name + "*"] = ("" if parts[0][1] else "''") + text
        else:
            out[name] = "".join(v for _, _, v in parts)
    return out


def _param_list(params: dict) -> bytes:
    pairs = [string(_upper(key)) + b" " + string(value) for key, value in params.items()]
    return b"(" + b" ".join(pairs) + b")" if pairs else b"NIL"


def _content_params(part: dict) -> bytes:
    params = _joined(part.get("params") or {})
    if part.get("type") == "text" and "charset" not in params:
        params["charset"] = "us-ascii"  # RFC 2046 §4.1.2, and Dovecot for every text/*
    return _param_list(params)


def parse_disposition(value: str) -> tuple[str, dict[str, str]] | None:
    """``attachment; filename="a b"`` to ("attachment", {"filename": "a b"}) (RFC 2183)."""
    kind = _TOKEN.match(value.strip())
    if not kind:
        return None
    return kind[0], {key.lower(): word(raw) for key, raw in _PARAM.findall(value)}


def _disposition(part: dict) -> bytes:
    parsed = parse_disposition(part.get("content-disposition") or "")
    if parsed is None:
        return b"NIL"
    return b"(" + string(_upper(parsed[0])) + b" " + _param_list(_joined(parsed[1])) + b")"


def _language(part: dict) -> bytes:
    items = (part.get("content-language") or "").split(",")
    tags = [tag[0] for tag in (_TOKEN.match(item.strip()) for item in items) if tag]
    return b"(" + b" ".join(map(string, tags)) + b")" if tags else b"NIL"


def _encoding(part: dict) -> str:
    token = _TOKEN.match((part.get("content-transfer-encoding") or "").strip())
    return token[0].upper() if token else "7BIT"  # RFC 2045 §6.1 default; Dovecot's for junk


def _extension(part: dict) -> list[bytes]:
    return [_disposition(part), _language(part), string(part.get("content-location"))]


def _is_multipart(part: dict) -> bool:
    return part.get("type") == "multipart"  # even without a boundary, as Dovecot does


def _is_message(part: dict) -> bool:
    return (part.get("type"), part.get("subtype")) in (("message", "rfc822"), ("message", "global")) \
        and isinstance(part.get("message"), dict)


def _multipart(part: dict, extensible: bool, depth: int) -> bytes:
    children = part.get("parts") or [_EMPTY]  # 1*body: Dovecot's stand-in when there are none
    out = b"".join(bodystructure(child, extensible, depth + 1) for child in children)
    out += b" " + string(_upper(part.get("subtype") or ""))
    if extensible:
        out += b" " + b" ".join([_content_params(part), *_extension(part)])
    return out


def _one_part(part: dict, extensible: bool, depth: int) -> bytes:
    kind, subtype = part.get("type") or "text", part.get("subtype") or "plain"
    start, end = part.get("body") or (0, 0)
    items = [string(_upper(kind)), string(_upper(subtype)), _content_params(part),
             string(part.get("content-id")), string(part.get("content-description")),
             string(_encoding(part)), b"%d" % max(0, end - start)]
    lines = b"%d" % part.get("lines", 0)
    if (kind, subtype) in (("message", "rfc822"), ("message", "global")):
        inner = part["message"] if _is_message(part) else {}  # absent past the depth limit
        items += [envelope(inner.get("envelope") or {}),
                  bodystructure(inner.get("part") or _EMPTY, extensible, depth + 1), lines]
    elif kind == "text":
        items.append(lines)
    if extensible:
        items += [string(part.get("content-md5")), *_extension(part)]
    return b" ".join(items)


def bodystructure(part: dict, extensible: bool, depth: int = 0) -> bytes:
    """BODY (``extensible=False``) or BODYSTRUCTURE (with extension data) of a summary part.

    ``summarize`` nests parts at most ``MAX_DEPTH`` deep; a deeper summary (none is
    made) would get the empty stand-in there rather than recurse without bound.
    """
    part = part if isinstance(part, dict) and depth < MAX_DEPTH else _EMPTY
    body = _multipart(part, extensible, depth) if _is_multipart(part) else _one_part(part, extensible, depth)
    return b"(" + body + b")"


# BODY[section] (RFC 9051 §6.4.5) ------------------------------------------------------------------

# nz-number (RFC 9051 §9) as a 32-bit number: at most 10 digits (int() refuses over 4300).
_PATH = re.compile(r"([1-9][0-9]{0,9}(?:\.[1-9][0-9]{0,9})*)(\.|$)")
_FIELDS = re.compile(r"(HEADER\.FIELDS(?:\.NOT)?) \((.*)\)", re.I | re.S)
_NAME = r'"(?:[^"\\]|\\.)*"|[^\s()"]+'
_NAMES = re.compile(rf"(?:{_NAME})(?: (?:{_NAME}))*", re.S)


@dataclass(frozen=True)
class Section:
    """A parsed section-spec: part numbers, then "", HEADER, HEADER.FIELDS[.NOT], TEXT or MIME."""

    path: tuple[int, ...]
    text: str
    fields: tuple[str, ...] = ()


def parse_section(spec: str) -> Section | None:
    """The text between BODY[ and ], or None when it is not a section-spec."""
    if not spec.isascii():  # field names are ASCII (RFC 5322 §3.6.8); and "ı".upper() is "I"
        return None
    path, rest = (), spec
    numbers = _PATH.match(spec)
    if numbers:
        path, rest = tuple(int(n) for n in numbers[1].split(".")), spec[numbers.end():]
        if numbers[2] == "." and not rest:
            return None
    keyword = rest.upper()
    if keyword in ("", "HEADER", "TEXT") or (keyword == "MIME" and path):
        return Section(path, keyword)
    fields = _FIELDS.fullmatch(rest)
    if not fields or not _NAMES.fullmatch(fields[2]):
        return None
    names = tuple(word(name) for name in re.findall(_NAME, fields[2], re.S))
    return Section(path, fields[1].upper(), names)


def _find(top: dict, path: tuple[int, ...]) -> dict | None:
    """The part a path names; a non-multipart message (top or enclosed) has a part 1, its body."""
    node, root = top, True
    for i, number in enumerate(path):
        if _is_multipart(node):
            parts = node.get("parts") or []
            if number > len(parts):
                return None
            node = parts[number - 1]
        elif not (root and number == 1):
            return None
        root = False
        if i + 1 < len(path) and _is_message(node):
            node, root = node["message"]["part"], True
    return node


def _slice(content: bytes, prefix_len: int, top: dict, node: dict, which: str) -> bytes:
    start, end = (node.get(which) or (0, 0))[:2]
    # The top-level header is the prefix lines the server added plus the header sent.
    start = 0 if which == "header" and node is top else start + prefix_len
    return content[max(0, start):max(0, end + prefix_len)]


def _header_fields(header: bytes, names: tuple[str, ...], exclude: bool) -> bytes:
    """The fields named (or, with ``exclude``, not named), folded lines kept, then the blank line."""
    wanted = {name.encode("utf-8", "replace").lower() for name in names}
    out, keep, blank = [], exclude, False  # folded lines before any field go with .NOT
    for line in re.findall(rb"[^\n]*\n|[^\n]+", header):
        if line in (b"\r\n", b"\n"):
            blank = True
            break
        if line[:1] not in (b" ", b"\t"):  # a new field; folded lines follow its fate
            keep = (line.split(b":", 1)[0].strip().lower() in wanted) != exclude
        if keep:
            out.append(line)  # an unterminated last line stays so, as from Dovecot
    # RFC 9051 §6.4.5: the blank line is in every header fetch unless the message has none.
    return b"".join(out) + (b"\r\n" if blank else b"")


def _top(summary: dict) -> dict:
    top = summary.get("part") if isinstance(summary, dict) else None
    return top if isinstance(top, dict) else _EMPTY


def section(content: bytes, prefix_len: int, summary: dict, spec: str) -> bytes | None:
    """BODY[spec]: the bytes of that section, b"" for a part that does not exist, None for a bad spec."""
    parsed = parse_section(spec)
    if parsed is None:
        return None
    top = message = _top(summary)
    if not parsed.path and not parsed.text:
        return _no_nul(content)
    if parsed.path:
        node = _find(top, parsed.path)
        if node is None:
            return b""
        if parsed.text in ("", "MIME"):
            return _no_nul(_slice(content, prefix_len, top, node, "header" if parsed.text else "body"))
        if not _is_message(node):  # HEADER and TEXT only of a message/rfc822 or message/global part
            return b""
        message = node["message"]["part"]
    if parsed.text == "TEXT":
        return _no_nul(_slice(content, prefix_len, top, message, "body"))
    header = _slice(content, prefix_len, top, message, "header")
    if parsed.text == "HEADER":
        return _no_nul(header)
    return _no_nul(_header_fields(header, parsed.fields, parsed.text.endswith(".NOT")))


def _no_nul(data: bytes) -> bytes:
    return data.replace(b"\0", b"\x80") if b"\0" in data else data


def partial(data: bytes, origin: int, length: int | None) -> bytes:
    """<origin.length>: the octets from origin, at most length of them; b"" past the end."""
    origin = max(0, origin)
    return data[origin:] if length is None else data[origin:origin + max(0, length)]


# BINARY[section] (RFC 3516) -------------------------------------------------------------------

# Quoted-printable as Dovecot decodes it: a soft line break may have padding after its "="
# and padding before a line end goes (RFC 2045 §6.7 rule 3), both of which binascii.a2b_qp keeps.
_DECODERS = {"7BIT": bytes, "8BIT": bytes, "BINARY": bytes, "BASE64": unbase64,
             "QUOTED-PRINTABLE": unquote_printable}


def binary(content: bytes, prefix_len: int, summary: dict, spec: str) -> bytes | None:
    """BINARY[spec]: the part's body with its transfer encoding undone.

    None when the encoding is unknown (answer NO [UNKNOWN-CTE]), or when ``spec`` is
    not a section-binary (parse_fetch_attribute rejects those before).
    """
    parsed = parse_section(spec)
    if parsed is None or parsed.text:
        return None
    if not parsed.path:
        return content
    top = _top(summary)
    node = _find(top, parsed.path)
    if node is None:
        return b""
    decode = _DECODERS.get(_encoding(node))
    return None if decode is None else decode(_slice(content, prefix_len, top, node, "body"))


# Fetch attributes (RFC 9051 §6.4.5 fetch-att) ---------------------------------------------------

_SIMPLE = frozenset({"FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE",
                     "MODSEQ"})  # MODSEQ: RFC 7162 §3.1.4
_RFC822 = {"RFC822": ("", False), "RFC822.HEADER": ("HEADER", True), "RFC822.TEXT": ("TEXT", False)}
_MACROS = {"FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
           "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
           "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")}
_SECTIONED = re.compile(r'(BODY|BODY\.PEEK|BINARY|BINARY\.PEEK|BINARY\.SIZE)'
                        r'\[((?:[^\]"]|"(?:[^"\\]|\\.)*")*)\](?:<([0-9]{1,19})\.([0-9]{1,19})>)?', re.I | re.S)
_NUMBER64 = 2 ** 63 - 1  # RFC 9051 §9 number64


@dataclass(frozen=True)
class FetchAttribute:
    """One fetch-att: RFC822, RFC822.HEADER and RFC822.TEXT carry the section they equal."""

    name: str  # upper case, without .PEEK: FLAGS, BODY, BINARY, BINARY.SIZE, RFC822.HEADER...
    section: str | None = None  # the section-spec as sent (checked); None for BODY the structure
    partial: tuple[int, int] | None = None  # (origin, length)
    peek: bool = False  # BODY.PEEK, BINARY.PEEK, RFC822.HEADER: do not set \Seen


def parse_fetch_attribute(text: str) -> FetchAttribute | None:
    """One fetch attribute as a client writes it, or None when it is not one."""
    upper = text.upper() if text.isascii() else ""
    if upper in _SIMPLE:
        return FetchAttribute(upper)
    if upper in _RFC822:
        spec, peek = _RFC822[upper]
        return FetchAttribute(upper, spec, None, peek)
    found = _SECTIONED.fullmatch(text) if text.isascii() else None
    if not found:
        return None
    name = found[1].upper()
    parsed = parse_section(found[2])
    if parsed is None or (name.startswith("BINARY") and parsed.text):  # RFC 3516 §4: part numbers only
        return None
    window = None
    if found[3] is not None:
        window = (int(found[3]), int(found[4]))
        if name == "BINARY.SIZE" or window[1] == 0 or max(window) > _NUMBER64:
            return None
    return FetchAttribute(name.removesuffix(".PEEK"), found[2], window, name.endswith(".PEEK"))


def expand_macro(text: str) -> tuple[FetchAttribute, ...] | None:
    """ALL, FAST and FULL as the attributes they stand for (RFC 9051 §6.4.5), else None."""
    names = _MACROS.get(text.upper() if text.isascii() else "")
    return None if names is None else tuple(FetchAttribute(name) for name in names)


def response_name(attr: FetchAttribute) -> str:
    """The item's name in the FETCH response: no .PEEK, a partial shows its origin only (RFC 9051
    §7.5.2), and the section is echoed as the client wrote it, field names in their spelling."""
    if attr.section is None or attr.name.startswith("RFC822"):
        return attr.name
    name = f"{attr.name}[{attr.section}]"
    return name + f"<{attr.partial[0]}>" if attr.partial else name
