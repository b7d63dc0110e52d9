"""The AUTH exchange of one SMTP login (RFC 4954 §4): the shared SASL exchange
(``postar.auth.exchange``) with SMTP's replies.

``start`` and ``respond`` return either the next 334 challenge, the final
error reply, or the authenticated ``Account``.
"""

from __future__ import annotations

from postar.auth.exchange import Challenge, Failed, Failure, SASLExchange
from postar.context import Context
from postar.smtp import replies
from postar.smtp.replies import Reply
from postar.store import Account

_FAILURES = {
    Failure.BLOCKED: replies.LOGINS_BLOCKED,
    Failure.UNKNOWN_MECHANISM: replies.UNKNOWN_MECHANISM,
    Failure.CANCELLED: replies.AUTH_CANCELLED,
    Failure.FAILED: replies.AUTH_FAILED,
}


class LoginExchange:
    def __init__(self, context: Context, client_ip: str, connection_id: str):
        self._exchange = SASLExchange(context.logins, client_ip, connection_id, "smtp")

    async def start(self, mechanism: str, initial: str | None) -> Reply | Account:
        return _reply(await self._exchange.start(mechanism, initial))

    async def respond(self, line: bytes) -> Reply | Account:
        return _reply(await self._exchange.respond(line))


def _reply(outcome: Challenge | Failed | Account) -> Reply | Account:
    if isinstance(outcome, Challenge):
        return replies.AUTH_CHALLENGE(outcome.text)
    if isinstance(outcome, Failed):
        if outcome.failure is Failure.MALFORMED:
            return replies.AUTH_MALFORMED(f"Error: {outcome.reason}")
        return _FAILURES[outcome.failure]
    return outcome
