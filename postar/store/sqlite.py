"""The embedded store: SQLite in WAL mode, message bytes as blobs in the same file.

Keeping the message bytes in the database (not one file per message) means one
transaction holds a message, its index rows and its queue entry, and one WAL
fsync makes a whole batch of them durable (see ``writer.py``). Reads are short
indexed look-ups on a second connection, run directly on the event loop: each
costs microseconds, less than a hop to a thread would.
"""

from __future__ import annotations

import importlib.resources
import os
import sqlite3
import time
from pathlib import Path

from postar.message.lines import crlf_extra
from postar.store import (
    SPECIAL_MAILBOXES, Account, AlreadyExists, Alias, AppPassword, Credentials, Delivery,
    MailboxInfo, NotFound, StoredMessage, StoreError,
)
from postar.store.events import ChangeHub
from postar.store.sqlite_dkim import DKIMStoreMixin
from postar.store.sqlite_mail import MailStoreMixin, collect_garbage, new_uidvalidity
from postar.store.sqlite_pop import PopStoreMixin
from postar.store.sqlite_queue import QueueStoreMixin, write_delivery
from postar.store.writer import GroupCommitWriter

DATABASE_NAME = "postar.sqlite3"


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # FULL: the WAL is fsync'd at every commit, so a committed delivery survives power loss.
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


