"""One SQLite connection on its own thread, for the small stores beside the FHIR store (the
authorization server's and the accounts'): every call runs in turn on that thread, so no lock
is shared, and every sqlite3 or OS error leaves as a Store protocol error."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Final, TypeVar

from fhir_server.storage.protocol import StoreUnavailable
from fhir_server.storage.sqlite.errors import store_error

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS: Final = 5.0
SYNCHRONOUS_MODES: Final = ("NORMAL", "FULL", "EXTRA")


class DedicatedConnection:
    """``DedicatedConnection(path, prepare=…, name=…)``, then ``await start()``.

    ``prepare`` runs once on the new connection (WAL mode, schema); ``name`` says which store
    it is in thread names and errors. ``synchronous``: NORMAL, FULL or EXTRA.
    """

    def __init__(self, path: Path, *, prepare: Callable[[sqlite3.Connection], None],
                 name: str, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError("synchronous must be NORMAL, FULL or EXTRA")
        self._path = path
        self._prepare = prepare
        self._name = name
        self._synchronous = synchronous.upper()
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    async def start(self) -> None:
        """Open the file (created if missing) and prepare it; idempotent."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix=f"{self._name}-sqlite")
        try:
            self._connection = await self.run(self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        """Close the connection and stop the thread (idempotent)."""
        executor, connection = self._executor, self._connection
        self._executor = self._connection = None
        if executor is None:
            return
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(executor, connection.close)
        executor.shutdown(wait=True)

    async def call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` on the store's thread."""
        connection = self._connection
        if connection is None:
            raise StoreUnavailable(f"the {self._name} store is not started")
        return await self.run(lambda: work(connection))

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` on the store's thread, its errors mapped to Store errors."""
        if self._executor is None:
            raise StoreUnavailable(f"the {self._name} store is not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                _mapping_errors, work)

    def _open(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_SECONDS,
                                     isolation_level=None, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")
            self._prepare(connection)
        except BaseException:
            connection.close()
            raise
        return connection


@contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (no other writer in between) … ``COMMIT``, or ``ROLLBACK`` when the
    block raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _mapping_errors(work: Callable[[], T]) -> T:
    try:
        return work()
    except (sqlite3.Error, OSError) as exc:
        raise store_error(exc) from exc
