"""Change notices: sessions are told, after commit, that a mailbox changed.

A notice carries no data; the session asks the store what changed since the
modseq it knows (``changes_since``), so a missed or merged notice loses
nothing. Within one process this is a set of events per mailbox; a store shared
by several processes will add its own channel (e.g. PostgreSQL LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Callable, Iterable


class Watch:
    """A subscription to one mailbox; use as a context manager, wait with ``changed``."""

    def __init__(self, hub: "ChangeHub", mailbox_id: int, on_change: Callable[[], None] | None = None):
        self._hub = hub
        self.mailbox_id = mailbox_id
        self.event = asyncio.Event()
        self.on_change = on_change

    def __enter__(self) -> "Watch":
        self._hub._watches[self.mailbox_id].add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        watches = self._hub._watches.get(self.mailbox_id)
        if watches is not None:
            watches.discard(self)
            if not watches:
                del self._hub._watches[self.mailbox_id]

    async def changed(self) -> None:
        """Wait for the next change, then reset."""
        await self.event.wait()
        self.event.clear()


class ChangeHub:
    def __init__(self) -> None:
        self._watches: dict[int, set[Watch]] = defaultdict(set)

    def watch(self, mailbox_id: int, on_change: Callable[[], None] | None = None) -> Watch:
        return Watch(self, mailbox_id, on_change)

    def notify(self, mailbox_ids: Iterable[int]) -> None:
        for mailbox_id in set(mailbox_ids):
            for watch in list(self._watches.get(mailbox_id, ())):
                watch.event.set()
                if watch.on_change is not None:
                    watch.on_change()
