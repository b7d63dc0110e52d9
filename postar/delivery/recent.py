"""Answers remembered for a few seconds, so a burst of mail to one domain works out its
route, addresses and TLS requirement once rather than once per message. Failures are
not remembered: the next message asks again."""

from __future__ import annotations

import time
from typing import Awaitable, Callable, Hashable, TypeVar

T = TypeVar("T")

SECONDS = 10.0
MAX_KEYS = 10000


class Recent:
    def __init__(self, seconds: float = SECONDS):
        self.seconds = seconds
        self._answers: dict[Hashable, tuple[float, object]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        hit = self._answers.get(key)
        if hit is not None and now - hit[0] < self.seconds:
            return hit[1]  # type: ignore[return-value]
        value = await compute()
        if len(self._answers) >= MAX_KEYS:
            self._answers.clear()
        self._answers[key] = (now, value)
        return value
