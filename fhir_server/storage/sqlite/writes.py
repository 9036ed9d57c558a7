"""Write operations on the writer connection: the atomic commit and the outbox bookkeeping.

Each function runs inside a transaction (a savepoint of a group, see ``writer.py``) and raises
on any problem, which rolls its savepoint back: a failed commit writes nothing. ``commit``
writes consumptions first, then each change's compare-and-set, current row, history row and
index entries, then the outbox events.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from fhir_server.storage.protocol import (
    AlreadyConsumed,
    Change,
    Consumption,
    OutboxEvent,
    VersionConflict,
)
from fhir_server.storage.sqlite.index_tables import delete_entries, insert_entries


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


def commit(connection: sqlite3.Connection, batch: Batch) -> None:
    _record_consumptions(connection, batch.consumed)
    for change in batch.changes:
        _apply_change(connection, change)
    if batch.events:
        connection.executemany(_INSERT_EVENT, [(e.id, e.topic, e.payload, e.created)
                                               for e in batch.events])


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
    delete_entries(connection, rid)
    connection.execute(_INSERT_HISTORY, version_row)
    if change.body is not None:
        insert_entries(connection, rid, change.index)
