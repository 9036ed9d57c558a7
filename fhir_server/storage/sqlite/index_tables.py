"""One SQLite table per index-entry kind: its columns, lookup indexes and rows built from entries.

Adding an index-entry kind means adding one ``IndexTable`` here; the schema, the planner
statistics, the deletes and the inserts all follow from ``INDEX_TABLES``. Every table is keyed
to the resource row by ``rid`` (``resources.rid``), so replacing a resource's entries is a
delete by ``rid``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from fhir_server.storage.index import (
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
    """An index on leading columns (then ``rid``) and the rows assumed per value of each prefix."""

    columns: tuple[str, ...]
    rows_per_prefix: tuple[int, ...]


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
            f"ON {self.name} ({', '.join(lookup.columns)}, rid)"
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
        return f"{self.name}_{'_'.join(lookup.columns)}"

    @property
    def insert_statement(self) -> str:
        names = ", ".join(column for column, _ in self.columns)
        marks = ", ".join("?" for _ in range(len(self.columns) + 1))
        return f"INSERT INTO {self.name} (rid, {names}) VALUES ({marks})"

    @property
    def delete_statement(self) -> str:
        return f"DELETE FROM {self.name} WHERE rid = ?"


INDEX_TABLES: tuple[IndexTable, ...] = (
    IndexTable("idx_token", TokenEntry,
               (("param", "TEXT NOT NULL"), ("system", "TEXT"), ("code", "TEXT"), ("text", "TEXT")),
               (Lookup(("param", "system", "code"), (100_000, 50_000, 5)),
                Lookup(("param", "code"), (100_000, 10)),
                Lookup(("param", "text"), (100_000, 10)))),
    IndexTable("idx_string", StringEntry,
               (("param", "TEXT NOT NULL"), ("normalized", "TEXT NOT NULL"),
                ("exact", "TEXT NOT NULL")),
               (Lookup(("param", "normalized"), (100_000, 10)),
                Lookup(("param", "exact"), (100_000, 10)))),
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
                Lookup(("param", "url"), (100_000, 10)))),
    IndexTable("idx_uri", UriEntry,
               (("param", "TEXT NOT NULL"), ("value", "TEXT NOT NULL")),
               (Lookup(("param", "value"), (100_000, 10)),)),
)

_TABLE_OF_KIND: dict[type[Any], IndexTable] = {table.kind: table for table in INDEX_TABLES}
_VALUES_OF_KIND: dict[type[Any], attrgetter[Any]] = {
    table.kind: attrgetter(*(column for column, _ in table.columns)) for table in INDEX_TABLES}


def delete_entries(connection: sqlite3.Connection, rid: int) -> None:
    """Remove every index entry of one resource row."""
    key = (rid,)
    for table in INDEX_TABLES:
        connection.execute(table.delete_statement, key)


def insert_entries(connection: sqlite3.Connection, rid: int, entries: Iterable[IndexEntry]) -> None:
    """Write the entries of one resource row, one ``executemany`` per table."""
    rows: dict[IndexTable, list[tuple[Any, ...]]] = {}
    for entry in entries:
        kind = type(entry)
        table = _TABLE_OF_KIND.get(kind)
        if table is None:
            raise TypeError(f"no SQLite index table for {kind.__name__}")
        rows.setdefault(table, []).append((rid, *_VALUES_OF_KIND[kind](entry)))
    for table, table_rows in rows.items():
        connection.executemany(table.insert_statement, table_rows)
