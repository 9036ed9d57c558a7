"""Write operations on the writer connection: the atomic commit and the outbox bookkeeping.

Each function runs inside a transaction (a savepoint of a group, see ``writer.py``) and raises
on any problem, which rolls its savepoint back: a failed commit writes nothing. ``commit``
writes consumptions first, then each change's compare-and-set, current row, history row and
index entries, then the outbox events.

``commit_together`` writes the commits of several callers that only create resources (the
common case under load, ``writes_together``) with one multi-row ``INSERT`` per table: the same
rows as ``commit`` of each, in a few statements instead of several per resource. A taken id
makes it raise like ``commit``; the writer then commits each batch on its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from fhir_server.storage.protocol import (
    AlreadyConsumed,
    Change,
    Consumption,
    OutboxEvent,
    VersionConflict,
)
from fhir_server.storage.sqlite.index_tables import (
    STATEMENT_TEXTS_KEPT,
    insert_entries,
    insert_entries_of,
    replace_entries,
    rows_per_statement,
)


@dataclass(frozen=True, slots=True)
class Batch:
    """Everything one ``commit`` writes."""

    changes: tuple[Change, ...]
    events: tuple[OutboxEvent, ...]
    consumed: tuple[Consumption, ...]


_CONSUME = "INSERT OR IGNORE INTO consumed (consumer, event_id) VALUES (?, ?)"
_CURRENT = "SELECT rid, version FROM resources WHERE resource_type = ? AND id = ?"
_INSERT_CURRENT = ("INSERT INTO resources (resource_type, id, version, last_updated, method, body) "
                   "VALUES (?, ?, ?, ?, ?, ?)")
_UPDATE_CURRENT = ("UPDATE resources SET version = ?, last_updated = ?, method = ?, body = ? "
                   "WHERE rid = ?")
_CLOSE_PREVIOUS = ("UPDATE history SET valid_to = ? "
                   "WHERE resource_type = ? AND id = ? AND version = ?")
_INSERT_HISTORY = ("INSERT INTO history (resource_type, id, version, last_updated, method, body) "
                   "VALUES (?, ?, ?, ?, ?, ?)")
_INSERT_EVENT = "INSERT INTO outbox (id, topic, payload, created) VALUES (?, ?, ?, ?)"
_DELIVERED = "UPDATE outbox SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL"
_FAILED = "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?"
_CURRENT_ROWS = "INSERT INTO resources (resource_type, id, version, last_updated, method, body)"
_LARGEST_ROW_ID = 2**63 - 1
_HISTORY_ROWS = "INSERT INTO history (resource_type, id, version, last_updated, method, body)"
_EVENT_ROWS = "INSERT INTO outbox (id, topic, payload, created)"


def commit(connection: sqlite3.Connection, batch: Batch) -> None:
    _record_consumptions(connection, batch.consumed)
    for change in batch.changes:
        _apply_change(connection, change)
    if batch.events:
        connection.executemany(_INSERT_EVENT, [(e.id, e.topic, e.payload, e.created)
                                               for e in batch.events])


def writes_together(batch: Batch) -> bool:
    """Whether ``commit_together`` may write this batch with others: it only creates."""
    return bool(batch.changes) and not batch.consumed and all(
        change.expected_version == 0 and change.body is not None for change in batch.changes)


def commit_together(connection: sqlite3.Connection, batches: Sequence[Batch]) -> None:
    """``commit`` of each batch (all ``writes_together``), one statement per table and chunk.

    The current rows go first, in one ``INSERT`` without row ids: SQLite gives each the next
    row id in turn (one more than the largest, the writer holding the write lock), so the
    statement's last row id tells every row's id, with no query for the largest one. A
    resource that exists already, or twice among the batches, breaks the unique key and
    raises ``sqlite3.IntegrityError``.
    """
    changes = [change for batch in batches for change in batch.changes]
    versions = [(change.resource_type, change.id, change.version, change.last_updated,
                 change.method, change.body) for change in changes]
    first_rid = _insert_rows(connection, _CURRENT_ROWS, versions) - len(versions) + 1
    _insert_rows(connection, _HISTORY_ROWS, versions)
    insert_entries_of(connection, ((first_rid + n, change.index)
                                   for n, change in enumerate(changes)))
    events = [(e.id, e.topic, e.payload, e.created) for batch in batches for e in batch.events]
    if events:
        _insert_rows(connection, _EVENT_ROWS, events)


def _insert_rows(connection: sqlite3.Connection, head: str,
                 rows: Sequence[tuple[object, ...]]) -> int:
    """``head VALUES (…), (…)`` for the rows, as few statements as the parameter limit allows;
    the row id of the last row inserted."""
    per_statement = rows_per_statement(len(rows[0]))
    last_rid = 0
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        cursor = connection.execute(_rows_statement(head, len(chunk[0]), len(chunk)),
                                    [value for row in chunk for value in row])
        last_rid = cursor.lastrowid or 0
    if last_rid >= _LARGEST_ROW_ID:
        # SQLite picks random row ids past the largest: the rows are not consecutive
        raise ValueError("row ids are exhausted; cannot write these rows together")
    return last_rid


@lru_cache(maxsize=STATEMENT_TEXTS_KEPT)
def _rows_statement(head: str, width: int, rows: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([row] * rows)}"


def mark_delivered(connection: sqlite3.Connection, event_ids: tuple[str, ...]) -> None:
    delivered_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    connection.executemany(_DELIVERED, [(delivered_at, event_id) for event_id in event_ids])


def count_failure(connection: sqlite3.Connection, event_id: str) -> None:
    connection.execute(_FAILED, (event_id,))


def _record_consumptions(connection: sqlite3.Connection,
                         consumed: tuple[Consumption, ...]) -> None:
    for consumption in consumed:
        cursor = connection.execute(_CONSUME, (consumption.consumer, consumption.event_id))
        if cursor.rowcount == 0:
            raise AlreadyConsumed(f"{consumption.consumer} has already consumed "
                                  f"{consumption.event_id}")


def _insert_new(connection: sqlite3.Connection, change: Change,
                version_row: tuple[object, ...]) -> int:
    """The row of a resource that must not exist yet; its unique key is the compare-and-set."""
    try:
        rid = connection.execute(_INSERT_CURRENT, version_row).lastrowid
    except sqlite3.IntegrityError:
        found = connection.execute(_CURRENT, (change.resource_type, change.id)).fetchone()
        if found is None:
            raise
        raise VersionConflict(change.resource_type, change.id, 0, int(found[1])) from None
    assert rid is not None, "an INSERT into a rowid table always sets lastrowid"
    return rid


def _apply_change(connection: sqlite3.Connection, change: Change) -> None:
    """Compare-and-set the current row, append the history row, replace the index entries."""
    version_row = (change.resource_type, change.id, change.version, change.last_updated,
                   change.method, change.body)
    if change.expected_version == 0:
        rid = _insert_new(connection, change, version_row)
        connection.execute(_INSERT_HISTORY, version_row)
        if change.body is not None:
            insert_entries(connection, rid, change.index)
        return
    current = connection.execute(_CURRENT, (change.resource_type, change.id)).fetchone()
    actual = 0 if current is None else int(current[1])
    if current is None or actual != change.expected_version:
        raise VersionConflict(change.resource_type, change.id, change.expected_version, actual)
    rid = int(current[0])
    connection.execute(_UPDATE_CURRENT, (change.version, change.last_updated, change.method,
                                         change.body, rid))
    connection.execute(_CLOSE_PREVIOUS, (change.last_updated, change.resource_type,
                                         change.id, actual))
    connection.execute(_INSERT_HISTORY, version_row)
    replace_entries(connection, rid, () if change.body is None else change.index)
