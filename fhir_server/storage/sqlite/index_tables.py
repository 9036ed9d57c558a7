"""One SQLite table per index-entry kind: its columns, lookup indexes and rows built from entries.

Adding an index-entry kind means adding one ``IndexTable`` here; the schema, the planner
statistics, the deletes and the inserts all follow from ``INDEX_TABLES``. Every table is keyed
to the resource row by ``rid`` (``resources.rid``): a resource's entries are all found by
``rid``, and a new version (or a deletion) rewrites only those that change
(``replace_entries``).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Any

from fhir_server.storage.index import (
    CompositeEntry,
    DateEntry,
    IndexEntry,
    NumberEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
)

ASSUMED_ENTRIES = 10_000_000
"""Rows the planner statistics assume per index table (see ``schema.PLANNER_STATISTICS``)."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """An index on leading columns (then ``rid``) and the rows assumed per value of each prefix.

    ``partial_on`` names a column that is NULL in most rows: the index then holds only the rows
    where it is set (``WHERE column IS NOT NULL``), which every comparison on it implies, so
    the queries that use it still can while most inserts skip it.
    """

    columns: tuple[str, ...]
    rows_per_prefix: tuple[int, ...]
    partial_on: str | None = None

    @property
    def condition(self) -> str:
        return "" if self.partial_on is None else f" WHERE {self.partial_on} IS NOT NULL"


@dataclass(frozen=True, slots=True)
class IndexTable:
    """The table holding one entry kind; column names are the entry's field names."""

    name: str
    kind: type[Any]
    columns: tuple[tuple[str, str], ...]
    lookups: tuple[Lookup, ...]

    def create_statements(self) -> tuple[str, ...]:
        """DDL for the table, its ``rid`` index and its lookup indexes."""
        columns = ", ".join(f"{column} {declaration}" for column, declaration in self.columns)
        table = (f"CREATE TABLE IF NOT EXISTS {self.name} ("
                 f"rid INTEGER NOT NULL REFERENCES resources (rid), {columns})")
        by_resource = f"CREATE INDEX IF NOT EXISTS {self.name}_rid ON {self.name} (rid)"
        lookups = tuple(
            f"CREATE INDEX IF NOT EXISTS {self._index_name(lookup)} "
            f"ON {self.name} ({', '.join(lookup.columns)}, rid){lookup.condition}"
            for lookup in self.lookups)
        return (table, by_resource, *lookups)

    def planner_statistics(self) -> tuple[tuple[str, str, str], ...]:
        """``sqlite_stat1`` rows (table, index, stat) for this table's indexes."""
        by_resource = (self.name, f"{self.name}_rid", f"{ASSUMED_ENTRIES} 10")
        lookups = tuple(
            (self.name, self._index_name(lookup),
             " ".join(str(n) for n in (ASSUMED_ENTRIES, *lookup.rows_per_prefix, 1)))
            for lookup in self.lookups)
        return (by_resource, *lookups)

    def _index_name(self, lookup: Lookup) -> str:
        suffix = "" if lookup.partial_on is None else "_set"
        return f"{self.name}_{'_'.join(lookup.columns)}{suffix}"

    @property
    def delete_row_statement(self) -> str:
        return f"DELETE FROM {self.name} WHERE rowid = ?"


