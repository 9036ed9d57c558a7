"""``commit_together``: a group of creates in one statement per table, on a real SQLite file.

Every statement the writer runs costs it a wait for the GIL on a busy server (``writer.py``),
so these tests count the statements with SQLite's own trace callback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_server.storage.index import IndexEntry, StringEntry, TokenEntry
from fhir_server.storage.protocol import Change
from fhir_server.storage.sqlite.schema import open_connection, prepare_database
from fhir_server.storage.sqlite.writes import Batch, commit, commit_together


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_connection(tmp_path / "store.sqlite3", synchronous="NORMAL",
                                 read_only=False)
    prepare_database(connection)
    yield connection
    connection.close()


def patient_create(id: str, strings: int = 14, tokens: int = 10) -> Batch:
    index: tuple[IndexEntry, ...] = (
        *(StringEntry(param=f"s{n}", normalized=f"{id} {n}", exact=f"{id} {n}")
          for n in range(strings)),
        *(TokenEntry(param=f"t{n}", system=None, code=f"{id}-{n}", text=None)
          for n in range(tokens)))
    change = Change(resource_type="Patient", id=id, version=1, expected_version=0,
                    last_updated="2026-11-27T00:00:00.000000Z", method="POST",
                    body=b'{"resourceType":"Patient"}', index=index)
    return Batch(changes=(change,), events=(), consumed=())


def statements_of(connection: sqlite3.Connection, batches: list[Batch]) -> list[str]:
    seen: list[str] = []
    connection.set_trace_callback(seen.append)
    try:
        connection.execute("BEGIN IMMEDIATE")
        commit_together(connection, batches)
        connection.execute("COMMIT")
    finally:
        connection.set_trace_callback(None)
    return [text.split(" VALUES", 1)[0] for text in seen if text not in ("BEGIN IMMEDIATE",
                                                                          "COMMIT")]


def test_a_group_is_one_insert_per_table_whatever_its_number_of_rows(
        connection: sqlite3.Connection) -> None:
    batches = [patient_create(f"p{n}") for n in range(40)]  # 560 string rows, 400 token rows
    written = statements_of(connection, batches)
    assert sorted(written) == sorted([
        "INSERT INTO resources (resource_type, id, version, last_updated, method, body)",
        "INSERT INTO history (resource_type, id, version, last_updated, method, body)",
        "INSERT INTO idx_string (rid, param, normalized, exact)",
        "INSERT INTO idx_token (rid, param, system, code, text)"])
    assert connection.execute("SELECT count(*) FROM idx_string").fetchone() == (560,)


def test_each_index_row_belongs_to_its_own_resource_row(connection: sqlite3.Connection) -> None:
    commit(connection, patient_create("first"))  # row ids of the group start past this one
    connection.execute("DELETE FROM history")  # a gap below does not matter either
    statements_of(connection, [patient_create(f"p{n}", strings=3, tokens=2) for n in range(5)])
    mismatched = connection.execute(
        "SELECT count(*) FROM idx_string s JOIN resources r ON r.rid = s.rid "
        "WHERE s.normalized NOT LIKE r.id || ' %'").fetchone()
    assert mismatched == (0,)
    per_resource = connection.execute(
        "SELECT r.id, count(*) FROM idx_token t JOIN resources r ON r.rid = t.rid "
        "GROUP BY r.id ORDER BY r.id").fetchall()
    assert per_resource == [("first", 10), ("p0", 2), ("p1", 2), ("p2", 2), ("p3", 2), ("p4", 2)]


def test_a_taken_id_fails_the_whole_group(connection: sqlite3.Connection) -> None:
    commit(connection, patient_create("taken"))
    connection.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.IntegrityError):
        commit_together(connection, [patient_create("new"), patient_create("taken")])
    connection.execute("ROLLBACK")
    assert connection.execute("SELECT id FROM resources").fetchall() == [("taken",)]
