"""The messages between the SQLite store and its writer process: frames, requests, answers.

A frame is a 4-byte big-endian length, then a ``marshal`` payload of plain values (tuples,
strings, bytes, numbers, None): cheap to build on the event loop, and nothing but our own two
processes ever writes to the socket pair, so ``marshal`` reads only what we wrote.

- request: ``(job id, operation name, encoded argument, together)``; job id 0 is never used
  by a request;
- answer: ``(job id, True, result)`` or ``(job id, False, (error kind, error arguments))``;
  the writer answers job id 0 once it has opened the database (or failed to).

Each ``Operation`` says how its argument travels (``encode`` on the store's side, ``decode`` in
the writer process) and which function of ``writes.py`` or ``reindex.py`` runs it there. A
commit's index entries travel as ``(kind number, field values)``.
"""

from __future__ import annotations

import marshal
import sqlite3
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Final

from fhir_server.storage.index import IndexEntry
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
from fhir_server.storage.sqlite import reindex, writes
from fhir_server.storage.sqlite.index_tables import INDEX_TABLES

HEADER: Final = struct.Struct(">I")
OPENED_JOB: Final = 0
"""The job id of the writer's first answer: the database is open (or could not be opened)."""
STOP: Final = "stop"
"""The operation that ends the writer process once the writes sent before it are done."""

_ENTRY_KINDS: tuple[type[Any], ...] = tuple(table.kind for table in INDEX_TABLES)
_KIND_NUMBER: dict[type[Any], int] = {kind: n for n, kind in enumerate(_ENTRY_KINDS)}
_FIELDS_OF: dict[type[Any], attrgetter[Any]] = {
    kind: attrgetter(*(field.name for field in fields(kind))) for kind in _ENTRY_KINDS}
assert all(len(fields(kind)) > 1 for kind in _ENTRY_KINDS), "attrgetter of one name is no tuple"


def frame(payload: Any) -> bytes:
    """One frame holding ``payload``."""
    data = marshal.dumps(payload)
    return HEADER.pack(len(data)) + data


def split_frames(buffer: bytearray) -> list[Any]:
    """The payloads of the complete frames at the start of ``buffer``, removed from it."""
    payloads: list[Any] = []
    start = 0
    size = len(buffer)
    while size - start >= HEADER.size:
        (length,) = HEADER.unpack_from(buffer, start)
        end = start + HEADER.size + length
        if end > size:
            break
        payloads.append(marshal.loads(memoryview(buffer)[start + HEADER.size:end]))
        start = end
    if start:
        del buffer[:start]
    return payloads


# --- Arguments ------------------------------------------------------------------------------

def encode_entries(entries: Sequence[IndexEntry]) -> tuple[tuple[int, tuple[Any, ...]], ...]:
    return tuple((_KIND_NUMBER[type(entry)], _FIELDS_OF[type(entry)](entry)) for entry in entries)


def decode_entries(data: Sequence[tuple[int, Sequence[Any]]]) -> tuple[IndexEntry, ...]:
    return tuple(_ENTRY_KINDS[kind](*values) for kind, values in data)


def encode_batch(batch: writes.Batch) -> tuple[Any, ...]:
    changes = tuple((c.resource_type, c.id, c.version, c.expected_version, c.last_updated,
                     c.method, c.body, encode_entries(c.index)) for c in batch.changes)
    events = tuple((e.id, e.topic, e.payload, e.created) for e in batch.events)
    consumed = tuple((c.consumer, c.event_id) for c in batch.consumed)
    return changes, events, consumed


def decode_batch(data: Sequence[Any]) -> writes.Batch:
    changes, events, consumed = data
    return writes.Batch(
        changes=tuple(Change(resource_type, id, version, expected, last_updated, method, body,
                             decode_entries(entries))
                      for resource_type, id, version, expected, last_updated, method, body,
                      entries in changes),
        events=tuple(OutboxEvent(*event) for event in events),
        consumed=tuple(Consumption(*consumption) for consumption in consumed))


def _encode_index_batch(batch: reindex.IndexBatch) -> tuple[Any, ...]:
    return batch.resource_type, tuple((r.id, r.version, encode_entries(r.index))
                                      for r in batch.rewrites)


def _decode_index_batch(data: Sequence[Any]) -> reindex.IndexBatch:
    resource_type, rewrites = data
    return reindex.IndexBatch(resource_type, tuple(
        IndexRewrite(id, version, decode_entries(entries)) for id, version, entries in rewrites))


def _same(value: Any) -> Any:
    return value


def _pairs(value: Sequence[Sequence[Any]]) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(pair) for pair in value)


@dataclass(frozen=True, slots=True)
class Operation:
    """A write the store may ask of its writer process."""

    name: str
    write: Callable[[sqlite3.Connection, Any], Any]
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


OPERATIONS: dict[str, Operation] = {operation.name: operation for operation in (
    Operation("commit", writes.commit, encode_batch, decode_batch),
    Operation("mark-delivered", writes.mark_delivered, _same, tuple),
    Operation("count-failure", writes.count_failure, _same, _same),
    Operation("replace-index", reindex.replace_index, _encode_index_batch, _decode_index_batch),
    Operation("write-marks", reindex.write_marks, _same, _pairs),
)}


# --- Errors ---------------------------------------------------------------------------------

def encode_error(error: BaseException) -> tuple[str, tuple[Any, ...]]:
    """An error of a write as plain values (its kind and what rebuilds it)."""
    if isinstance(error, VersionConflict):
        return "version-conflict", (error.resource_type, error.id, error.expected, error.actual)
    for kind, error_type in _ERROR_KINDS:
        if isinstance(error, error_type):
            return kind, (str(error),)
    return "unavailable", (f"the SQLite writer process failed ({type(error).__name__})",)


def decode_error(kind: str, arguments: Sequence[Any]) -> BaseException:
    if kind == "version-conflict":
        return VersionConflict(*arguments)
    for known, error_type in _ERROR_KINDS:
        if known == kind:
            return error_type(*arguments)
    return StoreUnavailable(f"the SQLite writer process answered an unknown error ({kind})")


_ERROR_KINDS: tuple[tuple[str, type[BaseException]], ...] = (
    # most specific first: encode_error takes the first kind the error is an instance of
    ("already-consumed", AlreadyConsumed),
    ("unavailable", StoreUnavailable),
    ("store", StoreError),
    ("value", ValueError),
    ("type", TypeError),
)
