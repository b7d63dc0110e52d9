"""Parse a message once, at delivery, into what IMAP will need (RFC 5322, RFC 2045-2046).

``summarize`` reads the header fields of the IMAP ENVELOPE (RFC 9051 §7.5.2)
and the MIME tree (each part's content type, parameters, transfer encoding,
byte offsets, size and line count: enough for BODYSTRUCTURE and BODY[section]
without reading the message again). It works on bytes with ``find`` and
``split`` rather than the ``email`` package: it runs on every accepted message,
so it must cost microseconds, not milliseconds. It never raises; a malformed
message yields a summary of what could be read.

Two bounds keep a hostile message from costing more than its size, as Dovecot's
message parser does (``MESSAGE_PARSER_DEFAULT_MAX_NESTED_MIME_PARTS`` 100 and
``..._MAX_TOTAL_MIME_PARTS`` 10000 in ``message-parser.h``; CVE-2020-12100):

- ``MAX_DEPTH`` levels of nesting, the message itself the first: a multipart or
  message/rfc822 part at the last level is not opened but kept as a leaf, its
  whole body unparsed, described as text/plain (``"overflow": true`` marks it).
  So BODYSTRUCTURE stays 100 lists deep, BODY[1.1...] past that level names
  nothing, and SEARCH BODY still reads the deeper parts' text inside the leaf.
  Every walk over a summary (here, in FETCH and in SEARCH) recurses at most this
  deep, well within Python's stack, and the JSON stays under 300 levels.
- ``MAX_PARTS`` parts in all: the part that reaches it is such a leaf too, its
  body running on to the end of its parent's body, and no later part is made.
"""

from __future__ import annotations

import json
import re

ENVELOPE_FIELDS = ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
                   "in-reply-to", "message-id")
# A repeated address field is malformed (RFC 5322 §3.6 allows one of each) but it happens;
# as Dovecot's ENVELOPE and SEARCH do, every occurrence counts, so SEARCH FROM finds an
# address in the second From field. Of the other fields the first wins.
ADDRESS_FIELDS = ("from", "sender", "reply-to", "to", "cc", "bcc")
_PART_FIELDS = ("content-type", "content-transfer-encoding", "content-id",
                "content-description", "content-disposition", "content-language",
                "content-location", "content-md5")
MAX_DEPTH = 100
MAX_PARTS = 10_000
# RFC 2045 §5.1: type "/" subtype, each a token; comments and what follows are ignored.
_TYPE = re.compile(r"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*/\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)")
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')


def split_header(data: bytes, start: int = 0, end: int | None = None) -> int:
    """Offset where the body starts (after the blank line), or ``end`` when there is none."""
    end = len(data) if end is None else end
    if start >= end:
        return end
    if data.startswith(b"\r\n", start) and start + 2 <= end:
        return start + 2
    blank = data.find(b"\r\n\r\n", start, end)
    return end if blank < 0 else blank + 4


def message_id(data: bytes) -> str:
    """The Message-ID field's value ("" when there is none)."""
    return header_fields(data[:split_header(data)], ("message-id",)).get("message-id", "").strip()


def header_fields(block: bytes, wanted: tuple[str, ...], joined: tuple[str, ...] = ()) -> dict[str, str]:
    """The first occurrence of each wanted field, unfolded (RFC 5322 §2.2.3); of the ``joined``
    ones (address lists) every occurrence, joined by "; ", which closes a group left open
    as the end of its field does and is nothing between two addresses."""
    found: dict[str, str] = {}

    def keep(name: str | None, value: list[str]) -> None:
        if name is None:
            return
        text = "".join(value).strip()
        if name not in found:
            found[name] = text
        elif name in joined:
            found[name] += "; " + text

    name = None
    value: list[str] = []
    for line in block.decode("utf-8", "replace").split("\r\n"):
        if line[:1] in (" ", "\t") and name is not None:
            value.append(line)
            continue
        keep(name, value)
        key, colon, rest = line.partition(":")
        key = key.strip().lower()
        name = key if colon and key in wanted else None
        value = [rest]
    keep(name, value)
    return found


