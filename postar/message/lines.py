"""Line endings as the wire protocols want them: every line ended by CRLF.

Mail accepted over SMTP already has CRLF line endings; a message uploaded with
IMAP APPEND may not. POP3 (RFC 1939 §3) sends CRLF lines and must announce the
exact size first, so the store counts once, at delivery, the octets that
``with_crlf`` will add.
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
