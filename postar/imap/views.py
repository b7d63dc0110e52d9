"""A copy, shared by all sessions of the process, of recently selected mailboxes' UIDs and flags.

SELECT of a large mailbox would otherwise read and rebuild every message's
state each time (what Dovecot keeps in its index files). A cached copy is
brought up to date with ``changes_since`` from the modseq it knows, the same
question sessions ask after every command, so it can never be staler than a
session's own view; each session then gets its own copies to change.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass

from postar.store import Mailbox, Store


@dataclass
class _Index:
    uidvalidity: int
    modseq: int
    uids: list[int]
    flags: dict[int, tuple[str, ...]]


class MailboxViews:
    def __init__(self, capacity: int = 64):
        self._capacity = capacity
        self._indexes: OrderedDict[int, _Index] = OrderedDict()

    async def load(self, store: Store, mailbox: Mailbox) -> tuple[list[int], dict[int, tuple[str, ...]], int]:
        """(UIDs ascending, flags by UID, the modseq they are current to), the caller's to keep."""
        index = self._indexes.get(mailbox.id)
        if index is None or index.uidvalidity != mailbox.uidvalidity:
            states = await store.message_states(mailbox.id)
            modseq = max([mailbox.highestmodseq] + [s.modseq for s in states])
            index = _Index(mailbox.uidvalidity, modseq, [s.uid for s in states], {s.uid: s.flags for s in states})
        else:
            changes = await store.changes_since(mailbox.id, index.modseq)
            _apply(index, changes.vanished, changes.changed)
            index.modseq = max(index.modseq, changes.highestmodseq)
        self._indexes[mailbox.id] = index
        self._indexes.move_to_end(mailbox.id)
        while len(self._indexes) > self._capacity:
            self._indexes.popitem(last=False)
        return list(index.uids), dict(index.flags), index.modseq


def _apply(index: _Index, vanished, changed) -> None:
    gone = set(vanished) & index.flags.keys()
    if gone:
        index.uids = [u for u in index.uids if u not in gone]
        for uid in gone:
            del index.flags[uid]
    for state in changed:
        if state.uid not in index.flags:
            bisect.insort(index.uids, state.uid)
        index.flags[state.uid] = state.flags
