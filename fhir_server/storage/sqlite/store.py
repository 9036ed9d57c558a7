"""``SqliteStore``: the Store protocol on one SQLite file, run off the event loop.

One writer connection lives on a single dedicated thread (``writer.py``), which commits the
writes queued meanwhile as one group, so writes never wait on each other's locks; reads run
on a small pool of threads, each with its own connection opened on first use. WAL mode lets
those readers work while the writer commits.
Point reads by primary key (``read``, ``read_version``) are the exception: they take ~10-20 µs
of SQLite time, far less than a thread hand-off (~100 µs), so they run on the event loop's own
read connection (a WAL reader never waits for the writer). A search without a total first tries
the same, within a budget of SQLite steps (well under a millisecond); one that would take longer
is interrupted and run again on a reader thread (``reads.search_within_budget``).
Every sqlite3 exception raised on those threads is turned into a protocol error there
(``errors.store_error``), so nothing above this module sees a driver exception.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from fhir_server.storage.protocol import (
    Change,
    Consumption,
    IndexRewrite,
    OutboxEvent,
    OutboxRecord,
    QueryPlan,
    SearchPage,
    StoredVersion,
    StoreUnavailable,
)
from fhir_server.storage.query import HistoryQuery, SearchQuery
from fhir_server.storage.sqlite import reads, reindex, writes
from fhir_server.storage.sqlite.checkpointer import Checkpointer
from fhir_server.storage.sqlite.errors import store_error
from fhir_server.storage.sqlite.schema import SYNCHRONOUS_MODES, open_connection, prepare_database
from fhir_server.storage.sqlite.writer import GroupCommitWriter

A = TypeVar("A")
T = TypeVar("T")
Work = Callable[[sqlite3.Connection, A], T]


class SqliteStore:
    """The embedded store: ``SqliteStore(Path("fhir.sqlite3"))``, then ``await start()``."""

    def __init__(self, path: Path, *, synchronous: str = "NORMAL", readers: int = 4) -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}, "
                             f"not {synchronous!r}")
        if readers < 1:
            raise ValueError("readers must be at least 1")
        self._path = path
        self._synchronous = mode
        self._reader_count = readers
        self._writer: GroupCommitWriter | None = None
        self._checkpointer: Checkpointer | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._loop_connection: sqlite3.Connection | None = None
        self.inline_searches = 0
        """Searches answered on the event loop's connection within the inline budget."""

    async def start(self) -> None:
        if self._writer is not None:
            return
        checkpointer = Checkpointer(self._open_checkpointer)
        writer = GroupCommitWriter(self._open_writer, after_commit=checkpointer.notify,
                                   together=writes.commit_together)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, writer.start)
        try:
            await loop.run_in_executor(None, checkpointer.start)
        except BaseException:
            await loop.run_in_executor(None, writer.stop)
            raise
        self._checkpointer = checkpointer
        self._readers = ThreadPoolExecutor(max_workers=self._reader_count,
                                           thread_name_prefix="sqlite-reader")
        self._writer = writer

    async def close(self) -> None:
        writer, readers, checkpointer = self._writer, self._readers, self._checkpointer
        if writer is None or readers is None or checkpointer is None:
            return
        self._writer = self._readers = self._checkpointer = None
        await asyncio.get_running_loop().run_in_executor(None, self._shut_down, writer, readers,
                                                         checkpointer)

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        found = self._inline(reads.read_current, (resource_type, id))
        await asyncio.sleep(0)  # let other tasks run, as a real suspension point would
        return found

    async def read_version(self, resource_type: str, id: str, version: int) -> StoredVersion | None:
        found = self._inline(reads.read_version, (resource_type, id, version))
        await asyncio.sleep(0)
        return found

    async def commit(self, changes: Sequence[Change], events: Sequence[OutboxEvent] = (),
                     consumed: Sequence[Consumption] = ()) -> None:
        batch = writes.Batch(tuple(changes), tuple(events), tuple(consumed))
        if batch.changes or batch.events or batch.consumed:
            await self._on_writer(writes.commit, batch, together=writes.writes_together(batch))

    async def history(self, query: HistoryQuery) -> tuple[StoredVersion, ...]:
        return await self._on_reader(reads.history, query)

    async def search(self, query: SearchQuery) -> SearchPage:
        if not query.want_total:
            found = self._inline(reads.search_within_budget, query)
            if found is not None:
                self.inline_searches += 1
                await asyncio.sleep(0)
                return found
        return await self._on_reader(reads.search, query)

    async def explain(self, query: SearchQuery) -> QueryPlan:
        return await self._on_reader(reads.explain, query)

    async def outbox_pending(self, limit: int) -> tuple[OutboxRecord, ...]:
        return await self._on_reader(reads.outbox_pending, limit)

    async def outbox_delivered(self, event_ids: Sequence[str]) -> None:
        if event_ids:
            await self._on_writer(writes.mark_delivered, tuple(event_ids))

    async def outbox_failed(self, event_id: str) -> None:
        await self._on_writer(writes.count_failure, event_id)

    async def replace_index(self, resource_type: str, rewrites: Sequence[IndexRewrite]) -> int:
        if not rewrites:
            return 0
        batch = reindex.IndexBatch(resource_type, tuple(rewrites))
        return await self._on_writer(reindex.replace_index, batch)

    async def read_marks(self, prefix: str) -> dict[str, str]:
        return await self._on_reader(reindex.read_marks, prefix)

    async def write_marks(self, marks: Mapping[str, str | None]) -> None:
        if marks:
            await self._on_writer(reindex.write_marks, tuple(marks.items()))

    async def _on_reader(self, work: Work[A, T], argument: A) -> T:
        readers = self._readers
        if readers is None:
            raise StoreUnavailable("the SQLite store is not started or is closed")
        return await asyncio.get_running_loop().run_in_executor(
            readers, self._run_on_reader, work, argument)

    async def _on_writer(self, work: Work[A, T], argument: A, *, together: bool = False) -> T:
        """``work(connection, argument)`` on the writer; ``together``: the writer may write
        ``argument`` with other callers' (``writes.commit_together``) instead."""
        writer = self._writer
        if writer is None:
            raise StoreUnavailable("the SQLite store is not started or is closed")
        result: T = await writer.run(lambda connection: work(connection, argument),
                                     part=argument if together else None)
        return result

    def _inline(self, work: Work[A, T], argument: A) -> T:
        """A primary-key lookup on the event loop's own read connection."""
        if self._readers is None:
            raise StoreUnavailable("the SQLite store is not started or is closed")
        try:
            connection = self._loop_connection
            if connection is None:
                connection = self._loop_connection = self._open_shared_reader()
            return work(connection, argument)
        except sqlite3.Error as error:
            raise store_error(error) from error

    def _run_on_reader(self, work: Work[A, T], argument: A) -> T:
        """On a reader thread: this thread's connection, opened on first use."""
        try:
            try:
                connection: sqlite3.Connection = self._local.connection
            except AttributeError:
                connection = self._open_reader()
            return work(connection, argument)
        except sqlite3.Error as error:
            raise store_error(error) from error

    def _open_writer(self) -> sqlite3.Connection:
        """On the writer thread: open the file (creating its directory) and prepare the schema."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            connection = open_connection(self._path, synchronous=self._synchronous,
                                         read_only=False)
            try:
                prepare_database(connection)
                connection.execute("PRAGMA wal_autocheckpoint = 0")  # see checkpointer.py
            except BaseException:
                connection.close()
                raise
        except (sqlite3.Error, OSError) as error:
            raise store_error(error) from error
        return connection

    def _open_checkpointer(self) -> sqlite3.Connection:
        try:
            return open_connection(self._path, synchronous=self._synchronous, read_only=False)
        except sqlite3.Error as error:
            raise store_error(error) from error

    def _open_reader(self) -> sqlite3.Connection:
        connection = self._open_shared_reader()
        self._local.connection = connection
        return connection

    def _open_shared_reader(self) -> sqlite3.Connection:
        """A read-only connection, closed with the store."""
        connection = open_connection(self._path, synchronous=self._synchronous, read_only=True)
        with self._connections_lock:
            self._reader_connections.append(connection)
        return connection

    def _shut_down(self, writer: GroupCommitWriter, readers: ThreadPoolExecutor,
                   checkpointer: Checkpointer) -> None:
        """Let queued work finish, then close every connection (none is in use any more)."""
        writer.stop()
        readers.shutdown(wait=True)
        with self._connections_lock:
            connections = [*self._reader_connections]
            self._reader_connections.clear()
        self._loop_connection = None
        for connection in connections:
            connection.close()
        checkpointer.stop()  # last: with every reader gone, the WAL empties into the file

