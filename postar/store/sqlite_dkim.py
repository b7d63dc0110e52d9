"""DKIM signing keys in the SQLite store (table ``dkim_keys``, migration 0005).

The private keys are kept in the database file, which is readable by its owner
only (``SQLiteStore.open``); nothing here logs them.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from postar.store import AlreadyExists, DKIMKey, NotFound


class DKIMStoreMixin:
    """The DKIM part of ``SQLiteStore``; needs its ``_all`` and ``_writer``."""

    _all: Any
    _writer: Any

    async def add_dkim_key(self, domain: str, selector: str, algorithm: str, private_key: str,
                           public_key: str) -> None:
        def write(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT id FROM domains WHERE name = ?", (domain,)).fetchone()
            if row is None:
                raise NotFound(f"domain {domain} is not one of ours; add it first")
            try:
                c.execute("INSERT INTO dkim_keys(domain_id, selector, algorithm, private_key, public_key, created) "
                          "VALUES (?, ?, ?, ?, ?, ?)", (row[0], selector, algorithm, private_key, public_key,
                                                        time.time()))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"domain {domain} has a DKIM key with selector {selector} already") from None
        await self._writer.submit(write)

    async def dkim_keys(self, domain: str | None = None) -> list[DKIMKey]:
        sql = ("SELECT d.name, k.selector, k.algorithm, k.private_key, k.public_key, k.created "
               "FROM dkim_keys k JOIN domains d ON d.id = k.domain_id")
        order = " ORDER BY d.name, k.algorithm, k.created, k.selector"
        rows = self._all(sql + order) if domain is None else self._all(sql + " WHERE d.name = ?" + order, domain)
        return [DKIMKey(*row) for row in rows]
