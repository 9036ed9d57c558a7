"""Group commit: jobs with parts are written together, and one by one on failure."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_server.storage.protocol import StoreError
from fhir_server.storage.sqlite.writer import Job, commit_group

_INSERT = "INSERT INTO items (name) VALUES (?)"


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "items.sqlite3", isolation_level=None)
    connection.execute("CREATE TABLE items (name TEXT PRIMARY KEY)")
    yield connection
    connection.close()


class Together:
    """Inserts every part with one statement, and keeps the size of each call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, connection: sqlite3.Connection, parts: list[Any]) -> None:
        self.calls.append(len(parts))
        rows = ", ".join("(?)" for _ in parts)
        connection.execute(f"INSERT INTO items (name) VALUES {rows}", parts)


def insert(name: str, *, with_part: bool = True) -> Job:
    """A job inserting one item, as a part the group may write with others."""
    return Job(work=lambda connection: connection.execute(_INSERT, (name,)) and None,
               part=name if with_part else None)


def outcome(job: Job) -> str:
    return "ok" if job.error is None else "refused"


def names(connection: sqlite3.Connection) -> list[str]:
    return [row[0] for row in connection.execute("SELECT name FROM items ORDER BY name")]


def test_parts_are_written_with_one_call(connection: sqlite3.Connection) -> None:
    together = Together()
    wanted = [f"item-{n:02d}" for n in range(30)]
    group = [insert(name) for name in wanted]
    commit_group(connection, group, together)
    assert [outcome(job) for job in group] == ["ok"] * 30
    assert names(connection) == wanted
    assert together.calls == [30]
    assert not connection.in_transaction


def test_a_failing_part_falls_back_to_one_by_one(connection: sqlite3.Connection) -> None:
    commit_group(connection, [insert("taken")])
    together = Together()
    wanted = [f"item-{n:02d}" for n in range(20)]
    group = [insert(name) for name in [*wanted[:10], "taken", *wanted[10:]]]
    commit_group(connection, group, together)
    outcomes = [outcome(job) for job in group]
    assert outcomes.count("refused") == 1 and outcomes[10] == "refused"
    assert isinstance(group[10].error, StoreError)
    assert names(connection) == sorted([*wanted, "taken"])
    assert together.calls == [21]  # tried once together, then each alone


def test_jobs_without_parts_run_alone_between_runs(connection: sqlite3.Connection) -> None:
    together = Together()
    first = [f"a-{n:02d}" for n in range(10)]
    second = [f"b-{n:02d}" for n in range(10)]
    group = [*(insert(name) for name in first), insert("alone", with_part=False),
             insert("a-03", with_part=False), *(insert(name) for name in [*second, "b-04"])]
    commit_group(connection, group, together)
    outcomes = [outcome(job) for job in group]
    assert outcomes[:11] == ["ok"] * 11
    assert outcomes[11] == "refused" and outcomes[-1] == "refused"
    assert outcomes[12:-1] == ["ok"] * 10
    assert names(connection) == sorted([*first, "alone", *second])
    assert together.calls == [10, 11]


def test_a_group_of_one_that_fails_leaves_no_transaction(connection: sqlite3.Connection) -> None:
    commit_group(connection, [insert("taken")])
    again = insert("taken", with_part=False)
    commit_group(connection, [again])
    assert outcome(again) == "refused" and not connection.in_transaction
    assert names(connection) == ["taken"]


def test_results_come_back_with_their_jobs(connection: sqlite3.Connection) -> None:
    counting = Job(work=lambda c: c.execute("SELECT count(*) FROM items").fetchone()[0])
    commit_group(connection, [insert("x", with_part=False), counting])
    assert counting.result == 1
