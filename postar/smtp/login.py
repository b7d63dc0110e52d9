"""The AUTH exchange of one SMTP login (RFC 4954 §4), PLAIN and LOGIN.

``start`` and ``respond`` return either the next 334 challenge, the final
error reply, or the authenticated ``Account``. Failed attempts are counted per
client address and account, delayed, and logged (``postar.auth.login``).
"""

from __future__ import annotations

from postar.auth import sasl
from postar.auth.login import Refusal
from postar.context import Context
from postar.smtp import replies
from postar.smtp.replies import Reply
from postar.store import Account


class LoginExchange:
    def __init__(self, context: Context, client_ip: str, connection_id: str):
        self._context = context
        self._ip = client_ip
        self._id = connection_id
        self._mechanism = ""
        self._username: str | None = None

    async def start(self, mechanism: str, initial: str | None) -> Reply | Account:
        if self._context.logins.blocked(self._ip, self._id):
            return replies.LOGINS_BLOCKED
        if mechanism not in sasl.MECHANISMS:
            return replies.UNKNOWN_MECHANISM
        self._mechanism = mechanism
        if initial is None:
            challenge = "" if mechanism == "PLAIN" else sasl.LOGIN_USERNAME_CHALLENGE
            return replies.AUTH_CHALLENGE(challenge)
        return await self._take(initial)

    async def respond(self, line: bytes) -> Reply | Account:
        text = line.decode("ascii", "replace").strip()
        if text == "*":
            return replies.AUTH_CANCELLED
        return await self._take(text)

    async def _take(self, response: str) -> Reply | Account:
        if self._mechanism == "PLAIN":
            login = sasl.parse_plain(response)
            if isinstance(login, sasl.SASLError):
                return replies.AUTH_MALFORMED(f"Error: {login.reason}")
            return await self._verify(login.username, login.password)
        value = sasl.parse_login_field(response, "LOGIN response")
        if isinstance(value, sasl.SASLError):
            return replies.AUTH_MALFORMED(f"Error: {value.reason}")
        if self._username is None:
            self._username = value
            return replies.AUTH_CHALLENGE(sasl.LOGIN_PASSWORD_CHALLENGE)
        return await self._verify(self._username, value)

    async def _verify(self, username: str, password: str) -> Reply | Account:
        outcome = await self._context.logins.login(self._ip, username, password, connection_id=self._id,
                                                   method=self._mechanism)
        if outcome is Refusal.BLOCKED:
            return replies.LOGINS_BLOCKED
        if outcome is Refusal.FAILED:
            return replies.AUTH_FAILED
        return outcome
