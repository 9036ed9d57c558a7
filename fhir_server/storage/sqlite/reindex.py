"""Writes of ``$reindex`` on the writer connection: index rewrites and the bookkeeping marks.

``replace_index`` swaps the index entries of current resources in place: no new version, no
history row, ``last_updated`` and the body untouched. Each rewrite names the version its entries
were extracted from, and is skipped when that version is no longer current (a concurrent update
has already written entries of its own), so a re-extraction can never overwrite newer entries.

Marks are small name → value notes the engine keeps about the store itself (which custom search
parameters the index holds). Their table is created on first write; a file that never had a
mark has no table, which reads as "no marks".
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from fhir_server.storage.protocol import IndexRewrite
from fhir_server.storage.sqlite.index_tables import replace_entries

MARKS_TABLE = "marks"

_CURRENT_LIVE = ("SELECT rid FROM resources WHERE resource_type = ? AND id = ? AND version = ? "
                 "AND body IS NOT NULL")
_CREATE_MARKS = (f"CREATE TABLE IF NOT EXISTS {MARKS_TABLE} "
                 "(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
_HAS_MARKS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
_READ_MARKS = f"SELECT name, value FROM {MARKS_TABLE} WHERE name >= ? AND name < ? ORDER BY name"
_SET_MARK = (f"INSERT INTO {MARKS_TABLE} (name, value) VALUES (?, ?) "
             "ON CONFLICT (name) DO UPDATE SET value = excluded.value")
_DELETE_MARK = f"DELETE FROM {MARKS_TABLE} WHERE name = ?"


@dataclass(frozen=True, slots=True)
class IndexBatch:
    """The rewrites of one ``replace_index`` call: resources of one type."""

    resource_type: str
    rewrites: tuple[IndexRewrite, ...]


def replace_index(connection: sqlite3.Connection, batch: IndexBatch) -> int:
    """Replace the entries of each still-current resource; returns how many were replaced."""
    replaced = 0
    for rewrite in batch.rewrites:
        row = connection.execute(_CURRENT_LIVE, (batch.resource_type, rewrite.id,
                                                 rewrite.version)).fetchone()
        if row is None:
            continue
        rid = int(row[0])
        replace_entries(connection, rid, rewrite.index)
        replaced += 1
    return replaced


def write_marks(connection: sqlite3.Connection,
                marks: tuple[tuple[str, str | None], ...]) -> None:
    """Set each mark (None: remove it), creating the table on first use."""
    connection.execute(_CREATE_MARKS)
    for name, value in marks:
        if value is None:
            connection.execute(_DELETE_MARK, (name,))
        else:
            connection.execute(_SET_MARK, (name, value))


def read_marks(connection: sqlite3.Connection, prefix: str) -> dict[str, str]:
    """Marks whose name starts with ``prefix`` (none when no mark was ever written)."""
    if connection.execute(_HAS_MARKS, (MARKS_TABLE,)).fetchone() is None:
        return {}
    rows = connection.execute(_READ_MARKS, (prefix, prefix + "\U0010ffff")).fetchall()
    return {str(name): str(value) for name, value in rows}