def parse_content_type(value: str) -> tuple[str, str, dict[str, str]]:
    """``text/plain; charset=utf-8`` to ("text", "plain", {"charset": "utf-8"})."""
    main, _, _ = value.partition(";")
    match = _TYPE.match(main)
    kind, subtype = (match.group(1), match.group(2)) if match else ("", "")
    params = {}
    for key, raw in _PARAM.findall(value):
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key.lower()] = raw
    if not kind or not subtype:  # RFC 2045 §5.2: the default content type
        return "text", "plain", {"charset": "us-ascii", **params}
    kind, subtype = kind.strip().lower(), subtype.strip().lower()
    if (kind, subtype) == ("text", "plain") and "charset" not in params:
        params["charset"] = "us-ascii"
    return kind, subtype, params


def _part(data: bytes, start: int, end: int, depth: int, digest: bool, left: list[int]) -> dict:
    """One part at ``depth`` (0 for the message); ``left`` counts the parts still allowed."""
    left[0] -= 1
    body = split_header(data, start, end)
    fields = header_fields(data[start:body], _PART_FIELDS)
    default_type = "message/rfc822" if digest else "text/plain"
    kind, subtype, params = parse_content_type(fields.get("content-type", default_type))
    multipart = kind == "multipart" and bool(params.get("boundary"))
    message = kind == "message" and subtype in ("rfc822", "global")
    overflow = (multipart or message) and (depth + 1 >= MAX_DEPTH or left[0] <= 0)
    if overflow:  # not opened: a leaf of text, as Dovecot's parser leaves it
        kind, subtype, params = "text", "plain", {"charset": "us-ascii"}
    part = {
        "type": kind, "subtype": subtype, "params": params,
        "header": [start, body], "body": [body, end],
        "lines": data.count(b"\n", body, end),
        **{k: v for k, v in fields.items() if k != "content-type"},
    }
    if overflow:
        part["overflow"] = True
    elif multipart:
        part["parts"] = _children(data, body, end, params["boundary"], depth, subtype == "digest", left)
    elif message:
        part["message"] = _message(data, body, end, depth + 1, left)
    return part


def _children(data: bytes, start: int, end: int, boundary: str, depth: int, digest: bool,
              left: list[int]) -> list[dict]:
    delimiter = b"\r\n--" + boundary.encode("utf-8", "replace")
    children = []
    position = start - 2 if data.startswith(delimiter[2:], start) else data.find(delimiter, start, end)
    while 0 <= position < end and left[0] > 0:
        after = position + len(delimiter)
        if data.startswith(b"--", after):
            break  # the close-delimiter
        line_end = data.find(b"\r\n", after, end)
        if line_end < 0:
            break
        part_start = line_end + 2
        following = data.find(delimiter, part_start - 2, end)
        # The last part allowed takes in the rest of its parent, as Dovecot's overflow part does.
        part_end = end if following < 0 or left[0] == 1 else following
        children.append(_part(data, part_start, max(part_start, part_end), depth + 1, digest, left))
        position = following
    return children


def _message(data: bytes, start: int, end: int, depth: int, left: list[int]) -> dict:
    body = split_header(data, start, end)
    envelope = header_fields(data[start:body], ENVELOPE_FIELDS, joined=ADDRESS_FIELDS)
    return {"envelope": envelope, "part": _part(data, start, end, depth, False, left)}


def summarize(data: bytes) -> dict:
    """Envelope fields and MIME structure of a message, offsets into ``data``."""
    return _message(data, 0, len(data), 0, [MAX_PARTS])


def summarize_json(data: bytes) -> str:
    return json.dumps(summarize(data), separators=(",", ":"), ensure_ascii=False)
