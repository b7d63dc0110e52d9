"""One login attempt, the same for SMTP, IMAP and POP3.

Checks the failed-login limits (per client address and per account), the
password or app password (``passwords.Authenticator``), delays and counts a
failure, and logs every refusal with its reason: wrong password, no such
account, disabled account, too many failures.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from postar.auth.passwords import Authenticator, Outcome
from postar.auth.throttle import LoginThrottle
from postar.store import Account

log = logging.getLogger("postar.auth")


class Refusal(Enum):
    BLOCKED = "blocked"  # too many failures: refused without checking
    FAILED = "failed"    # wrong credentials, unknown or disabled account


class LoginGate:
    def __init__(self, authenticator: Authenticator, throttle: LoginThrottle, failure_delay: float):
        self._authenticator = authenticator
        self._throttle = throttle
        self._delay = failure_delay

    def blocked(self, ip: str, connection_id: str) -> bool:
        """Whether logins from ``ip`` are refused now (logged when they are)."""
        reason = self._throttle.blocked(ip)
        if reason:
            log.warning("%s: login refused, client=%s: %s", connection_id, ip, reason)
        return bool(reason)

    async def login(self, ip: str, username: str, password: str, *, connection_id: str,
                    method: str) -> Account | Refusal:
        reason = self._throttle.blocked(ip, username)
        if reason:
            log.warning("%s: login refused for %s, client=%s: %s", connection_id, username, ip, reason)
            return Refusal.BLOCKED
        result = await self._authenticator.login(username, password)
        if result.outcome is Outcome.OK and result.account is not None:
            log.info("%s: login %s, client=%s, method=%s", connection_id, username, ip, method)
            return result.account
        self._throttle.fail(ip, username)
        log.warning("%s: login failed for %s, client=%s, method=%s: %s", connection_id, username, ip,
                    method, result.outcome.value)
        await asyncio.sleep(self._delay)
        return Refusal.FAILED
