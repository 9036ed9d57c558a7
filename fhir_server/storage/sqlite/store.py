"""``SqliteStore``: the Store protocol on one SQLite file, run off the event loop.

One writer connection lives in a process of its own (``writer_process.py`` starts
``writer_child.py``), which commits the writes sent meanwhile as one group, so writes never
wait on each other's locks and the writer never competes with the requests for the GIL; reads
run on a small pool of threads, each with its own connection opened on first use. WAL mode lets
those readers work while the writer commits.
Point reads by primary key (``read``, ``read_version``) are the exception: they take ~10-20 µs
of SQLite time, far less than a thread hand-off (~100 µs), so they run on the event loop's own
read connection (a WAL reader never waits for the writer). A search without a total first tries
the same, within a budget of SQLite steps (well under a millisecond); one that would take longer
is interrupted and run again on a reader thread (``reads.search_within_budget``).
Every sqlite3 exception raised on those threads is turned into a protocol error there
(``errors.store_error``), and the writer process answers with protocol errors, so nothing above
this module sees a driver exception.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

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
from fhir_server.storage.sqlite.errors import store_error
from fhir_server.storage.sqlite.schema import SYNCHRONOUS_MODES, open_connection
from fhir_server.storage.sqlite.writer_process import WriterProcess

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
        self._writer: WriterProcess | None = None
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
        writer = WriterProcess(self._path, synchronous=self._synchronous)
        await writer.start()
        self._readers = ThreadPoolExecutor(max_workers=self._reader_count,
                                           thread_name_prefix="sqlite-reader")
        self._writer = writer

    async def close(self) -> None:
        """Finish the writes sent so far, close every reader connection, then stop the
        writer process, which empties the WAL into the file (no reader holds it back)."""
        writer, readers = self._writer, self._readers
        if writer is None or readers is None:
            return
        self._writer = self._readers = None
        await writer.drain()
        await asyncio.get_running_loop().run_in_executor(None, self._close_readers, readers)
        await writer.stop()

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id while the store is open (for tests and diagnostics)."""
        return None if self._writer is None else self._writer.pid

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
            await self._on_writer("commit", batch, together=writes.writes_together(batch))

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
            await self._on_writer("mark-delivered", tuple(event_ids))

    async def outbox_failed(self, event_id: str) -> None:
        await self._on_writer("count-failure", event_id)

    async def replace_index(self, resource_type: str, rewrites: Sequence[IndexRewrite]) -> int:
        if not rewrites:
            return 0
        batch = reindex.IndexBatch(resource_type, tuple(rewrites))
        replaced: int = await self._on_writer("replace-index", batch)
        return replaced

    async def read_marks(self, prefix: str) -> dict[str, str]:
        return await self._on_reader(reindex.read_marks, prefix)

    async def write_marks(self, marks: Mapping[str, str | None]) -> None:
        if marks:
            await self._on_writer("write-marks", tuple(marks.items()))

    async def _on_reader(self, work: Work[A, T], argument: A) -> T:
        readers = self._readers
        if readers is None:
            raise StoreUnavailable("the SQLite store is not started or is closed")
        return await asyncio.get_running_loop().run_in_executor(
            readers, self._run_on_reader, work, argument)

    async def _on_writer(self, operation: str, argument: object, *,
                         together: bool = False) -> Any:
        """``operation`` (see ``wire.OPERATIONS``) on ``argument`` in the writer process;
        ``together``: the writer may write ``argument`` with other callers' in the same
        statements (``writes.commit_together``)."""
        writer = self._writer
        if writer is None:
            raise StoreUnavailable("the SQLite store is not started or is closed")
        return await writer.run(operation, argument, together=together)

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

    def _close_readers(self, readers: ThreadPoolExecutor) -> None:
        """Let queued reads finish, then close every read connection (none is in use any more)."""
        readers.shutdown(wait=True)
        with self._connections_lock:
            connections = [*self._reader_connections]
            self._reader_connections.clear()
        self._loop_connection = None
        for connection in connections:
            connection.close()
