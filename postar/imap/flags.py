"""Message flags (RFC 9051 §2.3.2): system flags in their canonical spelling, keywords."""

from __future__ import annotations

import re

from postar.imap.grammar import Token
from postar.imap.parser import BadArguments

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_CANONICAL = {flag.lower(): flag for flag in SYSTEM_FLAGS}
_KEYWORD = re.compile(r"[!#$&'+\-.0-9:;<=>?@A-Z^_`a-z|~]+")  # atom chars but ( ) { % * " \ ]


def normalize_flags(tokens: Token) -> tuple[str, ...]:
    """A flag list as stored: system flags spelled as in SYSTEM_FLAGS, keywords kept, no repeats."""
    if not isinstance(tokens, list):
        tokens = [tokens]
    flags: dict[str, str] = {}
    for token in tokens:
        if not isinstance(token, str):
            raise BadArguments("flags must be atoms")
        if token.startswith("\\"):
            canonical = _CANONICAL.get(token.lower())
            if canonical is None:
                if token.lower() == "\\recent":
                    continue  # \Recent cannot be set by a client; ignored as Dovecot does
                raise BadArguments(f"unknown system flag {token}")
            flags.setdefault(canonical.lower(), canonical)
        elif _KEYWORD.fullmatch(token):
            flags.setdefault(token.lower(), token)
        else:
            raise BadArguments(f"bad keyword {token}")
    return tuple(flags.values())
