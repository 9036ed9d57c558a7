"""The writer thread: owns the one write connection and commits queued writes in groups.

Writers that arrive while a transaction is being written wait in a queue; the thread then takes
all of them (up to ``MAX_GROUP``) into ONE ``BEGIN IMMEDIATE`` … ``COMMIT``, each inside its own
savepoint. A write that fails (a version conflict, a consumption seen before, a rejected
statement) rolls back its savepoint only and gets its own error; the others commit together.
Each caller is answered only after the ``COMMIT`` returned, so an answered write is durable.
Grouping spreads the cost of a commit (WAL frames for the shared b-tree pages) over every
write of the group, which is what lets concurrent creates scale on one SQLite file.

A job may also carry a ``part``: data that the writer's ``together`` function can write with
other jobs' parts in a few statements (for the store: commits that only create resources, one
multi-row ``INSERT`` per table). Consecutive such jobs of a group are written at once, inside
one savepoint (the group's transaction itself when every job of the group is one); if that
fails, it is rolled back and each of them runs alone in its own savepoint, as above, so only
the failing one gets an error. Fewer statements matter beyond
SQLite's own work: sqlite3 releases the GIL around each statement, and each time the writer
must then wait for the event loop to hand it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhir_server.storage.protocol import StoreError, StoreUnavailable
from fhir_server.storage.sqlite.errors import store_error

MAX_GROUP = 64

Work = Callable[[sqlite3.Connection], Any]
Together = Callable[[sqlite3.Connection, list[Any]], None]
"""Writes the parts of several jobs at once; raises (having written nothing that stays) when
one of them cannot be written."""


@dataclass(eq=False)
class _Job:
    work: Work
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    part: Any = None
    result: Any = None
    error: BaseException | None = None
    done: bool = field(default=False)


_STOP = object()


class GroupCommitWriter:
    """A thread running queued write functions in grouped transactions."""

    def __init__(self, open_connection: Callable[[], sqlite3.Connection], *,
                 after_commit: Callable[[], None] = lambda: None,
                 together: Together | None = None) -> None:
        self._open_connection = open_connection
        self._after_commit = after_commit
        self._together = together
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    def start(self) -> None:
        """Start the thread and open the connection; raises what opening raised."""
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise self._start_error

    def stop(self) -> None:
        """Finish the queued writes, close the connection and end the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    async def run(self, work: Work, *, part: Any = None) -> Any:
        """Run ``work(connection)`` inside a grouped transaction; its result once committed.

        ``part``: when given, ``together`` may write it with other jobs' parts instead of
        running ``work`` (which must then write the same and return None)."""
        if self._thread is None:
            raise StoreUnavailable("the SQLite store is not started or is closed")
        loop = asyncio.get_running_loop()
        job = _Job(work=work, loop=loop, future=loop.create_future(), part=part)
        self._queue.put(job)
        return await job.future

    def _run(self) -> None:
        try:
            self._connection = self._open_connection()
        except BaseException as error:
            self._start_error = error
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                group = [first]
                stop_after = False
                while len(group) < MAX_GROUP:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop_after = True
                        break
                    group.append(item)
                self._commit_group(self._connection, group)
                if stop_after:
                    return
        finally:
            self._connection.close()
            self._connection = None

    def _commit_group(self, connection: sqlite3.Connection, group: list[_Job]) -> None:
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            self._answer_all(group, store_error(error))
            return
        runs = self._runs(group)
        if len(group) == 1:
            self._run_alone(connection, group[0])
        elif len(runs) == 1:
            if not self._run_whole_group_together(connection, group):
                return
        else:
            for run in runs:
                if len(run) > 1:
                    self._run_together(connection, run)
                else:
                    self._run_in_savepoint(connection, run[0])
        try:
            if connection.in_transaction:
                connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            failure = store_error(error)
            for job in group:
                if job.error is None:
                    job.error = failure
        self._answer_group(group)
        self._after_commit()

    @staticmethod
    def _run_alone(connection: sqlite3.Connection, job: _Job) -> None:
        """A group of one needs no savepoint: a failure rolls the transaction back."""
        if not _execute(connection, job):
            connection.execute("ROLLBACK")

    def _runs(self, group: list[_Job]) -> list[list[_Job]]:
        """The group in order, consecutive jobs with parts together (when ``together`` is
        set), every other job alone."""
        runs: list[list[_Job]] = []
        for job in group:
            if (self._together is not None and job.part is not None and runs
                    and runs[-1][-1].part is not None):
                runs[-1].append(job)
            else:
                runs.append([job])
        return runs

    def _run_whole_group_together(self, connection: sqlite3.Connection,
                                  group: list[_Job]) -> bool:
        """Every job of the group with ``together``, in the group's transaction itself (no
        savepoint: two statements fewer); if it fails, the transaction is rolled back and
        begun again, and each job runs alone in its own savepoint. False when the group is
        settled already (beginning again failed)."""
        assert self._together is not None
        try:
            self._together(connection, [job.part for job in group])
        except (sqlite3.Error, StoreError, ValueError, TypeError):
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                self._answer_all(group, store_error(error))
                return False
            for job in group:
                self._run_in_savepoint(connection, job)
        return True

    def _run_together(self, connection: sqlite3.Connection, jobs: list[_Job]) -> None:
        """Jobs whose parts ``together`` writes at once; if it fails, each job alone."""
        assert self._together is not None
        connection.execute("SAVEPOINT together")
        try:
            self._together(connection, [job.part for job in jobs])
        except (sqlite3.Error, StoreError, ValueError, TypeError):
            connection.execute("ROLLBACK TO together")
            connection.execute("RELEASE together")
            for job in jobs:
                self._run_in_savepoint(connection, job)
            return
        connection.execute("RELEASE together")

    @staticmethod
    def _run_in_savepoint(connection: sqlite3.Connection, job: _Job) -> None:
        connection.execute("SAVEPOINT write")
        if not _execute(connection, job):
            connection.execute("ROLLBACK TO write")
        connection.execute("RELEASE write")

    def _answer_all(self, group: list[_Job], error: BaseException) -> None:
        for job in group:
            job.error = error
        self._answer_group(group)

    @staticmethod
    def _answer_group(group: list[_Job]) -> None:
        """Settle every job's future, with one wake-up of each event loop involved."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in group:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            # RuntimeError: the caller's loop is closed, so nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, jobs)


def _execute(connection: sqlite3.Connection, job: _Job) -> bool:
    """Run a job's work, keeping its result or its error; True when it succeeded."""
    try:
        job.result = job.work(connection)
    except sqlite3.Error as error:
        job.error = store_error(error)
    except (StoreError, ValueError, TypeError) as error:
        job.error = error
    return job.error is None


def _settle(jobs: list[_Job]) -> None:
    """On the callers' event loop: hand each job its result or error."""
    for job in jobs:
        if job.future.done():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)
