"""What bounds a session: connections counted per client address and in total, and the
deadlines of each phase of a session (docs/security.md). Values only; ``listener``
applies them."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass


class ConnectionCounter(Counter):
    """Open connections per client address and in total, shared by the listeners of one
    service; ``max_total`` 0 is no total limit."""

    def __init__(self, max_total: int = 0):
        super().__init__()
        self.max_total = max_total
        self.total = 0

    def refusal(self, address: str, per_address: int) -> str | None:
        """Why one more connection from ``address`` is refused, or None to take it."""
        if self.max_total and self.total >= self.max_total:
            return "server busy"
        if self[address] >= per_address:
            return "too many connections"
        return None

    def add(self, address: str) -> None:
        self[address] += 1
        self.total += 1

    def remove(self, address: str) -> None:
        self.total -= 1
        self[address] -= 1
        if self[address] <= 0:
            del self[address]


@dataclass(frozen=True)
class Deadlines:
    """Seconds each phase of a session may take (config ``[limits]``); 0 is none."""

    idle: float           # waiting for the next command; also the write deadline
    login: float = 0.0    # from connect until signed in (none on the MX port)
    command: float = 0.0  # a command line, once begun, must be complete within it
    min_rate: float = 0.0  # octets/s a transfer must keep up once ``command`` has passed

    @property
    def shortest(self) -> float:
        return min(t for t in (self.idle, self.login, self.command) if t > 0)

    @classmethod
    def from_limits(cls, limits, protocol_idle: float, login: bool = True) -> "Deadlines":
        """From config ``[limits]``; ``idle_timeout`` 0 means the protocol's own ``protocol_idle``."""
        return cls(idle=limits.idle_timeout or protocol_idle, login=limits.login_timeout if login else 0.0,
                   command=limits.command_timeout, min_rate=float(limits.min_transfer_rate))


class Expired(asyncio.TimeoutError):
    """A deadline passed; ``reason`` is one of login, command, transfer, idle, write."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
