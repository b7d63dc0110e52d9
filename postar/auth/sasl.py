"""SASL mechanisms PLAIN (RFC 4616) and LOGIN, shared by SMTP, IMAP and POP3.

Pure functions from the client's base64 responses to a username and password;
they never raise, a malformed response gives a ``SASLError`` value.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

MECHANISMS = ("PLAIN", "LOGIN")
OTHER_USER = "logging in as another user is not allowed"

# The LOGIN mechanism's customary challenges.
LOGIN_USERNAME_CHALLENGE = base64.b64encode(b"Username:").decode()
LOGIN_PASSWORD_CHALLENGE = base64.b64encode(b"Password:").decode()


@dataclass(frozen=True)
class SASLError:
    reason: str


@dataclass(frozen=True)
class Login:
    username: str
    password: str


def decode_base64(text: str) -> bytes | SASLError:
    """RFC 4954 §4: '=' is an empty initial response."""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return SASLError("invalid base64")


def _text(raw: bytes, what: str) -> str | SASLError:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return SASLError(f"{what} is not UTF-8")


def parse_plain(response: str) -> Login | SASLError:
    """[authzid] NUL authcid NUL passwd; an authzid other than the user is refused."""
    raw = decode_base64(response)
    if isinstance(raw, SASLError):
        return raw
    parts = raw.split(b"\0")
    if len(parts) != 3:
        return SASLError("PLAIN response must be authzid NUL user NUL password")
    authzid, user, password = (_text(p, "PLAIN response") for p in parts)
    for value in (authzid, user, password):
        if isinstance(value, SASLError):
            return value
    if not user or not password:
        return SASLError("empty user name or password")
    if authzid and authzid.lower() != user.lower():
        return SASLError(OTHER_USER)
    return Login(user, password)


def parse_login_field(response: str, what: str) -> str | SASLError:
    """One of LOGIN's two responses: the base64 user name or password."""
    raw = decode_base64(response)
    if isinstance(raw, SASLError):
        return raw
    return _text(raw, what)
