"""The SQLite writer thread: jobs with parts are written together, and one by one on failure."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from fhir_server.storage.sqlite.writer import GroupCommitWriter

_INSERT = "INSERT INTO items (name) VALUES (?)"


def opener(path: Path) -> Callable[[], sqlite3.Connection]:
    def open_connection() -> sqlite3.Connection:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY)")
        return connection
    return open_connection


class Together:
    """Inserts every part with one statement, and keeps the size of each call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, connection: sqlite3.Connection, parts: list[Any]) -> None:
        self.calls.append(len(parts))
        rows = ", ".join("(?)" for _ in parts)
        connection.execute(f"INSERT INTO items (name) VALUES {rows}", parts)


@pytest.fixture
def together() -> Together:
    return Together()


@pytest.fixture
async def writer(tmp_path: Path, together: Together) -> AsyncIterator[GroupCommitWriter]:
    writer = GroupCommitWriter(opener(tmp_path / "items.sqlite3"), together=together)
    await asyncio.get_running_loop().run_in_executor(None, writer.start)
    try:
        yield writer
    finally:
        await asyncio.get_running_loop().run_in_executor(None, writer.stop)


async def insert(writer: GroupCommitWriter, name: str, *, with_part: bool = True) -> str:
    """Insert one item (as a part the writer may write with others); "ok" or "refused"."""
    try:
        await writer.run(lambda connection: connection.execute(_INSERT, (name,)) and None,
                         part=name if with_part else None)
    except Exception:
        return "refused"
    return "ok"


async def names(writer: GroupCommitWriter) -> list[str]:
    rows = await writer.run(lambda c: c.execute("SELECT name FROM items ORDER BY name").fetchall())
    return [row[0] for row in rows]


async def test_queued_parts_are_written_with_one_call(writer: GroupCommitWriter,
                                                      together: Together) -> None:
    wanted = [f"item-{n:02d}" for n in range(30)]
    results = await asyncio.gather(*(insert(writer, name) for name in wanted))
    assert results == ["ok"] * 30
    assert await names(writer) == wanted
    assert max(together.calls) > 1, "jobs queued during a commit share one call"


async def test_a_failing_part_falls_back_to_one_by_one(writer: GroupCommitWriter,
                                                       together: Together) -> None:
    assert await insert(writer, "taken") == "ok"
    wanted = [f"item-{n:02d}" for n in range(20)]
    results = await asyncio.gather(*(insert(writer, name)
                                     for name in [*wanted[:10], "taken", *wanted[10:]]))
    assert results.count("refused") == 1 and results[10] == "refused"
    assert await names(writer) == sorted([*wanted, "taken"])
    assert max(together.calls) > 1


async def test_jobs_without_parts_run_alone_between_runs(writer: GroupCommitWriter,
                                                         together: Together) -> None:
    first = [f"a-{n:02d}" for n in range(10)]
    second = [f"b-{n:02d}" for n in range(10)]
    jobs = [*(insert(writer, name) for name in first), insert(writer, "alone", with_part=False),
            insert(writer, "a-03", with_part=False),
            *(insert(writer, name) for name in [*second, "b-04"])]
    results = await asyncio.gather(*jobs)
    assert results[:11] == ["ok"] * 11
    assert results[11] == "refused" and results[-1] == "refused"
    assert results[12:-1] == ["ok"] * 10
    assert await names(writer) == sorted([*first, "alone", *second])
    assert sum(together.calls) >= 20
