"""Mailboxes and messages in the SQLite store: the IMAP semantics, written once.

UIDs come from each mailbox's ``uidnext`` and are never reused; every change
(append, flags, expunge, copy, move) takes the next ``highestmodseq`` of its
mailbox (RFC 7162 §3.1.1), and expunged UIDs are kept with that modseq so
``changes_since`` can tell a session (or a QRESYNC client, RFC 7162 §3.2.10)
what vanished. Message bytes are shared between copies: a blob is deleted when
the last message or queue entry using it goes. Flags are stored as one
space-separated text, system flags with their canonical spelling.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Callable, Iterable

from postar.message import message_id
from postar.message.lines import crlf_extra
from postar.store import (
    AlreadyExists, FlagMode, Mailbox, MailboxChanges, MailboxStatus, MessageInfo, MessageState, NotFound,
    StoreError,
)
from postar.store.events import ChangeHub, Watch

_MAILBOX_COLUMNS = ("id, name, special_use, EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = "
                    "mailboxes.account_id AND s.name = mailboxes.name), uidvalidity, uidnext, highestmodseq")
SENT_COPY_WINDOW = 600.0  # seconds within which an uploaded copy of a submitted message is the same one
_HAS_FLAG = "instr(' ' || flags || ' ', ' ' || ? || ' ') > 0"


def _mailbox(row: tuple) -> Mailbox:
    return Mailbox(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6])


def _flags(text: str) -> tuple[str, ...]:
    return tuple(text.split()) if text else ()


def _next_modseq(c: sqlite3.Connection, mailbox_id: int) -> int:
    return c.execute("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? "
                     "RETURNING highestmodseq", (mailbox_id,)).fetchone()[0]


def _next_uid(c: sqlite3.Connection, mailbox_id: int) -> int:
    return c.execute("UPDATE mailboxes SET uidnext = uidnext + 1 WHERE id = ? RETURNING uidnext - 1",
                     (mailbox_id,)).fetchone()[0]


def collect_garbage(c: sqlite3.Connection, blob_ids: set[int]) -> None:
    """Delete the blobs among ``blob_ids`` that no message or queue entry uses any more."""
    for blob_id in blob_ids:
        c.execute("DELETE FROM blobs WHERE id = ? AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = ?) "
                  "AND NOT EXISTS (SELECT 1 FROM queue WHERE blob_id = ?)", (blob_id, blob_id, blob_id))


def remove_messages(c: sqlite3.Connection, mailbox_id: int, uids: list[int]) -> None:
    """Delete messages, remembering their UIDs as expunged at one new modseq."""
    if not uids:
        return
    modseq = _next_modseq(c, mailbox_id)
    blob_ids = set()
    for uid in uids:
        row = c.execute("DELETE FROM messages WHERE mailbox_id = ? AND uid = ? RETURNING blob_id",
                        (mailbox_id, uid)).fetchone()
        if row is not None:
            blob_ids.add(row[0])
            c.execute("INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?, ?, ?)",
                      (mailbox_id, uid, modseq))
    collect_garbage(c, blob_ids)


def insert_blob(c: sqlite3.Connection, data: bytes, summary: str) -> int:
    """Store a message's bytes once, with what POP3 adds to them counted (``crlf_extra``)."""
    return c.execute("INSERT INTO blobs(data, summary, pop_extra) VALUES (?, ?, ?)",
                     (data, summary, crlf_extra(data))).lastrowid


