"""Every POP3 reply postar sends, in one place (the tests import them).

Status indicators are ``+OK`` and ``-ERR`` (RFC 1939 §3); a bracketed response
code (RFC 2449 §8, RFC 3206) tells a client why it failed: [AUTH] for bad
credentials, [IN-USE] for a maildrop another session holds, [SYS/TEMP] and
[SYS/PERM] for the server's own trouble. The wording follows Dovecot's where a
client might look at it.
"""

from __future__ import annotations

GREETING = b"+OK postar ready.\r\n"
OK = b"+OK\r\n"

# Authorization state
PLAINTEXT_REFUSED = b"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"
NO_USERNAME = b"-ERR No username given.\r\n"
LOGGED_IN = b"+OK Logged in.\r\n"
AUTH_FAILED = b"-ERR [AUTH] Authentication failed.\r\n"
LOGINS_BLOCKED = b"-ERR [SYS/TEMP] Too many failed logins, try again later.\r\n"
POP_TURNED_OFF = b"-ERR [SYS/PERM] POP access is turned off for this account.\r\n"
IN_USE = b"-ERR [IN-USE] Mailbox is locked by another POP3 session.\r\n"
AUTH_CANCELLED = b"-ERR Authentication cancelled.\r\n"
UNKNOWN_MECHANISM = b"-ERR Unsupported authentication mechanism.\r\n"
STLS_BEGIN = b"+OK Begin TLS negotiation now.\r\n"
TLS_ACTIVE = b"-ERR TLS is already active.\r\n"
TLS_UNAVAILABLE = b"-ERR TLS support isn't enabled.\r\n"
ALREADY_LOGGED_IN = b"-ERR Already logged in.\r\n"
NOT_LOGGED_IN = b"-ERR Log in first (USER and PASS, or AUTH).\r\n"
MAILDROP_FAILED = b"-ERR [SYS/TEMP] Could not open the mailbox, try again later.\r\n"

# Transaction state
DELETED = b"+OK Marked to be deleted.\r\n"
ALREADY_DELETED = b"-ERR Message is deleted.\r\n"
VANISHED = b"-ERR Message was removed by another session.\r\n"

# Ending
LOGGING_OUT = b"+OK Logging out.\r\n"
LOGGING_OUT_DELETED = b"+OK Logging out, messages deleted.\r\n"
UPDATE_FAILED = b"-ERR [SYS/TEMP] Could not update the mailbox; nothing was deleted.\r\n"
SHUTTING_DOWN = b"-ERR [SYS/TEMP] Server shutting down.\r\n"
TOO_MANY_CONNECTIONS = b"-ERR [SYS/TEMP] Too many connections from your address.\r\n"
SERVER_BUSY = b"-ERR [SYS/TEMP] Server busy, try again later.\r\n"
TIMEOUT = b"-ERR Disconnected for inactivity.\r\n"
TOO_MANY_ERRORS = b"-ERR Too many bad commands.\r\n"
LINE_TOO_LONG = b"-ERR Command line too long.\r\n"


def error(text: str) -> bytes:
    return f"-ERR {text}\r\n".encode()


def ok(text: str) -> bytes:
    return f"+OK {text}\r\n".encode()


def no_such_message(number: int) -> bytes:
    return error(f"There's no message {number}.")


def multiline(first: str, lines: list[str]) -> bytes:
    """``+OK first``, the lines, and the terminating ``.`` (lines never start with a dot here)."""
    return "".join([f"+OK {first}\r\n" if first else "+OK\r\n", *(line + "\r\n" for line in lines), ".\r\n"]).encode()
