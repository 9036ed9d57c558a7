"""Chained and ``_has`` searches on MongoDB: ``find`` has no join, so each is resolved first.

A chain (``subject:Patient.name=dupont``) first finds the ids of the current Patients named
dupont, then becomes a filter on reference entries pointing to those ids (``$in``). A ``_has``
(``_has:Observation:subject:code=1234``) first finds the matching Observations, reads the
targets of their ``subject`` references, then becomes a filter on the resources' keys. Inner
clauses are resolved the same way, so chains nest. Each inner search may find at most
``limit`` resources (and a ``_has`` at most ``limit`` targets); beyond that the search raises
``QueryTooCostly`` rather than send the server an unbounded ``$in``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from motor.motor_asyncio import AsyncIOMotorCollection, AsyncIOMotorCursor

from fhir_server.storage.mongo.compile import (
    Join,
    Joins,
    chain_filter,
    has_filter,
    resources_filter,
)
from fhir_server.storage.mongo.documents import REFERENCE, Document, resource_key
from fhir_server.storage.protocol import QueryTooCostly
from fhir_server.storage.query import (
    AllClause,
    AnyClause,
    ChainClause,
    Clause,
    HasClause,
    NotClause,
)

DEFAULT_JOIN_LIMIT: Final = 10_000
"""How many resources the inner search of one chained or ``_has`` clause may find."""

_ID_ONLY: Final = {"_id": 0, "id": 1}
_REFERENCES_ONLY: Final = {"_id": 0, "idx.p": 1, "idx.k": 1, "idx.t": 1, "idx.i": 1}


async def resolve_joins(resources: AsyncIOMotorCollection[Any], resource_type: str | None,
                        where: Sequence[Clause], *, limit: int) -> Joins:
    """The filter of each chained or ``_has`` clause of ``where`` (a search of
    ``resource_type``), those among the alternatives of an ``AnyClause`` included, found by
    running its inner search."""
    resolved: list[tuple[Join, Document]] = []
    for clause in _joins_of(where):
        if isinstance(clause, ChainClause):
            resolved.append((clause, await _chain(resources, clause, limit=limit)))
        else:
            resolved.append((clause, await _has(resources, resource_type, clause, limit=limit)))
    return Joins(tuple(resolved))


def _joins_of(where: Sequence[Clause]) -> list[Join]:
    """The chained and ``_has`` clauses on the searched resources themselves: those of
    ``where`` and, at any depth, of its ``AnyClause``, ``AllClause`` and ``NotClause`` parts (not
    their inner searches)."""
    found: list[Join] = []
    for clause in where:
        if isinstance(clause, ChainClause | HasClause):
            found.append(clause)
        elif isinstance(clause, AnyClause | AllClause):
            found.extend(_joins_of(clause.clauses))
        elif isinstance(clause, NotClause):
            found.extend(_joins_of((clause.clause,)))
    return found


async def _chain(resources: AsyncIOMotorCollection[Any], clause: ChainClause, *,
                 limit: int) -> Document:
    inner = await _inner_filter(resources, clause.target_type, clause.where, limit=limit)
    found = await _at_most(resources.find(inner, _ID_ONLY), limit)
    return chain_filter(clause, {document["id"] for document in found})


async def _has(resources: AsyncIOMotorCollection[Any], resource_type: str | None,
               clause: HasClause, *, limit: int) -> Document:
    inner = await _inner_filter(resources, clause.source_type, clause.where, limit=limit)
    sources = await _at_most(resources.find(inner, _REFERENCES_ONLY), limit)
    targets = {key for source in sources
               for key in _designated(source, clause.param, resource_type)}
    if len(targets) > limit:
        raise _too_costly(limit)
    return has_filter(targets)


async def _inner_filter(resources: AsyncIOMotorCollection[Any], resource_type: str,
                        where: Sequence[Clause], *, limit: int) -> Document:
    """The filter of an inner search, its own chained and ``_has`` clauses resolved first."""
    joins = await resolve_joins(resources, resource_type, where, limit=limit)
    return resources_filter(resource_type, where, joins)


def _designated(source: Document, param: str, resource_type: str | None) -> list[str]:
    """Keys ("Type/id") of the resources that ``param`` references of ``source`` designate,
    of ``resource_type`` when given; references by url alone designate nothing here."""
    return [resource_key(entry["t"], entry["i"]) for entry in source.get("idx", ())
            if entry.get("p") == param and entry.get("k") == REFERENCE
            and "t" in entry and "i" in entry
            and (resource_type is None or entry["t"] == resource_type)]


async def _at_most(cursor: AsyncIOMotorCursor[Any], limit: int) -> list[Document]:
    found: list[Document] = await cursor.limit(limit + 1).to_list(None)
    if len(found) > limit:
        raise _too_costly(limit)
    return found


def _too_costly(limit: int) -> QueryTooCostly:
    return QueryTooCostly(f"a chained or _has search parameter matches more than {limit} "
                          f"resources; narrow the search")