# Each lookup index costs every insert a b-tree descent and a page written to the WAL, so a
# table has the fewest that keep its searches sublinear: a token ``system|code`` search seeks
# (param, code) then checks the system; a ``:exact`` string search seeks its normalised form
# then checks the exact text; ``:text`` and absolute-URL references index only rows that
# have one.
INDEX_TABLES: tuple[IndexTable, ...] = (
    IndexTable("idx_token", TokenEntry,
               (("param", "TEXT NOT NULL"), ("system", "TEXT"), ("code", "TEXT"), ("text", "TEXT")),
               (Lookup(("param", "code", "system"), (100_000, 100, 50)),
                Lookup(("param", "text"), (100_000, 10), partial_on="text"))),
    IndexTable("idx_string", StringEntry,
               (("param", "TEXT NOT NULL"), ("normalized", "TEXT NOT NULL"),
                ("exact", "TEXT NOT NULL")),
               (Lookup(("param", "normalized"), (100_000, 10)),)),
    IndexTable("idx_date", DateEntry,
               (("param", "TEXT NOT NULL"), ("low", "TEXT NOT NULL"), ("high", "TEXT NOT NULL")),
               (Lookup(("param", "low", "high"), (100_000, 10, 5)),
                Lookup(("param", "high"), (100_000, 10)))),
    IndexTable("idx_number", NumberEntry,
               (("param", "TEXT NOT NULL"), ("low", "REAL NOT NULL"), ("high", "REAL NOT NULL")),
               (Lookup(("param", "low", "high"), (100_000, 10, 5)),
                Lookup(("param", "high"), (100_000, 10)))),
    IndexTable("idx_quantity", QuantityEntry,
               (("param", "TEXT NOT NULL"), ("system", "TEXT"), ("code", "TEXT"),
                ("low", "REAL NOT NULL"), ("high", "REAL NOT NULL")),
               (Lookup(("param", "code", "low"), (100_000, 10_000, 10)),)),
    IndexTable("idx_reference", ReferenceEntry,
               (("param", "TEXT NOT NULL"), ("target_type", "TEXT"), ("target_id", "TEXT"),
                ("url", "TEXT")),
               (Lookup(("param", "target_id", "target_type"), (100_000, 10, 10)),
                Lookup(("param", "url"), (100_000, 10), partial_on="url"))),
    IndexTable("idx_uri", UriEntry,
               (("param", "TEXT NOT NULL"), ("value", "TEXT NOT NULL")),
               (Lookup(("param", "value"), (100_000, 10)),)),
    # A composite is searched by its first component's code, then its second component: a
    # token's or a quantity unit's code, a range's low end. ``low`` and ``high`` have no
    # declared type, so they keep what is stored: REAL for numbers and quantities, TEXT for
    # date instants (one parameter always holds one of them).
    IndexTable("idx_composite", CompositeEntry,
               (("param", "TEXT NOT NULL"), ("system", "TEXT"), ("code", "TEXT NOT NULL"),
                ("value_system", "TEXT"), ("value_code", "TEXT"), ("low", ""), ("high", ""),
                ("normalized", "TEXT"), ("exact", "TEXT"), ("target_type", "TEXT"),
                ("target_id", "TEXT"), ("url", "TEXT")),
               (Lookup(("param", "code", "system", "value_code", "low"),
                       (100_000, 100, 50, 10, 5)),)),
)

RETIRED_INDEXES: tuple[str, ...] = (
    "idx_token_param_system_code", "idx_token_param_code", "idx_token_param_text",
    "idx_string_param_exact", "idx_reference_param_url")
"""Lookup indexes of schema version 3 and earlier that version 4 drops (see the comment above)."""

_VALUES_OF_KIND: dict[type[Any], attrgetter[Any]] = {
    table.kind: attrgetter(*(column for column, _ in table.columns)) for table in INDEX_TABLES}

MAX_PARAMETERS_PER_STATEMENT = 32_766
"""SQLite's default limit of bound parameters in one statement (``SQLITE_MAX_VARIABLE_NUMBER``
since 3.32): a multi-row ``INSERT`` takes as many rows as fit under it, so the index rows of a
whole commit group go in one statement per table."""

STATEMENT_TEXTS_KEPT = 256
"""Multi-row ``INSERT`` texts kept per (table, row count), as many as the connection caches
prepared statements (``schema.CACHED_STATEMENTS``)."""


def rows_per_statement(width: int) -> int:
    """The most rows of ``width`` values one statement may bind."""
    return MAX_PARAMETERS_PER_STATEMENT // width


_TABLE_OF_KIND: dict[type[Any], IndexTable] = {table.kind: table for table in INDEX_TABLES}


@lru_cache(maxsize=STATEMENT_TEXTS_KEPT)
def _multi_row_insert(table: IndexTable, rows: int) -> str:
    """``INSERT … VALUES (?, …), (?, …)`` for ``rows`` rows."""
    names = ", ".join(column for column, _ in table.columns)
    row = "(" + ", ".join("?" for _ in range(len(table.columns) + 1)) + ")"
    return f"INSERT INTO {table.name} (rid, {names}) VALUES {', '.join([row] * rows)}"


def insert_entries(connection: sqlite3.Connection, rid: int, entries: Iterable[IndexEntry]) -> None:
    """Write the entries of one resource row (see ``insert_entries_of``)."""
    insert_entries_of(connection, ((rid, entries),))


