"""Accepted mail into the SQLite store (local INBOXes, the Sent copy, the outbound
queue) and the outbound queue's life: due recipients, attempts, reports, admin.

A delivery is one transaction whatever it touches, so a message is never in an
INBOX but missing from the queue, or the reverse. ``record_attempt`` is one
transaction too: the recipients' outcomes and the bounce or warning they cause
are stored together, so a crash can repeat an attempt (a recipient may get a
message twice, as with any MTA) but never lose one or its bounce.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Collection, Sequence

from postar.store import (
    AttemptResult, Delivery, NotFound, QueuedRecipient, QueueEntry, RecipientStatus,
)
from postar.store.sqlite_mail import collect_garbage, insert_blob, insert_message

_ENTRY_COLUMNS = ("q.id, q.queue_id, q.sender, q.created, length(b.data) + length(q.header_prefix), q.envid, "
                  "q.ret, q.submitter, q.smtputf8, q.held, q.warned")
_RECIPIENT_COLUMNS = "id, address, notify, orcpt, status, attempts, next_attempt, last_reply"


def _recipient(row: tuple) -> QueuedRecipient:
    return QueuedRecipient(row[0], row[1], row[2], row[3], RecipientStatus(row[4]), row[5], row[6], row[7])


def _entry(row: tuple, recipients: tuple[QueuedRecipient, ...]) -> QueueEntry:
    return QueueEntry(row[0], row[1], row[2], row[3], row[4], recipients, row[5], row[6], row[7],
                      bool(row[8]), bool(row[9]), bool(row[10]))


def sent_mailbox(c: sqlite3.Connection, account_id: int) -> int | None:
    row = c.execute("SELECT id FROM mailboxes WHERE account_id = ? AND (special_use = '\\Sent' OR name = 'Sent') "
                    "ORDER BY special_use = '\\Sent' DESC LIMIT 1", (account_id,)).fetchone()
    return row[0] if row else None


def write_delivery(c: sqlite3.Connection, d: Delivery) -> list[int]:
    """Store one accepted message everywhere it goes; the ids of the mailboxes it added to."""
    changed = []
    blob_id = insert_blob(c, d.data, d.summary)
    size = len(d.header_prefix) + len(d.data)
    for account_id in d.local_accounts:
        inbox = c.execute("SELECT id FROM mailboxes WHERE account_id = ? AND name = 'INBOX'", (account_id,)).fetchone()
        if inbox is None:
            raise NotFound(f"account {account_id} has no INBOX")
        insert_message(c, inbox[0], blob_id, d.header_prefix, size, "", d.internal_date)
        changed.append(inbox[0])
    if d.sent_copy is not None and (sent := sent_mailbox(c, d.sent_copy)) is not None:
        uid = insert_message(c, sent, blob_id, b"", len(d.data), "\\Seen", d.internal_date)
        changed.append(sent)
        if d.message_id:
            c.execute("INSERT OR REPLACE INTO sent_copies(account_id, message_id, mailbox_id, uid, created) "
                      "VALUES (?, ?, ?, ?, ?)", (d.sent_copy, d.message_id, sent, uid, d.internal_date))
    if d.outbound:
        entry_id = c.execute(
            "INSERT INTO queue(queue_id, blob_id, header_prefix, sender, submitter, envid, ret, created, smtputf8) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (d.queue_id, blob_id, d.relay_prefix, d.sender, d.submitter, d.envid, d.ret,
             d.internal_date, int(d.smtputf8))).lastrowid
        c.executemany("INSERT INTO queue_recipients(entry_id, address, notify, orcpt) VALUES (?, ?, ?, ?)",
                      [(entry_id, r.address, r.notify, r.orcpt) for r in d.outbound])
    collect_garbage(c, {blob_id})  # a message for nobody (every recipient dropped) keeps no blob
    return changed


class QueueStoreMixin:
    """The queue part of ``SQLiteStore``; needs its ``_one``, ``_all``, ``_reader``, ``_write`` and ``_writer``."""

    _one: Any
    _reader: Any
    _all: Any
    _write: Any
    _writer: Any

    def _entries(self, where: str, args: tuple = (), recipients: str = "1",
                 recipient_args: tuple = ()) -> list[QueueEntry]:
        result = []
        for row in self._all(f"SELECT {_ENTRY_COLUMNS} FROM queue q JOIN blobs b ON b.id = q.blob_id "
                             f"WHERE {where} ORDER BY q.created, q.id", *args):
            chosen = tuple(_recipient(r) for r in self._all(
                f"SELECT {_RECIPIENT_COLUMNS} FROM queue_recipients WHERE entry_id = ? AND {recipients} ORDER BY id",
                row[0], *recipient_args))
            result.append(_entry(row, chosen))
        return result

    async def queue(self) -> list[QueueEntry]:
        return self._entries("1")

    async def queue_entry(self, queue_id: str) -> QueueEntry | None:
        found = self._entries("q.queue_id = ?", (queue_id,))
        return found[0] if found else None

    async def due_entries(self, now: float, limit: int, skip: Collection[int] = ()) -> list[QueueEntry]:
        if limit <= 0:
            return []
        # In the due index's order (longest due first), read only as far as needed: the cost is
        # the entries skipped (in flight, held) and taken, not the size of the queue.
        ids: dict[int, None] = {}
        rows = self._reader.execute(
            "SELECT r.entry_id FROM queue_recipients r JOIN queue q ON q.id = r.entry_id "
            "WHERE r.status = 'queued' AND r.next_attempt <= ? AND q.held = 0 ORDER BY r.next_attempt, r.id", (now,))
        try:
            for (entry_id,) in rows:
                if entry_id not in skip:
                    ids[entry_id] = None
                    if len(ids) >= limit:
                        break
        finally:
            rows.close()
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        recipients: dict[int, list[QueuedRecipient]] = {}
        # by entry: the planner would otherwise walk the due index, every due recipient of the queue
        for row in self._all(f"SELECT entry_id, {_RECIPIENT_COLUMNS} FROM queue_recipients "
                             f"INDEXED BY queue_recipients_entry WHERE entry_id IN ({marks}) "
                             f"AND status = 'queued' AND next_attempt <= ? ORDER BY id", *ids, now):
            recipients.setdefault(row[0], []).append(_recipient(row[1:]))
        rows = self._all(f"SELECT {_ENTRY_COLUMNS} FROM queue q JOIN blobs b ON b.id = q.blob_id "
                         f"WHERE q.id IN ({marks}) ORDER BY q.created, q.id", *ids)
        return [_entry(row, tuple(recipients.get(row[0], ()))) for row in rows]

    async def next_due(self) -> float | None:
        row = self._one("SELECT min(r.next_attempt) FROM queue_recipients r JOIN queue q ON q.id = r.entry_id "
                        "WHERE r.status = 'queued' AND q.held = 0")
        return row[0] if row else None

    async def queue_content(self, entry_id: int) -> bytes | None:
        row = self._one("SELECT q.header_prefix, b.data FROM queue q JOIN blobs b ON b.id = q.blob_id "
                        "WHERE q.id = ?", entry_id)
        return None if row is None else row[0] + row[1]

    async def record_attempt(self, entry_id: int, results: Sequence[AttemptResult],
                             reports: Sequence[Delivery] = (), warned: bool = False) -> None:
        def write(c: sqlite3.Connection) -> tuple[None, list[int]]:
            c.executemany("UPDATE queue_recipients SET status = ?, attempts = attempts + 1, next_attempt = ?, "
                          "last_reply = ? WHERE id = ? AND entry_id = ?",
                          [(r.status.value, r.next_attempt, r.reply, r.recipient_id, entry_id) for r in results])
            if warned:
                c.execute("UPDATE queue SET warned = 1 WHERE id = ?", (entry_id,))
            changed = []
            for report in reports:
                changed += write_delivery(c, report)
            _remove_if_done(c, entry_id)
            return None, changed
        await self._write(write)

    async def delete_queue_entry(self, queue_id: str) -> None:
        def write(c: sqlite3.Connection) -> tuple[None, list[int]]:
            row = c.execute("DELETE FROM queue WHERE queue_id = ? RETURNING blob_id", (queue_id,)).fetchone()
            if row is None:
                raise NotFound(f"no queued message {queue_id}")
            collect_garbage(c, {row[0]})
            return None, []
        await self._write(write)

    async def hold_queue_entry(self, queue_id: str | None, held: bool) -> int:
        def write(c: sqlite3.Connection) -> tuple[int, list[int]]:
            if queue_id is None:
                return c.execute("UPDATE queue SET held = ? WHERE held != ?", (int(held), int(held))).rowcount, []
            if c.execute("UPDATE queue SET held = ? WHERE queue_id = ?", (int(held), queue_id)).rowcount == 0:
                raise NotFound(f"no queued message {queue_id}")
            return 1, []
        return await self._write(write)

    async def retry_queue_entry(self, queue_id: str | None) -> int:
        def write(c: sqlite3.Connection) -> tuple[int, list[int]]:
            if queue_id is not None and not c.execute("SELECT 1 FROM queue WHERE queue_id = ?", (queue_id,)).fetchone():
                raise NotFound(f"no queued message {queue_id}")
            which = "" if queue_id is None else "AND entry_id = (SELECT id FROM queue WHERE queue_id = ?)"
            count = c.execute(f"UPDATE queue_recipients SET next_attempt = 0 WHERE status = 'queued' {which}",
                              () if queue_id is None else (queue_id,)).rowcount
            return count, []
        return await self._write(write)

    async def set_sent_copy(self, address: str, enabled: bool) -> None:
        def write(c: sqlite3.Connection) -> tuple[None, list[int]]:
            if c.execute("UPDATE accounts SET sent_copy = ? WHERE address = ?", (int(enabled), address)).rowcount == 0:
                raise NotFound(f"no account {address}")
            return None, []
        await self._write(write)

    async def sent_copy_enabled(self, account_id: int) -> bool:
        row = self._one("SELECT sent_copy FROM accounts WHERE id = ?", account_id)
        return bool(row and row[0])


def _remove_if_done(c: sqlite3.Connection, entry_id: int) -> None:
    """Postfix removes a queue file once every recipient is delivered or bounced: so do we."""
    if c.execute("SELECT 1 FROM queue_recipients WHERE entry_id = ? AND status = 'queued'", (entry_id,)).fetchone():
        return
    row = c.execute("DELETE FROM queue WHERE id = ? RETURNING blob_id", (entry_id,)).fetchone()
    if row is not None:
        collect_garbage(c, {row[0]})

