"""The AUTH exchange of one SMTP login (RFC 4954 §4), PLAIN and LOGIN.

``start`` and ``respond`` return either the next 334 challenge, the final
error reply, or the authenticated ``Account``. Failed attempts are counted per
client address and account, delayed, and logged with the reason.
"""

from __future__ import annotations

import asyncio
import logging

from postar.auth import sasl
from postar.auth.passwords import Outcome
from postar.smtp import replies
from postar.smtp.context import Context
from postar.smtp.replies import Reply
from postar.store import Account

log = logging.getLogger("postar.auth")


class LoginExchange:
    def __init__(self, context: Context, client_ip: str, connection_id: str):
        self._context = context
        self._ip = client_ip
        self._id = connection_id
        self._mechanism = ""
        self._username: str | None = None

    async def start(self, mechanism: str, initial: str | None) -> Reply | Account:
        blocked = self._context.throttle.blocked(self._ip)
        if blocked:
            log.warning("%s: login refused, client=%s: %s", self._id, self._ip, blocked)
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
        throttle = self._context.throttle
        blocked = throttle.blocked(self._ip, username)
        if blocked:
            log.warning("%s: login refused for %s, client=%s: %s", self._id, username, self._ip, blocked)
            return replies.LOGINS_BLOCKED
        result = await self._context.authenticator.login(username, password)
        if result.outcome is Outcome.OK and result.account is not None:
            log.info("%s: login %s, client=%s, method=%s", self._id, username, self._ip, self._mechanism)
            return result.account
        throttle.fail(self._ip, username)
        log.warning("%s: login failed for %s, client=%s, method=%s: %s", self._id, username,
                    self._ip, self._mechanism, result.outcome.value)
        await asyncio.sleep(self._context.config.limits.failed_login_delay)
        return replies.AUTH_FAILED
