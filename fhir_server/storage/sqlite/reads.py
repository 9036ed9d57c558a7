"""Read operations, each a plain function of a reader connection and one argument.

They run on the store's reader threads. A statement that runs to completion ends its implicit
read transaction, so every call sees the latest committed state; a search that also counts runs
both statements in one read transaction, so its page and total agree.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from fhir_server.storage.protocol import (
    OutboxEvent,
    OutboxRecord,
    QueryPlan,
    SearchPage,
    StoredVersion,
)
from fhir_server.storage.query import HistoryQuery, SearchQuery
from fhir_server.storage.sqlite.compile import (
    VERSION_COLUMNS,
    CompiledSearch,
    Sql,
    compile_history,
    compile_search,
)

_VERSION_WIDTH = len(VERSION_COLUMNS.split(","))

_READ_CURRENT = (f"SELECT {VERSION_COLUMNS} FROM resources "
                 f"WHERE resource_type = ? AND id = ?")
_READ_VERSION = (f"SELECT {VERSION_COLUMNS} FROM history "
                 f"WHERE resource_type = ? AND id = ? AND version = ?")
_OUTBOX_PENDING = ("SELECT id, topic, payload, created, attempts FROM outbox "
                   "WHERE delivered_at IS NULL ORDER BY created, seq LIMIT ?")


def read_current(connection: sqlite3.Connection, key: tuple[str, str]) -> StoredVersion | None:
    rows = connection.execute(_READ_CURRENT, key).fetchall()
    return StoredVersion(*rows[0]) if rows else None


def read_version(connection: sqlite3.Connection,
                 key: tuple[str, str, int]) -> StoredVersion | None:
    rows = connection.execute(_READ_VERSION, key).fetchall()
    return StoredVersion(*rows[0]) if rows else None


def history(connection: sqlite3.Connection, query: HistoryQuery) -> tuple[StoredVersion, ...]:
    return _versions(connection, compile_history(query))


def search(connection: sqlite3.Connection, query: SearchQuery) -> SearchPage:
    compiled = compile_search(query)
    if compiled.total is None:
        return _page(connection, compiled, None)
    connection.execute("BEGIN")
    try:
        total = int(connection.execute(compiled.total.text, compiled.total.params).fetchone()[0])
        page = _page(connection, compiled, total) if query.count > 0 else SearchPage((), total)
    finally:
        connection.execute("COMMIT")
    return page


INLINE_CHECK_EVERY = 100
"""SQLite virtual-machine steps between two looks at the budget of an inline search."""
INLINE_BUDGET_CHECKS = 10
"""How many looks an inline search may take (~1,000 steps, ~0.3 ms at most; an identifier or
``_id`` search takes under 100) before it is abandoned for a reader thread."""


def search_within_budget(connection: sqlite3.Connection, query: SearchQuery) -> SearchPage | None:
    """``search`` (without a total), abandoned once it takes more than the inline budget.

    Selective searches (an identifier, an id) finish in a few thousand steps: running them on
    the calling thread spares a thread hand-off. A search that would scan or sort many rows is
    interrupted by SQLite's progress handler and returns None, for the caller to run it again
    where it may take its time; nothing has been read that the caller keeps.
    """
    looks = 0

    def over_budget() -> int:
        nonlocal looks
        looks += 1
        return 1 if looks > INLINE_BUDGET_CHECKS else 0

    compiled = compile_search(query)
    connection.set_progress_handler(over_budget, INLINE_CHECK_EVERY)
    try:
        return _page(connection, compiled, None)
    except sqlite3.OperationalError as error:
        if looks > INLINE_BUDGET_CHECKS:
            return None
        raise error
    finally:
        connection.set_progress_handler(None, INLINE_CHECK_EVERY)


_PLAN_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\w+)|USING (INTEGER PRIMARY KEY)")


def explain(connection: sqlite3.Connection, query: SearchQuery) -> QueryPlan:
    """``EXPLAIN QUERY PLAN`` of the page statement: its steps, indented by depth, and the
    indexes they use (``resources`` primary key included)."""
    statement = compile_search(query).page
    rows = connection.execute(f"EXPLAIN QUERY PLAN {statement.text}", statement.params).fetchall()
    depth: dict[int, int] = {0: -1}
    steps: list[str] = []
    indexes: list[str] = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        steps.append("  " * depth[node] + str(detail))
        for found in _PLAN_INDEX.finditer(str(detail)):
            name = found.group(1) or "resources (rowid)"
            if name not in indexes:
                indexes.append(name)
    return QueryPlan("sqlite", statement.text, tuple(steps), tuple(indexes))


def _page(connection: sqlite3.Connection, compiled: CompiledSearch,
          total: int | None) -> SearchPage:
    """The matches of the page statement, with their sort values when the search sorts."""
    rows = connection.execute(compiled.page.text, compiled.page.params).fetchall()
    if not compiled.sort_columns:
        return SearchPage(tuple(StoredVersion(*row) for row in rows), total)
    width = _VERSION_WIDTH
    return SearchPage(tuple(StoredVersion(*row[:width]) for row in rows), total,
                      tuple(tuple(row[width:]) for row in rows))


def outbox_pending(connection: sqlite3.Connection, limit: int) -> tuple[OutboxRecord, ...]:
    rows = connection.execute(_OUTBOX_PENDING, (limit,)).fetchall()
    return tuple(_outbox_record(row) for row in rows)


def _versions(connection: sqlite3.Connection, statement: Sql) -> tuple[StoredVersion, ...]:
    rows = connection.execute(statement.text, statement.params).fetchall()
    return tuple(StoredVersion(*row) for row in rows)


def _outbox_record(row: tuple[Any, ...]) -> OutboxRecord:
    event_id, topic, payload, created, attempts = row
    return OutboxRecord(OutboxEvent(event_id, topic, payload, created), attempts)
