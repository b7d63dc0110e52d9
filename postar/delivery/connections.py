"""Open SMTP sessions kept for the next message to the same server, as Postfix's connection
cache does: a burst of mail to one destination pays for TCP, EHLO and TLS once.

A session is kept after a transaction that left it ready (RFC 5321 §4.1.4: the next
MAIL may follow), for at most ``IDLE`` seconds of idleness and ``MAX_AGE`` in all,
and only for the same server, port, TLS requirement and login. One that the server
closed meanwhile is noticed on first use and replaced by a new connection.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Hashable

from postar.delivery.smtp_client import SMTPClient

IDLE = 2.0       # Postfix's smtp_connection_cache_time_limit
MAX_AGE = 300.0  # Postfix's smtp_connection_reuse_time_limit


class ConnectionCache:
    def __init__(self) -> None:
        self._idle: dict[Hashable, list[tuple[SMTPClient, float, float]]] = defaultdict(list)
        self._sweeper: asyncio.Task | None = None

    def take(self, key: Hashable) -> tuple[SMTPClient, float] | None:
        """An idle session to ``key`` and when it was opened, or None."""
        now = time.monotonic()
        waiting = self._idle.get(key)
        while waiting:
            client, opened, since = waiting.pop()
            if client.usable and now - since < IDLE and now - opened < MAX_AGE:
                return client, opened
            asyncio.get_running_loop().create_task(client.quit())
        return None

    def give(self, key: Hashable, client: SMTPClient, opened: float) -> None:
        self._idle[key].append((client, opened, time.monotonic()))
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Say QUIT to sessions idle too long; stop when none is left."""
        while any(self._idle.values()):
            await asyncio.sleep(IDLE / 2)
            now = time.monotonic()
            for key, waiting in list(self._idle.items()):
                keep = [(c, o, s) for c, o, s in waiting if c.usable and now - s < IDLE]
                for client, _, since in waiting:
                    if (client, _, since) not in keep:
                        await client.quit()
                self._idle[key] = keep
                if not keep:
                    del self._idle[key]

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for waiting in self._idle.values():
            for client, _, _ in waiting:
                await client.quit()
        self._idle.clear()
