"""Turning message bytes into text: RFC 2047 encoded words, transfer encodings, charsets.

Lenient on purpose, since real mail breaks every rule: an unknown or wrong charset
falls back to UTF-8 and then Latin-1 (which always succeeds), base64 skips what is
not in its alphabet, and quoted-printable keeps an "=" that starts no escape.
"""

from __future__ import annotations

import base64
import binascii
import re

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
# RFC 2045 §6.7, one match per piece to undo, read left to right: "=XX" (rule 1, lower-case
# hex accepted as the RFC suggests a robust decoder may); "=" then white space then the line
# end, a soft line break (rule 5) even with transport padding after the "=" (rule 3); white
# space before a line end, transport padding (rule 3), dropped. Other text stays as it is.
_QP_PIECE = re.compile(rb"=([0-9A-Fa-f]{2})|=[ \t]*(?:\r?\n|\Z)|[ \t]+(?=\r?\n|\Z)")


def decode_text(raw: bytes, charset: str) -> str:
    """Decode in the declared charset, else UTF-8, else Latin-1."""
    charset = charset.strip().strip('"')
    for name in (charset, "utf-8") if len(charset) <= 40 else ("utf-8",):
        try:
            return raw.decode(name)
        except (LookupError, ValueError):  # unknown or not a text codec; bad bytes
            continue
    return raw.decode("latin-1")


def unbase64(data: bytes) -> bytes:
    """Lenient base64 (RFC 2045 §6.8): skip what is not in the alphabet, stop at "=" padding,
    drop a lone last digit (a sextet is no octet)."""
    clean = _NOT_BASE64.sub(b"", data.split(b"=", 1)[0])
    clean = clean[:-1] if len(clean) % 4 == 1 else clean
    return base64.b64decode(clean + b"=" * (-len(clean) % 4))


def unquote_printable(data: bytes) -> bytes:
    """Quoted-printable body text decoded (RFC 2045 §6.7); hard line breaks stay as they came."""
    return _QP_PIECE.sub(lambda m: bytes.fromhex(m[1].decode()) if m[1] else b"", data)


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; whitespace between two adjacent words dropped (§6.2)."""
    out: list[str] = []
    last, after_word = 0, False
    for match in _ENCODED_WORD.finditer(value):
        between = value[last:match.start()]
        if not (after_word and between.strip(" \t") == ""):
            out.append(between)
        charset, kind, payload = match.groups()
        raw = payload.encode("ascii", "replace")
        data = unbase64(raw) if kind in "Bb" else binascii.a2b_qp(raw, header=True)
        out.append(decode_text(data, charset.partition("*")[0]))  # RFC 2231 §5: charset*language
        last, after_word = match.end(), True
    out.append(value[last:])
    return "".join(out)
