"""The Store protocol: everything the engine may ask of a database, and the errors a store raises.

A store keeps FHIR resources as opaque JSON bytes with their versions, the index entries
extracted from them, and an outbox of events, and it writes all three atomically. It knows
nothing of FHIR semantics beyond the query tree (``storage/query.py``). Each adapter maps its
driver's errors to the ones below, so nothing above a store sees a driver exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

from fhir_server.storage.index import IndexEntry
from fhir_server.storage.query import HistoryQuery, SearchQuery

Method: TypeAlias = Literal["POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a resource as stored.

    ``last_updated`` is a fixed-width UTC instant (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), so string order
    is time order. ``body`` is the stored JSON (possibly with encrypted values); None for a delete.
    """

    resource_type: str
    id: str
    version: int
    last_updated: str
    method: Method
    body: bytes | None

    @property
    def deleted(self) -> bool:
        return self.body is None


@dataclass(frozen=True, slots=True)
class Change:
    """One write inside an atomic commit.

    ``expected_version`` is the version this change replaces (the current one, deleted or not),
    or 0 when the resource must not exist yet: a compare-and-set. ``version`` is the new version
    (always ``expected_version + 1``). ``body`` None records a deletion.
    """

    resource_type: str
    id: str
    version: int
    expected_version: int
    last_updated: str
    method: Method
    body: bytes | None
    index: tuple[IndexEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class IndexRewrite:
    """New index entries for the current version of one resource (``Store.replace_index``).

    ``version`` is the version the entries were extracted from: the rewrite only applies while it
    is still the current, non-deleted version.
    """

    id: str
    version: int
    index: tuple[IndexEntry, ...]


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """Work that a commit asks for later (render a report, notify, deliver a subscription…)."""

    id: str
    topic: str
    payload: bytes
    created: str


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """An outbox event as read back, with its delivery attempts so far."""

    event: OutboxEvent
    attempts: int


@dataclass(frozen=True, slots=True)
class Consumption:
    """Marks that ``consumer`` has handled ``event_id``; committed with the consumer's effects."""

    consumer: str
    event_id: str


@dataclass(frozen=True, slots=True)
class SearchPage:
    """Matches of a search, in the query's order; ``total`` only when the query asked for it.

    ``sort_values``: when the query sorts, each match's values for ``query.sort`` (None where it
    has none), aligned with ``matches``; empty otherwise.
    """

    matches: tuple[StoredVersion, ...]
    total: int | None
    sort_values: tuple[tuple[object, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """How a store runs a search (``_explain``): its query, its plan and the indexes it uses.

    ``statement``: the backend's query as text, with the values left out (SQL with ``?``
    marks; MongoDB's filter or pipeline); ``steps``: the backend's plan, one line per step;
    ``indexes``: the names of the indexes the plan reads, in plan order.
    """

    backend: str
    statement: str
    steps: tuple[str, ...]
    indexes: tuple[str, ...]


class StoreError(Exception):
    """Base of every error a store raises."""


class VersionConflict(StoreError):
    """A change's ``expected_version`` is not the current version: someone wrote first."""

    def __init__(self, resource_type: str, id: str, expected: int, actual: int) -> None:
        super().__init__(f"{resource_type}/{id}: expected version {expected}, found {actual}")
        self.resource_type = resource_type
        self.id = id
        self.expected = expected
        self.actual = actual


class AlreadyConsumed(StoreError):
    """A ``Consumption`` was already recorded: the consumer has handled that event before."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or refused to work (e.g. MongoDB not a replica set)."""


class Store(Protocol):
    """What the engine needs from a database. Every method is safe to call concurrently."""

    async def start(self) -> None:
        """Open connections, create the schema and indexes if missing."""

    async def close(self) -> None:
        """Release connections; safe to call twice."""

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        """The latest version (a deletion included), or None if the resource never existed."""

    async def read_version(self, resource_type: str, id: str, version: int) -> StoredVersion | None:
        """One given version, or None."""

    async def commit(self, changes: Sequence[Change], events: Sequence[OutboxEvent] = (),
                     consumed: Sequence[Consumption] = ()) -> None:
        """Write all changes, their index entries, the events and the consumptions, or nothing.

        Raises ``VersionConflict`` (nothing written) when a change's ``expected_version`` does not
        match, and ``AlreadyConsumed`` (nothing written) when a consumption exists already.
        """

    async def history(self, query: HistoryQuery) -> tuple[StoredVersion, ...]:
        """Versions matching the query, newest first, at most ``query.count``."""

    async def search(self, query: SearchQuery) -> SearchPage:
        """Current, non-deleted resources matching the query."""

    async def explain(self, query: SearchQuery) -> QueryPlan:
        """How ``search(query)`` would run, without running it (chained searches may run their
        inner steps to know the outer one)."""

    async def outbox_pending(self, limit: int) -> tuple[OutboxRecord, ...]:
        """Undelivered events, oldest first."""

    async def outbox_delivered(self, event_ids: Sequence[str]) -> None:
        """Mark events delivered (handed to the broker or run); unknown ids are ignored."""

    async def outbox_failed(self, event_id: str) -> None:
        """Count one failed delivery attempt of an event."""

    async def replace_index(self, resource_type: str, rewrites: Sequence[IndexRewrite]) -> int:
        """Replace the index entries of current resources of one type, in one transaction.

        Nothing else changes: no new version, no history, the same body and ``last_updated``.
        A rewrite whose ``version`` is no longer current (updated or deleted since) is skipped.
        Returns how many were applied. Walk the current resources with ``search`` (no clause,
        ``after`` = the last (type, id) seen) to re-extract them batch by batch.
        """

    async def read_marks(self, prefix: str) -> dict[str, str]:
        """The bookkeeping marks (name → value) whose name starts with ``prefix``."""

    async def write_marks(self, marks: Mapping[str, str | None]) -> None:
        """Set marks, or remove those given None, in one transaction.

        Marks are the engine's notes about the store itself (e.g. which custom search
        parameters its index holds); they are not resources and have no history.
        """


class QueryTooCostly(StoreError):
    """A search would need more work than the store allows, e.g. a chained or ``_has`` search
    whose inner search matches more resources than the store resolves; narrow the search."""
