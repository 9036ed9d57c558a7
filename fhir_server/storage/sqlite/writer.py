"""Group commit: the writes that queued up meanwhile, in ONE ``BEGIN IMMEDIATE`` … ``COMMIT``.

The writer process (``writer_child.py``) takes every write request that arrived while it was
committing (up to ``MAX_GROUP``) and hands them to ``commit_group`` as ``Job``s. Each job runs
inside its own savepoint: a write that fails (a version conflict, a consumption seen before, a
rejected statement) rolls back its savepoint only and gets its own error; the others commit
together. A job's result is only sent back after the ``COMMIT`` returned, so an answered write
is durable. Grouping spreads the cost of a commit (WAL frames for the shared b-tree pages) over
every write of the group, which is what lets concurrent creates scale on one SQLite file.

A job may also carry a ``part``: data that the ``together`` function can write with other jobs'
parts in a few statements (for the store: commits that only create resources, one multi-row
``INSERT`` per table). Consecutive such jobs of a group are written at once, inside one
savepoint (the group's transaction itself when every job of the group is one); if that fails,
it is rolled back and each of them runs alone in its own savepoint, as above, so only the
failing one gets an error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhir_server.storage.protocol import StoreError
from fhir_server.storage.sqlite.errors import store_error

MAX_GROUP = 64

Work = Callable[[sqlite3.Connection], Any]
Together = Callable[[sqlite3.Connection, list[Any]], None]
"""Writes the parts of several jobs at once; raises (having written nothing that stays) when
one of them cannot be written."""


@dataclass(eq=False, slots=True)
class Job:
    """One write of a group: what to run, and once the group is committed its outcome."""

    work: Work
    part: Any = None
    result: Any = None
    error: BaseException | None = None


def commit_group(connection: sqlite3.Connection, group: list[Job],
                 together: Together | None = None) -> None:
    """Run the jobs in one transaction; each ends with its ``result`` or its ``error``."""
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        _fail_all(group, store_error(error))
        return
    runs = _runs(group, together)
    if len(group) == 1:
        _run_alone(connection, group[0])
    elif len(runs) == 1:
        assert together is not None
        if not _run_whole_group_together(connection, group, together):
            return
    else:
        for run in runs:
            if len(run) > 1:
                assert together is not None
                _run_together(connection, run, together)
            else:
                _run_in_savepoint(connection, run[0])
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


def _fail_all(group: list[Job], error: BaseException) -> None:
    for job in group:
        job.error = error


def _run_alone(connection: sqlite3.Connection, job: Job) -> None:
    """A group of one needs no savepoint: a failure rolls the transaction back."""
    if not _execute(connection, job):
        connection.execute("ROLLBACK")


def _runs(group: list[Job], together: Together | None) -> list[list[Job]]:
    """The group in order, consecutive jobs with parts together (when ``together`` is set),
    every other job alone."""
    runs: list[list[Job]] = []
    for job in group:
        if (together is not None and job.part is not None and runs
                and runs[-1][-1].part is not None):
            runs[-1].append(job)
        else:
            runs.append([job])
    return runs


def _run_whole_group_together(connection: sqlite3.Connection, group: list[Job],
                              together: Together) -> bool:
    """Every job of the group with ``together``, in the group's transaction itself (no
    savepoint: two statements fewer); if it fails, the transaction is rolled back and begun
    again, and each job runs alone in its own savepoint. False when the group is settled
    already (beginning again failed)."""
    try:
        together(connection, [job.part for job in group])
    except (sqlite3.Error, StoreError, ValueError, TypeError):
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            _fail_all(group, store_error(error))
            return False
        for job in group:
            _run_in_savepoint(connection, job)
    return True


def _run_together(connection: sqlite3.Connection, jobs: list[Job], together: Together) -> None:
    """Jobs whose parts ``together`` writes at once; if it fails, each job alone."""
    connection.execute("SAVEPOINT together")
    try:
        together(connection, [job.part for job in jobs])
    except (sqlite3.Error, StoreError, ValueError, TypeError):
        connection.execute("ROLLBACK TO together")
        connection.execute("RELEASE together")
        for job in jobs:
            _run_in_savepoint(connection, job)
        return
    connection.execute("RELEASE together")


def _run_in_savepoint(connection: sqlite3.Connection, job: Job) -> None:
    connection.execute("SAVEPOINT write")
    if not _execute(connection, job):
        connection.execute("ROLLBACK TO write")
    connection.execute("RELEASE write")


def _execute(connection: sqlite3.Connection, job: Job) -> bool:
    """Run a job's work, keeping its result or its error; True when it succeeded."""
    try:
        job.result = job.work(connection)
    except sqlite3.Error as error:
        job.error = store_error(error)
    except (StoreError, ValueError, TypeError) as error:
        job.error = error
    return job.error is None