def _migrations() -> list[tuple[int, str]]:
    folder = importlib.resources.files("postar.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


def _migrate(connection: sqlite3.Connection) -> None:
    current = connection.execute("PRAGMA user_version").fetchone()[0]
    for version, script in _migrations():
        if version <= current:
            continue
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";\n"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version={version}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise


def _count_line_endings(connection: sqlite3.Connection) -> None:
    """Fill in ``blobs.pop_extra`` for blobs stored before migration 0003 added it."""
    while rows := connection.execute("SELECT id, data FROM blobs WHERE pop_extra IS NULL LIMIT 1000").fetchall():
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("UPDATE blobs SET pop_extra = ? WHERE id = ?",
                               [(crlf_extra(data), blob_id) for blob_id, data in rows])
        connection.execute("COMMIT")


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def _account(row: tuple) -> Account:
    return Account(id=row[0], address=row[1], disabled=bool(row[2]), imap_enabled=bool(row[3]))


_ACCOUNT_COLUMNS = "id, address, disabled, imap_enabled"


class SQLiteStore(MailStoreMixin, PopStoreMixin, QueueStoreMixin, DKIMStoreMixin):
    """The ``postar.store.Store`` on SQLite. Open with ``await SQLiteStore.open(dir)``."""

    def __init__(self, path: Path):
        self.path = path
        self._changes = ChangeHub()
        self._reader = _connect(path)
        self._writer = GroupCommitWriter(lambda: _connect(path))

    @classmethod
    async def open(cls, data_dir: Path) -> "SQLiteStore":
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        path = data_dir / DATABASE_NAME
        if not path.exists():  # holds password hashes: readable by its owner only
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        setup = _connect(path)
        try:
            _migrate(setup)
            _count_line_endings(setup)
        finally:
            setup.close()
        return cls(path)

    async def close(self) -> None:
        self._writer.close()
        self._reader.close()

    def _one(self, sql: str, *args: object) -> tuple | None:
        return self._reader.execute(sql, args).fetchone()

    def _all(self, sql: str, *args: object) -> list[tuple]:
        return self._reader.execute(sql, args).fetchall()

    def _account_id(self, connection: sqlite3.Connection, address: str) -> int:
        row = connection.execute("SELECT id FROM accounts WHERE address = ?", (address,)).fetchone()
        if row is None:
            raise NotFound(f"no account {address}")
        return row[0]

    # Admin -----------------------------------------------------------------------

    async def add_domain(self, name: str) -> None:
        def write(c: sqlite3.Connection) -> None:
            try:
                c.execute("INSERT INTO domains(name, created) VALUES (?, ?)", (name, time.time()))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"domain {name} exists already") from None
        await self._writer.submit(write)

    async def list_domains(self) -> list[str]:
        return [row[0] for row in self._all("SELECT name FROM domains ORDER BY name")]

    async def delete_domain(self, name: str) -> None:
        def write(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT id FROM domains WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no domain {name}")
            if c.execute("SELECT 1 FROM accounts WHERE domain_id = ?", (row[0],)).fetchone():
                raise StoreError(f"domain {name} still has accounts; delete them first")
            c.execute("DELETE FROM aliases WHERE address LIKE ?", ("%@" + name,))
            c.execute("DELETE FROM domains WHERE id = ?", (row[0],))
        await self._writer.submit(write)

    async def add_account(self, address: str, password_hash: str) -> Account:
        def write(c: sqlite3.Connection) -> Account:
            domain = c.execute("SELECT id FROM domains WHERE name = ?", (_domain_of(address),)).fetchone()
            if domain is None:
                raise NotFound(f"domain {_domain_of(address)} is not one of ours; add it first")
            now = time.time()
            try:
                account_id = c.execute(
                    "INSERT INTO accounts(address, domain_id, password_hash, created) VALUES (?, ?, ?, ?)",
                    (address, domain[0], password_hash, now)).lastrowid
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"account {address} exists already") from None
            c.executemany(
                "INSERT INTO mailboxes(account_id, name, special_use, uidvalidity) VALUES (?, ?, ?, ?)",
                [(account_id, name, use, new_uidvalidity(c, account_id)) for name, use in SPECIAL_MAILBOXES])
            c.executemany("INSERT INTO subscriptions(account_id, name) VALUES (?, ?)",
                          [(account_id, name) for name, _ in SPECIAL_MAILBOXES])
            return Account(account_id, address, False, True)
        return await self._writer.submit(write)

    async def list_accounts(self) -> list[Account]:
        return [_account(r) for r in self._all(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY address")]

    async def delete_account(self, address: str) -> None:
        def write(c: sqlite3.Connection) -> None:
            account_id = self._account_id(c, address)
            c.execute("DELETE FROM aliases WHERE target = ? OR address = ?", (address, address))
            blob_ids = {b for (b,) in c.execute("SELECT m.blob_id FROM messages m JOIN mailboxes b "
                                                "ON b.id = m.mailbox_id WHERE b.account_id = ?", (account_id,))}
            c.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
            collect_garbage(c, blob_ids)
        await self._writer.submit(write)

    async def _update_account(self, address: str, sql: str, *args: object) -> None:
        def write(c: sqlite3.Connection) -> None:
            if c.execute(sql, (*args, address)).rowcount == 0:
                raise NotFound(f"no account {address}")
        await self._writer.submit(write)

    async def set_password(self, address: str, password_hash: str) -> None:
        await self._update_account(address, "UPDATE accounts SET password_hash = ? WHERE address = ?",
                                   password_hash)

    async def set_imap_enabled(self, address: str, enabled: bool) -> None:
        await self._update_account(address, "UPDATE accounts SET imap_enabled = ? WHERE address = ?",
                                   int(enabled))

    async def set_disabled(self, address: str, disabled: bool) -> None:
        await self._update_account(address, "UPDATE accounts SET disabled = ? WHERE address = ?",
                                   int(disabled))

    async def add_app_password(self, address: str, name: str, password_hash: str) -> None:
        def write(c: sqlite3.Connection) -> None:
            account_id = self._account_id(c, address)
            try:
                c.execute("INSERT INTO app_passwords(account_id, name, password_hash, created) "
                          "VALUES (?, ?, ?, ?)", (account_id, name, password_hash, time.time()))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"{address} has an app password named {name!r} already") from None
        await self._writer.submit(write)

    async def list_app_passwords(self, address: str) -> list[AppPassword]:
        if await self.find_account(address) is None:
            raise NotFound(f"no account {address}")
        rows = self._all("SELECT p.name, p.created FROM app_passwords p JOIN accounts a "
                         "ON a.id = p.account_id WHERE a.address = ? ORDER BY p.name", address)
        return [AppPassword(name, created) for name, created in rows]

    async def revoke_app_password(self, address: str, name: str) -> None:
        def write(c: sqlite3.Connection) -> None:
            account_id = self._account_id(c, address)
            deleted = c.execute("DELETE FROM app_passwords WHERE account_id = ? AND name = ?",
                                (account_id, name)).rowcount
            if not deleted:
                raise NotFound(f"{address} has no app password named {name!r}")
        await self._writer.submit(write)

    async def add_alias(self, address: str, target: str) -> None:
        def write(c: sqlite3.Connection) -> None:
            if not c.execute("SELECT 1 FROM domains WHERE name = ?", (_domain_of(address),)).fetchone():
                raise NotFound(f"domain {_domain_of(address)} is not one of ours; add it first")
            try:
                c.execute("INSERT INTO aliases(address, target) VALUES (?, ?)", (address, target))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"alias {address} -> {target} exists already") from None
        await self._writer.submit(write)

    async def list_aliases(self) -> list[Alias]:
        return [Alias(a, t) for a, t in self._all("SELECT address, target FROM aliases ORDER BY address, target")]

    async def delete_alias(self, address: str, target: str | None = None) -> None:
        def write(c: sqlite3.Connection) -> None:
            if target is None:
                deleted = c.execute("DELETE FROM aliases WHERE address = ?", (address,)).rowcount
            else:
                deleted = c.execute("DELETE FROM aliases WHERE address = ? AND target = ?",
                                    (address, target)).rowcount
            if not deleted:
                raise NotFound(f"no alias {address}")
        await self._writer.submit(write)

    # Login -----------------------------------------------------------------------

    async def credentials(self, address: str) -> Credentials | None:
        row = self._one(f"SELECT {_ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE address = ?", address)
        if row is None:
            return None
        apps = self._all("SELECT password_hash FROM app_passwords WHERE account_id = ?", row[0])
        return Credentials(_account(row), row[4], tuple(r[0] for r in apps))

    # Routing ---------------------------------------------------------------------

    async def is_local_domain(self, domain: str) -> bool:
        return self._one("SELECT 1 FROM domains WHERE name = ?", domain) is not None

    async def find_account(self, address: str) -> Account | None:
        row = self._one(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE address = ?", address)
        return _account(row) if row else None

    async def alias_targets(self, address: str) -> list[str]:
        rows = self._all("SELECT target FROM aliases WHERE address = ?", address)
        if not rows:
            rows = self._all("SELECT target FROM aliases WHERE address = ?", "@" + _domain_of(address))
        return [r[0] for r in rows]

    async def addresses_of(self, account_id: int) -> set[str]:
        row = self._one("SELECT address FROM accounts WHERE id = ?", account_id)
        if row is None:
            return set()
        aliases = self._all("SELECT address FROM aliases WHERE target = ? AND address NOT LIKE '@%'", row[0])
        return {row[0].lower()} | {a[0].lower() for a in aliases}

    # Delivery --------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> None:
        await self._write(lambda c: (None, write_delivery(c, delivery)))

    # Reading ---------------------------------------------------------------------

    async def mailboxes(self, account_id: int) -> list[MailboxInfo]:
        rows = self._all(
            "SELECT b.name, b.special_use, b.uidvalidity, b.uidnext, b.highestmodseq, "
            "(SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id) "
            "FROM mailboxes b WHERE b.account_id = ? ORDER BY b.id", account_id)
        return [MailboxInfo(*row) for row in rows]

    async def messages(self, account_id: int, mailbox: str) -> list[StoredMessage]:
        box = self._one("SELECT id FROM mailboxes WHERE account_id = ? AND name = ?", account_id, mailbox)
        if box is None:
            raise NotFound(f"no mailbox {mailbox}")
        rows = self._all(
            "SELECT m.uid, m.size, m.flags, m.internal_date, m.modseq, b.summary, m.header_prefix, b.data "
            "FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? ORDER BY m.uid", box[0])
        return [StoredMessage(mailbox, uid, size, flags, date, modseq, summary, prefix + data)
                for uid, size, flags, date, modseq, summary, prefix, data in rows]

    async def check(self) -> list[str]:
        problems = [row[0] for row in self._all("PRAGMA integrity_check") if row[0] != "ok"]
        problems += [f"mailbox {name}: uidnext {uidnext} not above uid {top}" for name, uidnext, top in self._all(
            "SELECT b.name, b.uidnext, max(m.uid) FROM mailboxes b JOIN messages m ON m.mailbox_id = b.id "
            "GROUP BY b.id HAVING max(m.uid) >= b.uidnext")]
        problems += [f"message {mid} has no blob" for (mid,) in self._all(
            "SELECT m.id FROM messages m LEFT JOIN blobs b ON b.id = m.blob_id WHERE b.id IS NULL")]
        problems += [f"mailbox {name}: modseq {top} above highestmodseq {highest}" for name, highest, top in self._all(
            "SELECT b.name, b.highestmodseq, max(m.modseq) FROM mailboxes b JOIN messages m "
            "ON m.mailbox_id = b.id GROUP BY b.id HAVING max(m.modseq) > b.highestmodseq")]
        return problems
