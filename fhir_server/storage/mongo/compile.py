"""Compiles the query tree (``storage/query.py``) into MongoDB filters and sort orders.

Every value taken from a query goes into a filter as a literal: under ``$eq`` or ``$in``, or as
the bound of a range operator, never as a document the server would read as operators, so a
search value such as ``{"$gt": ""}`` matches only that literal value. A token condition is one
``$elemMatch`` on ``idx`` per value, so a single index entry must satisfy all its parts.
"""

from __future__ import annotations

from typing import Any, Final, assert_never

from fhir_server.storage.mongo.documents import TOKEN, Document
from fhir_server.storage.query import (
    Clause,
    HistoryQuery,
    IdClause,
    LastUpdatedClause,
    SearchQuery,
    TokenClause,
    TokenValue,
)

SEARCH_ORDER: Final = [("last_updated", 1), ("type", 1), ("id", 1)]
HISTORY_ORDER: Final = [("last_updated", -1), ("type", -1), ("id", -1), ("version", -1)]

_NOTHING: Final[Document] = {"_id": {"$in": []}}


def search_filter(query: SearchQuery) -> Document:
    """Current, non-deleted resources of the query's type matching every clause (no paging)."""
    parts: list[Document] = [{"body": {"$ne": None}}]
    if query.resource_type is not None:
        parts.append(_equals("type", query.resource_type))
    parts.extend(clause_filter(clause) for clause in query.where)
    return {"$and": parts}


def page_filter(query: SearchQuery) -> Document:
    """``search_filter`` restricted to what sorts after the query's keyset cursor, if any."""
    matching = search_filter(query)
    if query.after is None:
        return matching
    return {"$and": [matching, _beyond(("last_updated", "type", "id"), query.after, "$gt")]}


def clause_filter(clause: Clause) -> Document:
    match clause:
        case IdClause(ids):
            return {"id": {"$in": list(ids)}}
        case TokenClause(param, values, negate):
            matching = _any_of([{"idx": {"$elemMatch": _token_entry(param, value)}}
                                for value in values])
            return {"$nor": [matching]} if negate else matching
        case LastUpdatedClause(low, high, low_inclusive, high_inclusive):
            bounds: Document = {}
            if low is not None:
                bounds["$gte" if low_inclusive else "$gt"] = low
            if high is not None:
                bounds["$lte" if high_inclusive else "$lt"] = high
            return {"last_updated": bounds} if bounds else {}
        case _:
            assert_never(clause)


def _token_entry(param: str, value: TokenValue) -> Document:
    """Conditions one ``idx`` entry must meet to match a token value."""
    condition: Document = {"p": {"$eq": param}, "k": {"$eq": TOKEN}}
    if value.system is not None:
        condition["s"] = {"$eq": value.system or None}
    if value.code is not None:
        condition["c"] = {"$eq": value.code}
    return condition


def history_filter(query: HistoryQuery) -> Document:
    """Versions of the query's scope, since / current during / older than its bounds."""
    parts: list[Document] = []
    if query.resource_type is not None:
        parts.append(_equals("type", query.resource_type))
    if query.id is not None:
        parts.append(_equals("id", query.id))
    if query.since is not None:
        parts.append({"last_updated": {"$gte": query.since}})
    if query.at_high is not None:
        parts.append({"valid_from": {"$lte": query.at_high}})
    if query.at_low is not None:
        parts.append({"$or": [{"valid_to": None}, {"valid_to": {"$gt": query.at_low}}]})
    if query.before is not None:
        parts.append(_beyond(("last_updated", "type", "id", "version"), query.before, "$lt"))
    return {"$and": parts} if parts else {}


def _beyond(fields: tuple[str, ...], cursor: tuple[Any, ...], operator: str) -> Document:
    """Documents whose ``fields`` tuple sorts strictly after (``$gt``) or before (``$lt``) it."""
    alternatives: list[Document] = []
    for position, field in enumerate(fields):
        equal_prefix = [_equals(name, value) for name, value in zip(fields[:position], cursor,
                                                                     strict=False)]
        alternatives.append({"$and": [*equal_prefix, {field: {operator: cursor[position]}}]})
    return {"$or": alternatives}


def _equals(field: str, value: Any) -> Document:
    return {field: {"$eq": value}}


def _any_of(filters: list[Document]) -> Document:
    if not filters:
        return _NOTHING
    return filters[0] if len(filters) == 1 else {"$or": filters}