def insert_message(c: sqlite3.Connection, mailbox_id: int, blob_id: int, prefix: bytes, size: int,
                   flags: str, date: float) -> int:
    """A new message in a mailbox at its next UID and modseq; its UID."""
    uid, modseq = c.execute("UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 "
                            "WHERE id = ? RETURNING uidnext - 1, highestmodseq", (mailbox_id,)).fetchone()
    c.execute("INSERT INTO messages(mailbox_id, uid, blob_id, header_prefix, size, flags, internal_date, modseq) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (mailbox_id, uid, blob_id, prefix, size, flags, date, modseq))
    return uid


def new_uidvalidity(c: sqlite3.Connection, account_id: int) -> int:
    """Never the same for two mailboxes of an account, even one deleted and made again at once."""
    return c.execute("UPDATE accounts SET last_uidvalidity = max(?, last_uidvalidity + 1) WHERE id = ? "
                     "RETURNING last_uidvalidity", (int(time.time()), account_id)).fetchone()[0]


def recent_sent_copy(c: sqlite3.Connection, mailbox_id: int, message_id: str, window: float) -> int | None:
    """The UID of the Sent copy made at submission for ``message_id``, if made within ``window`` seconds."""
    row = c.execute("SELECT s.uid FROM sent_copies s JOIN messages m ON m.mailbox_id = s.mailbox_id AND m.uid = s.uid "
                    "WHERE s.mailbox_id = ? AND s.message_id = ? AND s.created >= ?",
                    (mailbox_id, message_id, time.time() - window)).fetchone()
    return row[0] if row else None


class MailStoreMixin:
    """The mailbox half of ``SQLiteStore``; needs its ``_one``, ``_all`` and ``_writer``."""

    _changes: ChangeHub
    _one: Callable[..., tuple | None]
    _all: Callable[..., list[tuple]]
    _writer: Any

    async def _write(self, work: Callable[[sqlite3.Connection], tuple[Any, list[int]]]) -> Any:
        """Run a write; then tell the watchers of every mailbox it changed."""
        result, changed = await self._writer.submit(work)
        self._changes.notify(changed)
        return result

    def watch(self, mailbox_id: int, on_change: Callable[[], None] | None = None) -> Watch:
        return self._changes.watch(mailbox_id, on_change)

    async def list_mailboxes(self, account_id: int) -> list[Mailbox]:
        return [_mailbox(r) for r in self._all(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = ? ORDER BY name", account_id)]

    async def find_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        row = self._one(f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = ? AND name = ?",
                        account_id, name)
        return _mailbox(row) if row else None

    async def create_mailbox(self, account_id: int, name: str) -> Mailbox:
        def write(c: sqlite3.Connection) -> tuple[Mailbox, list[int]]:
            try:
                mailbox_id = c.execute("INSERT INTO mailboxes(account_id, name, uidvalidity) VALUES (?, ?, ?)",
                                       (account_id, name, new_uidvalidity(c, account_id))).lastrowid
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"mailbox {name} exists already") from None
            row = c.execute(f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            return _mailbox(row), []
        return await self._write(write)

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        def write(c: sqlite3.Connection) -> tuple[None, list[int]]:
            row = c.execute("SELECT id FROM mailboxes WHERE account_id = ? AND name = ?", (account_id, name)).fetchone()
            if row is None:
                raise NotFound(f"no mailbox {name}")
            if name == "INBOX":
                raise StoreError("INBOX cannot be deleted")
            blob_ids = {b for (b,) in c.execute("SELECT blob_id FROM messages WHERE mailbox_id = ?", (row[0],))}
            c.execute("DELETE FROM messages WHERE mailbox_id = ?", (row[0],))
            c.execute("DELETE FROM mailboxes WHERE id = ?", (row[0],))
            collect_garbage(c, blob_ids)
            return None, [row[0]]
        await self._write(write)

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        def write(c: sqlite3.Connection) -> tuple[None, list[int]]:
            source = c.execute("SELECT id FROM mailboxes WHERE account_id = ? AND name = ?", (account_id, old)).fetchone()
            if source is None:
                raise NotFound(f"no mailbox {old}")
            taken = c.execute("SELECT name FROM mailboxes WHERE account_id = ? AND (name = ? OR name IN "
                              "(SELECT ? || substr(name, ?) FROM mailboxes WHERE account_id = ? "
                              "AND substr(name, 1, ?) = ?))",
                              (account_id, new, new, len(old) + 1, account_id, len(old) + 1, old + "/")).fetchone()
            if taken:
                raise AlreadyExists(f"mailbox {taken[0]} exists already")
            if old == "INBOX":  # RFC 9051 §6.3.6: move INBOX's messages, keep INBOX itself
                target = c.execute("INSERT INTO mailboxes(account_id, name, uidvalidity) VALUES (?, ?, ?) "
                                   "RETURNING id", (account_id, new, new_uidvalidity(c, account_id))).fetchone()[0]
                uids = [u for (u,) in c.execute("SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (source[0],))]
                copy_into(c, source[0], uids, target, move=True)
                return None, [source[0], target]
            renamed = (new, len(old) + 1, account_id, old, len(old) + 1, old + "/")
            c.execute("UPDATE mailboxes SET name = ? || substr(name, ?) WHERE account_id = ? "
                      "AND (name = ? OR substr(name, 1, ?) = ?)", renamed)
            # subscriptions follow, as in Dovecot; one already there for a new name stays
            c.execute("UPDATE OR REPLACE subscriptions SET name = ? || substr(name, ?) WHERE account_id = ? "
                      "AND (name = ? OR substr(name, 1, ?) = ?)", renamed)
            return None, [source[0]]
        await self._write(write)

    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None:
        def write(c: sqlite3.Connection) -> tuple[None, list[int]]:
            if subscribed:
                if not c.execute("SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?",
                                 (account_id, name)).fetchone():
                    raise NotFound(f"no mailbox {name}")
                c.execute("INSERT OR IGNORE INTO subscriptions(account_id, name) VALUES (?, ?)", (account_id, name))
            else:
                c.execute("DELETE FROM subscriptions WHERE account_id = ? AND name = ?", (account_id, name))
            return None, []
        await self._write(write)

    async def subscriptions(self, account_id: int) -> list[str]:
        return [n for (n,) in self._all("SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name",
                                        account_id)]

    async def message_states(self, mailbox_id: int) -> list[MessageState]:
        return [MessageState(uid, _flags(flags), modseq) for uid, flags, modseq in self._all(
            "SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? ORDER BY uid", mailbox_id)]

    async def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges:
        box = self._one("SELECT highestmodseq, uidnext FROM mailboxes WHERE id = ?", mailbox_id)
        if box is None:
            return MailboxChanges(modseq, 0, (), (), exists=False)
        changed = tuple(MessageState(uid, _flags(flags), m) for uid, flags, m in self._all(
            "SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
            mailbox_id, modseq))
        vanished = tuple(u for (u,) in self._all(
            "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", mailbox_id, modseq))
        return MailboxChanges(box[0], box[1], changed, vanished)

    async def message_infos(self, mailbox_id: int, uids: list[int]) -> list[MessageInfo]:
        infos = []
        for start in range(0, len(uids), 500):
            chunk = uids[start:start + 500]
            infos += [MessageInfo(uid, _flags(flags), modseq, size, date, summary, prefix)
                      for uid, flags, modseq, size, date, summary, prefix in self._all(
                          "SELECT m.uid, m.flags, m.modseq, m.size, m.internal_date, b.summary, "
                          "length(m.header_prefix) FROM messages m JOIN blobs b ON b.id = m.blob_id "
                          f"WHERE m.mailbox_id = ? AND m.uid IN ({','.join('?' * len(chunk))})",
                          mailbox_id, *chunk)]
        return sorted(infos, key=lambda info: info.uid)

    async def message_content(self, mailbox_id: int, uid: int) -> bytes | None:
        row = self._one("SELECT m.header_prefix, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id "
                        "WHERE m.mailbox_id = ? AND m.uid = ?", mailbox_id, uid)
        return None if row is None else row[0] + row[1]

    async def update_flags(self, mailbox_id: int, uids: list[int], flags: tuple[str, ...], mode: FlagMode,
                           unchanged_since: int | None = None) -> tuple[list[MessageState], list[int]]:
        def write(c: sqlite3.Connection) -> tuple[tuple[list[MessageState], list[int]], list[int]]:
            updated, refused = change_flags(c, mailbox_id, uids, flags, mode, unchanged_since)
            return (updated, refused), [mailbox_id] if updated else []
        return await self._write(write)

    async def expunge(self, mailbox_id: int, uids: list[int] | None = None) -> list[int]:
        def write(c: sqlite3.Connection) -> tuple[list[int], list[int]]:
            deleted = [u for (u,) in c.execute(
                f"SELECT uid FROM messages WHERE mailbox_id = ? AND {_HAS_FLAG} ORDER BY uid",
                (mailbox_id, "\\Deleted"))]
            if uids is not None:
                wanted = set(uids)
                deleted = [u for u in deleted if u in wanted]
            remove_messages(c, mailbox_id, deleted)
            return deleted, [mailbox_id] if deleted else []
        return await self._write(write)

    async def copy_messages(self, source_id: int, uids: list[int], target_id: int,
                            move: bool = False) -> list[tuple[int, int]]:
        def write(c: sqlite3.Connection) -> tuple[list[tuple[int, int]], list[int]]:
            pairs = copy_into(c, source_id, uids, target_id, move)
            return pairs, [target_id] + ([source_id] if move else [])
        return await self._write(write)

    async def append(self, mailbox_id: int, data: bytes, flags: tuple[str, ...], internal_date: float,
                     summary: str) -> int:
        def write(c: sqlite3.Connection) -> tuple[int, list[int]]:
            box = c.execute("SELECT special_use, name FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            if box is None:
                raise NotFound("the mailbox no longer exists")
            if "\\Sent" in (box[0], "\\" + box[1]) and (found := message_id(data)):
                uid = recent_sent_copy(c, mailbox_id, found, SENT_COPY_WINDOW)
                if uid is not None:  # the client uploads what submission already put there
                    return uid, []
            uid = insert_message(c, mailbox_id, insert_blob(c, data, summary), b"", len(data),
                                 " ".join(dict.fromkeys(flags)), internal_date)
            return uid, [mailbox_id]
        return await self._write(write)

    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus:
        row = self._one(
            f"SELECT count(*), count(*) - sum({_HAS_FLAG}), sum({_HAS_FLAG}), coalesce(sum(size), 0) "
            "FROM messages WHERE mailbox_id = ?", "\\Seen", "\\Deleted", mailbox_id)
        box = self._one("SELECT uidnext, uidvalidity, highestmodseq FROM mailboxes WHERE id = ?", mailbox_id)
        if box is None:
            raise NotFound("no such mailbox")
        messages, unseen, deleted, size = row if row else (0, 0, 0, 0)
        return MailboxStatus(messages, unseen or 0, deleted or 0, size, *box)

    async def account_usage(self, account_id: int) -> int:
        row = self._one("SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id "
                        "WHERE b.account_id = ?", account_id)
        return row[0] if row else 0


def change_flags(c: sqlite3.Connection, mailbox_id: int, uids: Iterable[int], flags: tuple[str, ...],
                 mode: FlagMode, unchanged_since: int | None = None) -> tuple[list[MessageState], list[int]]:
    """Within a transaction: (messages whose flags changed, at one new modseq; UIDs refused by
    UNCHANGEDSINCE). UIDs no longer there are skipped."""
    updated, refused = [], []
    modseq = None
    for uid in uids:
        row = c.execute("SELECT flags, modseq FROM messages WHERE mailbox_id = ? AND uid = ?",
                        (mailbox_id, uid)).fetchone()
        if row is None:
            continue
        if unchanged_since is not None and row[1] > unchanged_since:
            refused.append(uid)
            continue
        current = _flags(row[0])
        new = _apply(current, flags, mode)
        if set(new) == set(current):
            continue
        modseq = modseq or _next_modseq(c, mailbox_id)
        c.execute("UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
                  (" ".join(new), modseq, mailbox_id, uid))
        updated.append(MessageState(uid, new, modseq))
    return updated, refused


def _apply(current: tuple[str, ...], flags: tuple[str, ...], mode: FlagMode) -> tuple[str, ...]:
    if mode is FlagMode.SET:
        return tuple(dict.fromkeys(flags))
    if mode is FlagMode.ADD:
        have = {f.lower() for f in current}
        return current + tuple(f for f in dict.fromkeys(flags) if f.lower() not in have)
    removed = {f.lower() for f in flags}
    return tuple(f for f in current if f.lower() not in removed)


def copy_into(c: sqlite3.Connection, source_id: int, uids: list[int], target_id: int, move: bool) -> list[tuple[int, int]]:
    if c.execute("SELECT 1 FROM mailboxes WHERE id = ?", (target_id,)).fetchone() is None:
        raise NotFound("the target mailbox no longer exists")
    pairs = []
    modseq = None
    for uid in sorted(uids):
        row = c.execute("SELECT blob_id, header_prefix, size, flags, internal_date FROM messages "
                        "WHERE mailbox_id = ? AND uid = ?", (source_id, uid)).fetchone()
        if row is None:
            continue
        modseq = modseq or _next_modseq(c, target_id)
        new_uid = _next_uid(c, target_id)
        c.execute("INSERT INTO messages(mailbox_id, uid, blob_id, header_prefix, size, flags, internal_date, modseq) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (target_id, new_uid, *row, modseq))
        pairs.append((uid, new_uid))
    if move:
        remove_messages(c, source_id, [source for source, _ in pairs])
    return pairs
