"""One login attempt, the same for SMTP, IMAP and POP3.

Counts the attempt as it starts (``throttle.LoginThrottle``): refused at once
when its client address is over the limit, made to wait while attempts still
being checked from the address fill it; made to wait before the password
check when its account has had too many failures (the right password still
logs in, and a password verified a moment ago skips the wait with the check).
Then the password or app password (``passwords.Authenticator``), a delay after
a failure, and a log line for every refusal with its reason: wrong password,
no such account, disabled account, too many failures.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from postar.auth.passwords import Authenticator, Outcome
from postar.auth.throttle import Attempt, LoginThrottle
from postar.store import Account

log = logging.getLogger("postar.auth")


class Refusal(Enum):
    BLOCKED = "blocked"  # too many failures from the client's address: refused without checking
    FAILED = "failed"    # wrong credentials, unknown or disabled account


class LoginGate:
    def __init__(self, authenticator: Authenticator, throttle: LoginThrottle, failure_delay: float):
        self._authenticator = authenticator
        self._throttle = throttle
        self._delay = failure_delay

    def blocked(self, ip: str, connection_id: str) -> bool:
        """Whether logins from ``ip`` are refused now (logged when they are)."""
        reason = self._throttle.refused(ip)
        if reason:
            log.warning("%s: login refused, client=%s: %s", connection_id, ip, reason)
        return bool(reason)

    async def login(self, ip: str, username: str, password: str, *, connection_id: str,
                    method: str) -> Account | Refusal:
        attempt = await self._throttle.begin(ip, username)
        if isinstance(attempt, str):
            log.warning("%s: login refused for %s, client=%s: %s", connection_id, username, ip, attempt)
            return Refusal.BLOCKED

        async def wait_penalty() -> None:
            await self._penalty(attempt, username, ip, connection_id)

        outcome = None
        try:
            result = await self._authenticator.login(username, password, before_check=wait_penalty)
            outcome = result.outcome
        finally:
            # An attempt the client abandoned mid-check (outcome None) counts as a failure.
            attempt.finish(failed=outcome is not Outcome.OK)
        if outcome is Outcome.OK and result.account is not None:
            log.info("%s: login %s, client=%s, method=%s", connection_id, username, ip, method)
            return result.account
        log.warning("%s: login failed for %s, client=%s, method=%s: %s", connection_id, username, ip,
                    method, result.outcome.value)
        await asyncio.sleep(self._delay)
        return Refusal.FAILED

    @staticmethod
    async def _penalty(attempt: Attempt, username: str, ip: str, connection_id: str) -> None:
        if attempt.delay <= 0:
            return
        log.warning("%s: login for %s delayed %.2f s, client=%s: %d failed or unfinished logins for the account",
                    connection_id, username, attempt.delay, ip, attempt.account_failures)
        await asyncio.sleep(attempt.delay)
