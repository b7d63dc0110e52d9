"""Every SMTP reply postar sends, with its RFC 3463 enhanced status code.

RFC 2034 §3: the enhanced code prefixes the text of every reply except the
greeting and the replies to HELO/EHLO. The tests import these same constants.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    enhanced: str
    text: str

    def __call__(self, text: str) -> "Reply":
        """The same reply with another text (e.g. naming an address)."""
        return Reply(self.code, self.enhanced, text)

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    def encode(self) -> bytes:
        lines = self.text.split("\n")
        prefix = f"{self.enhanced} " if self.enhanced else ""
        out = [f"{self.code}-{prefix}{line}\r\n" for line in lines[:-1]]
        out.append(f"{self.code} {prefix}{lines[-1]}\r\n")
        return "".join(out).encode("utf-8")


def multiline(code: int, lines: list[str]) -> Reply:
    """A reply without enhanced code (greeting, EHLO) spread over several lines."""
    return Reply(code, "", "\n".join(lines))


OK = Reply(250, "2.0.0", "Ok")
SENDER_OK = Reply(250, "2.1.0", "Ok")
RECIPIENT_OK = Reply(250, "2.1.5", "Ok")
QUEUED = Reply(250, "2.0.0", "Ok: queued")
CHUNK_OK = Reply(250, "2.0.0", "Ok: chunk received")
HELO_OK = Reply(250, "", "")
START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
BYE = Reply(221, "2.0.0", "Bye")
VRFY_NEVER = Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
HELP = Reply(214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH")
READY_FOR_TLS = Reply(220, "2.0.0", "Ready to start TLS")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
AUTH_CHALLENGE = Reply(334, "", "")

SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, closing connection")
TIMEOUT = Reply(421, "4.4.2", "Error: timeout exceeded")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Error: too many errors")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Error: too many connections from your address")
SERVER_BUSY = Reply(421, "4.7.0", "Error: server busy, try again later")
LOGINS_BLOCKED_CLOSING = Reply(421, "4.7.0", "Error: too many failed logins, closing connection")
LOCAL_ERROR = Reply(451, "4.3.0", "Error: local error in processing, try again later")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Error: too many recipients")
TLS_UNAVAILABLE = Reply(454, "4.7.0", "TLS not available due to temporary reason")
LOGINS_BLOCKED = Reply(454, "4.7.0", "Temporary authentication failure: too many failed logins, try later")

UNRECOGNIZED = Reply(500, "5.5.2", "Error: command not recognized")
LINE_TOO_LONG = Reply(500, "5.5.2", "Error: line too long")
BAD_SYNTAX = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
BAD_ADDRESS = Reply(501, "5.1.3", "Bad address syntax")
BAD_SENDER_ADDRESS = Reply(501, "5.1.7", "Bad sender address syntax")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Error: command not implemented")
AUTH_NOT_HERE = Reply(502, "5.5.1", "Error: authentication not enabled on this port; use submission (587 or 465)")
BAD_SEQUENCE = Reply(503, "5.5.1", "Error: bad sequence of commands")
NEED_HELO = Reply(503, "5.5.1", "Error: send HELO/EHLO first")
NEED_MAIL = Reply(503, "5.5.1", "Error: need MAIL command")
NEED_RCPT = Reply(503, "5.5.1", "Error: need RCPT command")
NESTED_MAIL = Reply(503, "5.5.1", "Error: nested MAIL command")
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Error: already authenticated")
IN_TRANSACTION = Reply(503, "5.5.1", "Error: MAIL transaction in progress")
TLS_ALREADY = Reply(503, "5.5.1", "Error: TLS already active")
UNKNOWN_MECHANISM = Reply(504, "5.5.4", "Error: unsupported authentication mechanism")
UNKNOWN_PARAMETER = Reply(555, "5.5.4", "Error: unsupported MAIL/RCPT parameter")
AUTH_REQUIRED = Reply(530, "5.7.0", "Error: authentication required")
TLS_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
ENCRYPTION_REQUIRED = Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
AUTH_FAILED = Reply(535, "5.7.8", "Error: authentication failed")
AUTH_CANCELLED = Reply(501, "5.7.0", "Authentication cancelled")
AUTH_MALFORMED = Reply(501, "5.5.2", "Error: malformed authentication response")
USER_UNKNOWN = Reply(550, "5.1.1", "Recipient address rejected: user unknown")
RELAY_DENIED = Reply(554, "5.7.1", "Relay access denied")
ROUTING_DENIED = Reply(550, "5.7.1", "Sender-specified routing is not allowed")
SENDER_NOT_OWNED = Reply(553, "5.7.1", "Sender address rejected: not owned by the authenticated user")
NEEDS_SMTPUTF8 = Reply(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Error: message size exceeds fixed limit")
CHUNK_TOO_BIG = Reply(552, "5.3.4", "Error: message size exceeds fixed limit, closing connection")
MAILBOX_FULL = Reply(452, "4.2.2", "Mailbox full")
BARE_LINE_ENDING = Reply(550, "5.6.0", "Error: bare CR or LF in message; lines must end with CRLF (RFC 5321 §2.3.8)")
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "Error: no valid recipients")
