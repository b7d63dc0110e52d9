"""Messages as the line protocols carry them: every line ended by CRLF, dot-stuffed.

Mail accepted over SMTP already has CRLF line endings; a message uploaded with
IMAP APPEND may not. POP3 (RFC 1939 §3) sends CRLF lines and must announce the
exact size first, so the store counts once, at delivery, the octets that
``with_crlf`` will add. POP3's RETR and SMTP's DATA (RFC 5321 §4.5.2) send the
same form: a line starting with "." gets one more, and ".CRLF" ends it.
"""

from __future__ import annotations

import re

_BARE_LF = re.compile(rb"(?<!\r)\n")


def crlf_extra(data: bytes) -> int:
    """Octets ``with_crlf`` adds: a CR before each bare LF, a CRLF after an open last line."""
    extra = data.count(b"\n") - data.count(b"\r\n")
    if data and not data.endswith(b"\n"):
        extra += 2
    return extra


def with_crlf(data: bytes) -> bytes:
    """Every line ended by CRLF, the last one too (an empty message stays empty)."""
    if data.count(b"\n") != data.count(b"\r\n"):
        data = _BARE_LF.sub(b"\r\n", data)
    if data and not data.endswith(b"\n"):
        data += b"\r\n"
    return data


def dot_stuffed(content: bytes) -> bytes:
    """CRLF lines, each starting "." doubled, then the terminating ".CRLF"."""
    stuffed = with_crlf(content).replace(b"\r\n.", b"\r\n..")
    return (b"." + stuffed if stuffed.startswith(b".") else stuffed) + b".\r\n"
