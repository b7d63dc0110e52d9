"""Group commit: one thread owns SQLite's write connection and commits in batches.

Every write is a function of a connection, queued with ``submit``. The writer
thread takes all writes waiting, runs each in its own savepoint (so one failing
write does not undo the others) inside one transaction, and commits once; in WAL
mode with ``synchronous=FULL`` that commit is one fsync of the WAL. Callers are
answered only after it returns, so "done" always means "on disk". While one
commit is syncing, the next batch gathers: concurrent sessions share fsyncs
instead of paying one each.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], Any]

log = logging.getLogger("postar.store")

_STOP = object()


class GroupCommitWriter:
    def __init__(self, connect: Callable[[], sqlite3.Connection]):
        self._connect = connect
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def submit(self, write: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``write``; the future resolves after the commit that includes it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((write, future, loop))
        return future

    def close(self) -> None:
        """Finish every queued write, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        connection = self._connect()
        try:
            while True:
                batch = [self._queue.get()]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stopping = any(item is _STOP for item in batch)
                self._commit(connection, [item for item in batch if item is not _STOP])
                if stopping:
                    return
        finally:
            connection.close()

    def _commit(self, connection: sqlite3.Connection, batch: list[tuple]) -> None:
        if not batch:
            return
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for write, _, _ in batch:
                connection.execute("SAVEPOINT one_write")
                try:
                    outcomes.append((write(connection), None))
                    connection.execute("RELEASE one_write")
                except Exception as error:  # the caller gets it; the batch goes on
                    connection.execute("ROLLBACK TO one_write")
                    connection.execute("RELEASE one_write")
                    outcomes.append((None, error))
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            log.error("store commit failed: %s", error)
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            outcomes = [(None, error)] * len(batch)
        for (_, future, loop), (result, error) in zip(batch, outcomes):
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # that event loop is closed: nobody waits any more
                pass


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
