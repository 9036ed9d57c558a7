"""``replace_entries``: a new version's index entries, writing only the rows that change.

On a real SQLite file. Row ids show which rows were left alone; ``total_changes`` counts the
rows SQLite wrote (an unchanged entry must cost none).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

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
from fhir_server.storage.protocol import Change
from fhir_server.storage.sqlite.index_tables import (
    INDEX_TABLES,
    IndexTable,
    insert_entries,
    replace_entries,
)
from fhir_server.storage.sqlite.schema import open_connection, prepare_database
from fhir_server.storage.sqlite.writes import Batch, commit

RID = 1


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_connection(tmp_path / "store.sqlite3", synchronous="NORMAL",
                                 read_only=False)
    prepare_database(connection)
    connection.execute("INSERT INTO resources (rid, resource_type, id, version, last_updated, "
                       "method, body) VALUES (?, 'Patient', 'p', 1, '2026', 'POST', x'00')",
                       (RID,))
    yield connection
    connection.close()


def every_kind() -> tuple[IndexEntry, ...]:
    """One entry of each kind, with NULLs, whole numbers in REAL columns and instants."""
    return (
        TokenEntry(param="gender", system=None, code="male", text=None),
        TokenEntry(param="identifier", system="urn:oid:1.2.250.1.213.1.4.8", code="hmac:ab",
                   text="INS"),
        StringEntry(param="family", normalized="bernard", exact="Bernard"),
        DateEntry(param="birthdate", low="1980-01-14T00:00:00.000000Z",
                  high="1980-01-14T23:59:59.999999Z"),
        NumberEntry(param="probability", low=1, high=2.5),
        QuantityEntry(param="value-quantity", system="http://unitsofmeasure.org", code="kg",
                      low=70, high=70),
        ReferenceEntry(param="general-practitioner", target_type="Practitioner",
                       target_id="d1", url=None),
        UriEntry(param="url", value="http://example.org/x"),
        CompositeEntry(param="code-value-quantity", system="http://loinc.org", code="29463-7",
                       value_system="http://unitsofmeasure.org", value_code="kg", low=70.0,
                       high=70.0, normalized=None, exact=None, target_type=None,
                       target_id=None, url=None),
    )


def rows_of(connection: sqlite3.Connection, table: IndexTable,
            rid: int) -> list[tuple[object, ...]]:
    """(row id, the entry's values) of each row of ``table`` for the resource row ``rid``."""
    names = ", ".join(column for column, _ in table.columns)
    found = connection.execute(f"SELECT rowid, {names} FROM {table.name} WHERE rid = ?",
                               (rid,)).fetchall()
    return [tuple(row) for row in found]


def rows(connection: sqlite3.Connection) -> dict[tuple[str, tuple[object, ...]], int]:
    """Every index row of the resource: (table, values) → row id."""
    found: dict[tuple[str, tuple[object, ...]], int] = {}
    for table in INDEX_TABLES:
        for rowid, *values in rows_of(connection, table, RID):
            assert isinstance(rowid, int)
            found[(table.name, tuple(values))] = rowid
    return found


def written(connection: sqlite3.Connection, entries: tuple[IndexEntry, ...]) -> int:
    before = connection.total_changes
    replace_entries(connection, RID, entries)
    return connection.total_changes - before


def test_the_same_entries_again_write_nothing(connection: sqlite3.Connection) -> None:
    entries = every_kind()
    insert_entries(connection, RID, entries)
    before = rows(connection)
    assert len(before) == len(entries)
    assert written(connection, entries) == 0
    assert rows(connection) == before


def test_only_the_changed_entries_are_written(connection: sqlite3.Connection) -> None:
    old_phone = TokenEntry(param="phone", system=None, code="hmac:01", text=None)
    new_phone = TokenEntry(param="phone", system=None, code="hmac:02", text=None)
    kept = every_kind()
    insert_entries(connection, RID, (*kept, old_phone))
    before = rows(connection)
    assert written(connection, (*kept, new_phone)) == 2  # one row deleted, one inserted
    after = rows(connection)
    token = ("idx_token", ("phone", None, "hmac:02", None))
    assert token in after and ("idx_token", ("phone", None, "hmac:01", None)) not in after
    # every kept entry is the same row as before
    assert {key: rowid for key, rowid in after.items() if key != token} == {
        key: rowid for key, rowid in before.items() if key[1][0] != "phone"}


def test_entries_removed_and_added_across_tables(connection: sqlite3.Connection) -> None:
    first = every_kind()
    insert_entries(connection, RID, first)
    second = (*first[:3], StringEntry(param="given", normalized="julien", exact="Julien"))
    assert written(connection, second) == (len(first) - 3) + 1
    assert sorted(key for key in rows(connection)) == sorted([
        ("idx_token", ("gender", None, "male", None)),
        ("idx_token", ("identifier", "urn:oid:1.2.250.1.213.1.4.8", "hmac:ab", "INS")),
        ("idx_string", ("family", "bernard", "Bernard")),
        ("idx_string", ("given", "julien", "Julien"))])
    assert written(connection, ()) == 4
    assert rows(connection) == {}


def test_a_resource_without_entries_gets_them_all(connection: sqlite3.Connection) -> None:
    assert written(connection, every_kind()) == len(every_kind())
    assert len(rows(connection)) == len(every_kind())


def test_an_update_through_commit_keeps_the_unchanged_rows(
        connection: sqlite3.Connection) -> None:
    connection.execute("DELETE FROM resources")

    def version(number: int, phone: str) -> Batch:
        index = (*every_kind(), TokenEntry(param="phone", system=None, code=phone, text=None))
        change = Change(resource_type="Patient", id="p", version=number,
                        expected_version=number - 1,
                        last_updated=f"2026-11-27T00:00:0{number}.000000Z",
                        method="POST" if number == 1 else "PUT",
                        body=b'{"resourceType":"Patient"}', index=index)
        return Batch(changes=(change,), events=(), consumed=())

    commit(connection, version(1, "hmac:01"))
    [(rid,)] = connection.execute("SELECT rid FROM resources").fetchall()
    before = {table.name: rows_of(connection, table, rid)
              for table in INDEX_TABLES}
    changes = connection.total_changes
    commit(connection, version(2, "hmac:02"))
    # the resource row, the previous history row closed, the new history row, and the phone's
    # token row deleted and inserted: nothing for the nine entries that did not change
    assert connection.total_changes - changes == 5
    after = {table.name: rows_of(connection, table, rid)
             for table in INDEX_TABLES}
    assert {name: found for name, found in after.items() if name != "idx_token"} == {
        name: found for name, found in before.items() if name != "idx_token"}
    assert {row[1:] for row in after["idx_token"]} == {
        ("gender", None, "male", None),
        ("identifier", "urn:oid:1.2.250.1.213.1.4.8", "hmac:ab", "INS"),
        ("phone", None, "hmac:02", None)}
