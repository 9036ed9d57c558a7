"""The SQLite store's writer process: its own process, errors across it, its death and its end."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
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
from fhir_server.storage.protocol import (
    AlreadyConsumed,
    Change,
    Consumption,
    IndexRewrite,
    OutboxEvent,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)
from fhir_server.storage.sqlite import SqliteStore, wire
from fhir_server.storage.sqlite.reindex import IndexBatch
from fhir_server.storage.sqlite.writer_process import fork_server_pid
from fhir_server.storage.sqlite.writes import Batch

REPOSITORY = Path(__file__).resolve().parents[2]

EVERY_KIND: tuple[IndexEntry, ...] = (
    TokenEntry("identifier", "urn:x", "42", "text"),
    StringEntry("name", "elise", "Élise"),
    DateEntry("birthdate", "1990-01-01T00:00:00.000000Z", "1990-01-01T23:59:59.999999Z"),
    NumberEntry("probability", 0.25, 0.35),
    QuantityEntry("value-quantity", "http://unitsofmeasure.org", "mm", 3.5, 4.5),
    ReferenceEntry("subject", "Patient", "p1", None),
    UriEntry("url", "http://example.org/x"),
    CompositeEntry("code-value-quantity", "http://loinc.org", "8480-6",
                   value_system="http://unitsofmeasure.org", value_code="mm[Hg]", low=119.5,
                   high=120.5),
)


def create(id: str, *, index: tuple[IndexEntry, ...] = ()) -> Change:
    return Change(resource_type="Patient", id=id, version=1, expected_version=0,
                  last_updated="2026-01-01T00:00:01.000000Z", method="POST",
                  body=b'{"resourceType":"Patient"}', index=index)


async def wait_until_gone(pid: int, seconds: float) -> bool:
    for _ in range(int(seconds / 0.02)):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def test_a_batch_crosses_the_wire_unchanged() -> None:
    batch = Batch(changes=(create("p1", index=EVERY_KIND),),
                  events=(OutboxEvent("e1", "resource-changed", b"{}", "2026-01-01T00:00:01Z"),),
                  consumed=(Consumption("filing", "e0"),))
    sent = wire.frame(wire.encode_batch(batch))
    assert wire.decode_batch(wire.split_frames(bytearray(sent))[0]) == batch
    rewrites = IndexBatch("Patient", (IndexRewrite("p1", 3, EVERY_KIND),))
    operation = wire.OPERATIONS["replace-index"]
    assert operation.decode(operation.encode(rewrites)) == rewrites


def test_frames_split_only_when_complete() -> None:
    buffer = bytearray(wire.frame((1, "a")) + wire.frame((2, "b")))
    tail = wire.frame((3, "c"))
    buffer += tail[:5]
    assert wire.split_frames(buffer) == [(1, "a"), (2, "b")]
    assert bytes(buffer) == tail[:5]
    buffer += tail[5:]
    assert wire.split_frames(buffer) == [(3, "c")] and not buffer


@pytest.mark.parametrize("error", [
    VersionConflict("Patient", "p1", 1, 2), AlreadyConsumed("seen"), StoreUnavailable("gone"),
    StoreError("rejected"), ValueError("bad")])
def test_errors_cross_the_wire_with_their_type_and_message(error: Exception) -> None:
    copy = wire.decode_error(*wire.encode_error(error))
    assert type(copy) is type(error) and str(copy) == str(error)


async def test_writes_run_in_another_process(store: SqliteStore) -> None:
    await store.commit([create("p1")])
    assert store.writer_pid is not None and store.writer_pid != os.getpid()
    assert (await store.read("Patient", "p1")) is not None


async def test_concurrent_writes_get_their_own_answers(store: SqliteStore) -> None:
    await store.commit([create("taken")])
    results = await asyncio.gather(
        *(store.commit([create(f"p{n}", index=EVERY_KIND)]) for n in range(20)),
        store.commit([create("taken")]), return_exceptions=True)
    assert results[:20] == [None] * 20
    conflict = results[20]
    assert isinstance(conflict, VersionConflict)
    assert (conflict.resource_type, conflict.id, conflict.expected, conflict.actual) == (
        "Patient", "taken", 0, 1)
    await store.commit([], consumed=[Consumption("filing", "e1")])
    with pytest.raises(AlreadyConsumed):
        await store.commit([], consumed=[Consumption("filing", "e1")])


async def test_a_killed_writer_is_replaced_by_the_next_write(store: SqliteStore) -> None:
    await store.commit([create("before")])
    first = store.writer_pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert await wait_until_gone(first, seconds=10)
    await asyncio.sleep(0.05)  # the end of its socket reaches the event loop
    await store.commit([create("after")])
    assert store.writer_pid not in (None, first)
    assert (await store.read("Patient", "before")) is not None
    assert (await store.read("Patient", "after")) is not None


async def test_the_writer_ignores_ctrl_c_sent_to_the_process_group(store: SqliteStore) -> None:
    pid = store.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    await asyncio.sleep(0.2)
    await store.commit([create("still-written")])
    assert store.writer_pid == pid


async def test_closing_stops_the_writer_and_empties_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    await store.start()
    await store.commit([create("p1")])
    pid = store.writer_pid
    assert pid is not None
    await store.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped
    wal = Path(f"{path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0


async def test_a_killed_fork_server_is_started_again(store: SqliteStore, tmp_path: Path) -> None:
    zygote = fork_server_pid()
    assert zygote is not None
    os.kill(zygote, signal.SIGKILL)
    another = SqliteStore(tmp_path / "another.sqlite3")
    await another.start()
    try:
        await another.commit([create("p1")])
        assert fork_server_pid() not in (None, zygote)
    finally:
        await another.close()
    await store.commit([create("the-first-store-still-writes")])


_SERVER_THAT_DIES = """
import asyncio, sys
from pathlib import Path
from fhir_server.storage.sqlite import SqliteStore

async def main() -> None:
    store = SqliteStore(Path(sys.argv[1]))
    await store.start()
    print(store.writer_pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_the_writer_ends_when_the_server_is_killed(tmp_path: Path) -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SERVER_THAT_DIES, str(tmp_path / "store.sqlite3"),
        cwd=REPOSITORY, stdout=asyncio.subprocess.PIPE)
    assert server.stdout is not None
    try:
        line = await asyncio.wait_for(server.stdout.readline(), timeout=30)
    finally:
        server.send_signal(signal.SIGKILL)
        await server.wait()
    writer = int(line)
    assert await wait_until_gone(writer, seconds=10)


def test_a_forked_process_starts_its_own_fork_server(tmp_path: Path) -> None:
    """Celery's prefork pool forks the worker: a child must not talk to its parent's fork
    server over the same socket."""
    async def write(path: Path) -> int | None:
        store = SqliteStore(path)
        await store.start()
        try:
            await store.commit([create("p1")])
        finally:
            await store.close()
        return fork_server_pid()

    parent_server = asyncio.run(write(tmp_path / "parent.sqlite3"))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its fork server's pid, then leave without cleanup
        os.close(read_end)
        try:
            child_server = asyncio.run(write(tmp_path / "child.sqlite3"))
            os.write(write_end, str(child_server).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        reported = reader.read()
    os.waitpid(pid, 0)
    assert reported.decode() not in ("", "None", str(parent_server))
