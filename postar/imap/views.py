"""A copy, shared by all sessions of the process, of recently selected mailboxes' UIDs and flags.

SELECT of a large mailbox would otherwise read and rebuild every message's
state each time (what Dovecot keeps in its index files). A cached copy is
brought up to date with ``changes_since`` from the modseq it knows, the same
question sessions ask after every command, so it can never be staler than a
session's own view. Sessions share its containers until they change them.
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
    keywords: list[str] | None = None  # worked out once per version of the index

    def keyword_list(self) -> list[str]:
        if self.keywords is None:
            self.keywords = sorted({f for flags in set(self.flags.values()) for f in flags if not f.startswith("\\")})
        return self.keywords


class MailboxViews:
    def __init__(self, capacity: int = 64):
        self._capacity = capacity
        self._indexes: OrderedDict[int, _Index] = OrderedDict()

    async def load(self, store: Store, mailbox: Mailbox) -> tuple[list[int], dict[int, tuple[str, ...]], int, list[str]]:
        """(UIDs ascending, flags by UID, the modseq they are current to, the keywords in use).

        The containers are shared and never changed in place: a session copies them
        before its first change (``SelectedMailbox.own``)."""
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
        return index.uids, index.flags, index.modseq, index.keyword_list()


def _apply(index: _Index, vanished, changed) -> None:
    """Bring an index up to date, in new containers: sessions may still share the old ones."""
    gone = set(vanished) & index.flags.keys()
    if not gone and not changed:
        return
    uids = [u for u in index.uids if u not in gone] if gone else list(index.uids)
    flags = {uid: f for uid, f in index.flags.items() if uid not in gone} if gone else dict(index.flags)
    for state in changed:
        if state.uid not in flags:
            bisect.insort(uids, state.uid)
        flags[state.uid] = state.flags
    index.uids, index.flags, index.keywords = uids, flags, None
