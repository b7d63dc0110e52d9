"""The selected mailbox as one session sees it (RFC 9051 §7.4, §5.2).

Message sequence numbers are positions in ``uids``. Other sessions' changes
and new deliveries reach this view only through ``refresh``, which asks the
store what changed since the modseq the view knows and turns it into untagged
EXISTS, EXPUNGE (or VANISHED with QRESYNC) and FETCH FLAGS responses. Expunges
are held back while the current command forbids them (§7.5.1: not during
FETCH, STORE, SEARCH) and reported at the next command that allows them.

The view also knows which keywords the client was told of in FLAGS: those in
use at SELECT, then each new one, announced by ``announce`` before the first
FETCH that shows it (§7.3.5), whoever stored it.
"""

from __future__ import annotations

import bisect
from typing import Iterable

from postar.imap.flags import SYSTEM_FLAGS
from postar.imap.grammar import format_sequence
from postar.store import Mailbox, MessageState, Store


class MailboxDeleted(Exception):
    """The selected mailbox was deleted by another session."""


def flag_list(flags: tuple[str, ...]) -> str:
    return "(" + " ".join(flags) + ")"


class SelectedMailbox:
    def __init__(self, mailbox: Mailbox, uids: list[int], flags: dict[int, tuple[str, ...]], modseq: int,
                 keywords: list[str], readonly: bool):
        self.mailbox = mailbox
        self.readonly = readonly
        self.uids = uids    # shared with other sessions until ``own`` copies them
        self.flags = flags
        self._owned = False
        self.keywords = list(keywords)  # told in FLAGS: in use when selected, then each new one
        self._told = set(keywords)
        self.modseq = modseq
        self.uidnext = mailbox.uidnext
        self._vanished: set[int] = set()  # expunged elsewhere, not yet told

    def own(self) -> None:
        """Copy the shared UIDs and flags before the first change to them."""
        if not self._owned:
            self.uids, self.flags, self._owned = list(self.uids), dict(self.flags), True

    def set_flags(self, uid: int, flags: tuple[str, ...]) -> None:
        self.own()
        self.flags[uid] = flags

    def flags_responses(self) -> list[bytes]:
        """FLAGS and PERMANENTFLAGS with the keywords told so far (RFC 9051 §7.3.5, §7.1). A
        read-write mailbox takes any new keyword (``\\*``); it lists the known ones too, as Dovecot."""
        flags = SYSTEM_FLAGS + tuple(self.keywords)
        permanent = "()" if self.readonly else flag_list(flags + ("\\*",))
        return [f"* FLAGS {flag_list(flags)}\r\n".encode(),
                f"* OK [PERMANENTFLAGS {permanent}] Flags permitted\r\n".encode()]

    def announce(self, flag_sets: Iterable[tuple[str, ...]]) -> list[bytes]:
        """FLAGS and PERMANENTFLAGS again when ``flag_sets`` use a keyword the client was not told
        of, to be sent before the FETCH that shows it. RFC 9051 §7.3.5 (RFC 3501 §7.2.6): the
        client records the FLAGS response, and may drop or refuse a keyword none listed. The
        list only grows within a session, as Dovecot's: a keyword no message has any more may
        still be in the client's cache."""
        new = {flag for flags in flag_sets for flag in flags if flag not in self._told and flag[:1] != "\\"}
        if not new:
            return []
        self.keywords += sorted(new)
        self._told |= new
        return self.flags_responses()

    @property
    def exists(self) -> int:
        return len(self.uids)

    def msn(self, uid: int) -> int | None:
        position = bisect.bisect_left(self.uids, uid)
        if position < len(self.uids) and self.uids[position] == uid:
            return position + 1
        return None

    def uid_at(self, msn: int) -> int:
        return self.uids[msn - 1]

    def forget(self, uids: list[int], qresync: bool) -> list[bytes]:
        """Remove expunged UIDs from the view; the responses that say so."""
        lines = []
        gone = [u for u in uids if self.msn(u) is not None]
        if gone:
            self.own()
        if qresync and gone:
            lines.append(f"* VANISHED {format_sequence(sorted(gone))}\r\n".encode())
        for uid in sorted(gone, reverse=True):  # from the top, so lower numbers stay valid
            msn = self.msn(uid)
            if not qresync:
                lines.append(f"* {msn} EXPUNGE\r\n".encode())
            del self.uids[msn - 1]
            self.flags.pop(uid, None)
        self._vanished.difference_update(gone)
        return lines

    async def refresh(self, store: Store, allow_expunge: bool, condstore: bool, qresync: bool) -> list[bytes]:
        """Untagged responses for what changed since the view was last refreshed."""
        changes = await store.changes_since(self.mailbox.id, self.modseq)
        if not changes.exists:
            raise MailboxDeleted(self.mailbox.name)
        lines: list[bytes] = []
        self._vanished.update(changes.vanished)
        if allow_expunge and self._vanished:
            lines += self.forget(sorted(self._vanished), qresync)
        lines += self.announce(s.flags for s in changes.changed if s.uid not in self._vanished)
        added = False
        for state in changes.changed:
            if state.uid in self._vanished:
                continue
            if self.msn(state.uid) is None:
                if self.uids and state.uid < self.uids[-1]:
                    continue  # cannot be: UIDs only grow
                self.own()
                self.uids.append(state.uid)
                self.flags[state.uid] = state.flags
                added = True
            elif self.flags.get(state.uid) != state.flags:
                self.set_flags(state.uid, state.flags)
                lines.append(self.fetch_flags_line(state, uid=qresync or condstore, modseq=condstore))
        if added:
            lines.append(f"* {self.exists} EXISTS\r\n".encode())
        self.modseq = max(self.modseq, changes.highestmodseq)
        self.uidnext = max(self.uidnext, changes.uidnext)
        return lines

    def fetch_flags_line(self, state: MessageState, uid: bool, modseq: bool) -> bytes:
        items = [f"FLAGS {flag_list(state.flags)}"]
        if uid:
            items.append(f"UID {state.uid}")
        if modseq:
            items.append(f"MODSEQ ({state.modseq})")
        return f"* {self.msn(state.uid)} FETCH ({' '.join(items)})\r\n".encode()
