"""What POP3 needs of the SQLite store: per-account POP settings, the maildrop
listing with exact sizes, and the one transaction that applies a session's
deletions and Gmail-style actions at QUIT (RFC 1939 §6, the UPDATE state)."""

from __future__ import annotations

import sqlite3
from typing import Any, Mapping, Sequence

from postar.store import FlagMode, NotFound, PopAccess, PopAction, PopMessage, PopSettings
from postar.store.sqlite_mail import change_flags, copy_into, remove_messages


class PopStoreMixin:
    """The POP3 part of ``SQLiteStore``; needs its ``_one``, ``_all`` and ``_write``."""

    _one: Any
    _all: Any
    _write: Any

    async def pop_settings(self, account_id: int) -> PopSettings:
        row = self._one("SELECT pop_access, pop_on_retrieve, pop_from_uid FROM accounts WHERE id = ?", account_id)
        if row is None:
            raise NotFound(f"no account {account_id}")
        return PopSettings(PopAccess(row[0]), PopAction(row[1]), row[2])

    async def set_pop_settings(self, address: str, access: PopAccess | None = None,
                               on_retrieve: PopAction | None = None) -> PopSettings:
        def write(c: sqlite3.Connection) -> tuple[PopSettings, list[int]]:
            row = c.execute("SELECT id FROM accounts WHERE address = ?", (address,)).fetchone()
            if row is None:
                raise NotFound(f"no account {address}")
            if access is PopAccess.NEW:
                c.execute("UPDATE accounts SET pop_access = ?, pop_from_uid = (SELECT uidnext FROM mailboxes "
                          "WHERE account_id = ? AND name = 'INBOX') WHERE id = ?", (access.value, row[0], row[0]))
            elif access is not None:
                c.execute("UPDATE accounts SET pop_access = ?, pop_from_uid = 0 WHERE id = ?", (access.value, row[0]))
            if on_retrieve is not None:
                c.execute("UPDATE accounts SET pop_on_retrieve = ? WHERE id = ?", (on_retrieve.value, row[0]))
            settings = c.execute("SELECT pop_access, pop_on_retrieve, pop_from_uid FROM accounts WHERE id = ?",
                                 (row[0],)).fetchone()
            return PopSettings(PopAccess(settings[0]), PopAction(settings[1]), settings[2]), []
        return await self._write(write)

    async def pop_messages(self, mailbox_id: int, from_uid: int = 0) -> list[PopMessage]:
        return [PopMessage(uid, size) for uid, size in self._all(
            "SELECT m.uid, m.size + b.pop_extra FROM messages m JOIN blobs b ON b.id = m.blob_id "
            "WHERE m.mailbox_id = ? AND m.uid >= ? ORDER BY m.uid", mailbox_id, from_uid)]

    async def settle(self, mailbox_id: int, *, seen: Sequence[int] = (),
                     moves: Mapping[int, Sequence[int]] | None = None, remove: Sequence[int] = ()) -> None:
        def write(c: sqlite3.Connection) -> tuple[None, list[int]]:
            changed = {mailbox_id}
            change_flags(c, mailbox_id, seen, ("\\Seen",), FlagMode.ADD)
            for target, uids in (moves or {}).items():
                copy_into(c, mailbox_id, list(uids), target, move=True)
                changed.add(target)
            remove_messages(c, mailbox_id, sorted(remove))
            return None, sorted(changed)
        await self._write(write)
