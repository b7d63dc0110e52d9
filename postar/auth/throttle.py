"""Login limits per client address and per account.

An attempt is counted when it starts, not when its check ends: logins sent all
at once cannot slip past a limit while their checks are still running. A
success takes its attempt back; a failure (or an attempt the client abandoned)
stays counted for the window. A success does not reset the count (a guesser who
knows one password must not get a free run at the others).

Per client address (Postfix's anvil, Dovecot's auth penalty are per address
too) the limit refuses: past it, logins from the address are refused without a
check until old failures age out. Attempts beyond the limit that arrive while
others are still being checked wait for those to end rather than being refused:
twenty colleagues behind one address logging in at once after a restart all get
in, and a burst of guesses still gets no more checks than the limit. IPv6 clients count per /48 network, as
Dovecot's PENALTY_IPV6_MASK_BITS: one site holds a whole prefix of addresses.

Per account the limit only slows: anyone can send wrong passwords for anyone,
so refusing would lock the owner out. Past it, every attempt on the account
waits before its check, twice as long for each further failure, up to a
maximum (Dovecot's AUTH_PENALTY_INIT_SECS 2, doubling to AUTH_PENALTY_MAX_SECS
15), and the right password is still accepted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import deque
from dataclasses import dataclass, field

IPV6_PREFIX = 48


@dataclass
class _Tally:
    failures: deque[float] = field(default_factory=deque)
    running: int = 0


class AttemptCounter:
    """Failures over a sliding window plus the attempts still running, per key."""

    def __init__(self, window: float):
        self._window = window
        self._tallies: dict[str, _Tally] = {}
        self._swept = time.monotonic()

    def count(self, key: str) -> int:
        tally = self._tallies.get(key)
        if tally is None:
            return 0
        horizon = time.monotonic() - self._window
        while tally.failures and tally.failures[0] < horizon:
            tally.failures.popleft()
        return len(tally.failures) + tally.running

    def failures(self, key: str) -> int:
        tally = self._tallies.get(key)
        return self.count(key) - tally.running if tally is not None else 0

    def start(self, key: str) -> None:
        self._sweep()
        self._tallies.setdefault(key, _Tally()).running += 1

    def finish(self, key: str, failed: bool) -> None:
        tally = self._tallies[key]
        tally.running -= 1
        if failed:
            tally.failures.append(time.monotonic())

    def _sweep(self) -> None:
        """Forget keys with nothing counted, once a window: user names are the client's choice."""
        now = time.monotonic()
        if now - self._swept < self._window:
            return
        self._swept = now
        for key in [k for k in self._tallies if self.count(k) == 0]:
            del self._tallies[key]


def source(ip: str) -> str:
    """The key an address is counted under: itself, or its /48 for IPv6."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


@dataclass
class Attempt:
    """One login being checked; ``delay`` is how long it waits before the check."""

    throttle: LoginThrottle
    source: str
    account: str
    delay: float
    account_failures: int
    done: bool = False

    def finish(self, failed: bool) -> None:
        if not self.done:
            self.done = True
            self.throttle.by_ip.finish(self.source, failed)
            self.throttle.by_account.finish(self.account, failed)
            self.throttle.settled(self.source)


class LoginThrottle:
    """A refusing limit per client address and a slowing one per account."""

    def __init__(self, per_ip: int, per_account: int, window: float,
                 penalty: float = 2.0, max_penalty: float = 15.0):
        self.by_ip = AttemptCounter(window)
        self.by_account = AttemptCounter(window)
        self._per_ip = per_ip
        self._per_account = per_account
        self._penalty = penalty
        self._max_penalty = max_penalty
        self._waiting: dict[str, list[asyncio.Future]] = {}

    def refused(self, ip: str) -> str | None:
        """Why logins from ``ip`` are refused now, or None."""
        key = source(ip)
        if self.by_ip.failures(key) >= self._per_ip:
            return f"too many failed logins from {key}"
        return None

    async def begin(self, ip: str, account: str) -> Attempt | str:
        """Count an attempt from ``ip`` for ``account``, once the failures and the attempts
        still running from ``ip`` leave room for it; or why it is refused."""
        key, name = source(ip), account.lower()
        while self.by_ip.count(key) >= self._per_ip:
            reason = self.refused(ip)
            if reason:
                return reason
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key, []).append(waiter)
            await waiter
        failures = self.by_account.count(name)
        self.by_ip.start(key)
        self.by_account.start(name)
        return Attempt(self, key, name, self.account_delay(failures), failures)

    def settled(self, key: str) -> None:
        """An attempt from ``key`` has ended: the attempts waiting behind it look again."""
        for waiter in self._waiting.pop(key, ()):
            if not waiter.done():
                waiter.set_result(None)

    def account_delay(self, failures: int) -> float:
        """The wait before checking a login for an account with ``failures`` counted."""
        over = failures - self._per_account
        if over < 0:
            return 0.0
        return min(self._penalty * 2 ** min(over, 32), self._max_penalty)
