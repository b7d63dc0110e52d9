"""Failed-login limits per client address and per account.

Counts failures over a sliding window; a source over its limit is refused until
old failures age out. A success does not reset the count (a guesser who knows
one password must not get a free run at the others).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque


class FailureCounter:
    def __init__(self, limit: int, window: float):
        self._limit = limit
        self._window = window
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        horizon = time.monotonic() - self._window
        while times and times[0] < horizon:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked(self, key: str) -> bool:
        return len(self._recent(key)) >= self._limit

    def fail(self, key: str) -> None:
        self._recent(key)
        self._failures[key].append(time.monotonic())


class LoginThrottle:
    """One counter per client IP address and one per account address."""

    def __init__(self, per_ip: int, per_account: int, window: float):
        self.by_ip = FailureCounter(per_ip, window)
        self.by_account = FailureCounter(per_account, window)

    def blocked(self, ip: str, account: str | None = None) -> str | None:
        """Why logins are refused now ('too many failures from IP' ...), or None."""
        if self.by_ip.blocked(ip):
            return f"too many failed logins from {ip}"
        if account and self.by_account.blocked(account.lower()):
            return f"too many failed logins for {account}"
        return None

    def fail(self, ip: str, account: str) -> None:
        self.by_ip.fail(ip)
        self.by_account.fail(account.lower())
