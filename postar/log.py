"""Logging set-up: one line per event, in the shape mail administrators grep.

Log lines carry what clients sent (HELO names, addresses, user names, IMAP ID
values). Every such value is cut to ``MAX_VALUE`` characters and escaped, and a
whole line to ``MAX_LINE``, so a client can neither forge log lines (CR, LF and
other control characters come out as escapes) nor make the log grow one to one
with its traffic.
"""

from __future__ import annotations

import logging
import sys

MAX_VALUE = 256
MAX_LINE = 2048


def clip(value: object, limit: int = MAX_VALUE) -> str:
    """``value`` as one printable line of at most about ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = f"{text[:limit]}...[{len(text) - limit} more]"
    if not text.isprintable():
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return text


class ClippingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.args, tuple):
            record.args = tuple(clip(a) if isinstance(a, (str, list, tuple, dict, bytes)) else a
                                for a in record.args)
        line = super().format(record)
        if record.exc_info is None and len(line) > MAX_LINE:
            line = clip(line, MAX_LINE)
        return line


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ClippingFormatter("%(asctime)s %(name)s[%(process)d]: %(message)s",
                                           "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