def insert_entries_of(connection: sqlite3.Connection,
                      rows_of: Iterable[tuple[int, Iterable[IndexEntry]]]) -> None:
    """Write the entries of resource rows, given as (rid, entries): one multi-row ``INSERT``
    per table (per ``rows_per_statement`` rows), whatever the number of resources.

    One statement for many rows, rather than ``executemany``: SQLite prepares and steps once,
    and the writer's Python binds the rows in one call.
    """
    rows: dict[type[Any], list[Any]] = {}
    for rid, entries in rows_of:
        for entry in entries:
            kind = type(entry)
            values = _VALUES_OF_KIND.get(kind)
            if values is None:
                raise TypeError(f"no SQLite index table for {kind.__name__}")
            row = rows.setdefault(kind, [])
            row.append(rid)
            row.extend(values(entry))
    for kind, flat in rows.items():
        _insert_flat(connection, _TABLE_OF_KIND[kind], flat)


def _insert_flat(connection: sqlite3.Connection, table: IndexTable, flat: list[Any]) -> None:
    """Insert rows given one after the other as (rid, then the entry's values), as few
    statements as the parameter limit allows."""
    width = len(table.columns) + 1
    count = len(flat) // width
    start = 0
    while count:
        chunk = min(count, rows_per_statement(width))
        end = start + chunk * width
        connection.execute(_multi_row_insert(table, chunk), flat[start:end])
        start, count = end, count - chunk


def replace_entries(connection: sqlite3.Connection, rid: int,
                    entries: Iterable[IndexEntry]) -> None:
    """Make the entries of one resource row exactly ``entries``, writing only the rows that
    change.

    A new version usually keeps most of its resource's values (a Task changes its status, a
    Patient a phone number), and so most of its entries: those rows are left as they are, so
    neither they nor the lookup-index pages they sit on are written again (deleting and
    re-inserting an entry writes its pages twice for nothing). The resource's rows of every
    table are read in one statement and compared with the wanted entries' values; rows no
    longer wanted are deleted by row id, entries not yet there are inserted. A value SQLite
    would hand back in another form than it was given is merely rewritten.
    """
    wanted: dict[int, Counter[tuple[Any, ...]]] = {}
    for entry in entries:
        kind = type(entry)
        position = _POSITION_OF_KIND.get(kind)
        if position is None:
            raise TypeError(f"no SQLite index table for {kind.__name__}")
        counter = wanted.get(position)
        if counter is None:
            counter = wanted[position] = Counter()
        counter[_VALUES_OF_KIND[kind](entry)] += 1
    stale: dict[int, list[tuple[int]]] = {}
    for position, rowid, *values in connection.execute(_ROWS_OF_RESOURCE, (rid,)):
        kept = tuple(values[:_COLUMN_COUNTS[position]])
        counter = wanted.get(position)
        if counter is not None and counter[kept] > 0:
            counter[kept] -= 1
        else:
            stale.setdefault(position, []).append((rowid,))
    for position, rowids in stale.items():
        connection.executemany(INDEX_TABLES[position].delete_row_statement, rowids)
    for position, counter in wanted.items():
        flat: list[Any] = []
        for values, count in counter.items():
            for _ in range(count):
                flat.append(rid)
                flat.extend(values)
        if flat:
            _insert_flat(connection, INDEX_TABLES[position], flat)


def _rows_of_resource() -> str:
    """One ``SELECT`` of a resource row's index rows in every table: the table's position in
    ``INDEX_TABLES``, the row id, then the entry's values padded with NULLs to the widest."""
    widest = max(len(table.columns) for table in INDEX_TABLES)
    parts = []
    for position, table in enumerate(INDEX_TABLES):
        names = [column for column, _ in table.columns]
        names += ["NULL"] * (widest - len(names))
        parts.append(f"SELECT {position}, rowid, {', '.join(names)} FROM {table.name} "
                     "WHERE rid = ?1")
    return " UNION ALL ".join(parts)


_POSITION_OF_KIND: dict[type[Any], int] = {
    table.kind: position for position, table in enumerate(INDEX_TABLES)}
_COLUMN_COUNTS: tuple[int, ...] = tuple(len(table.columns) for table in INDEX_TABLES)
_ROWS_OF_RESOURCE = _rows_of_resource()
