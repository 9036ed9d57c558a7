"""Compiles the query tree (``storage/query.py``) into MongoDB filters and sort orders.

Every value taken from a query goes into a filter as a literal: under ``$eq`` or ``$in``, as the
bound of a range operator, or ``re.escape``-d inside a ``$regex``, never as a document the server
would read as operators, so a search value such as ``{"$gt": ""}`` matches only that literal
value. Each condition on index entries is one ``$elemMatch`` on ``idx``, so a single entry must
satisfy all its parts (a token's system and code, a range test's bounds and its unit).

Chained and ``_has`` clauses need another search first (``find`` has no join): ``joins.py`` runs
it and hands the resulting filter in as ``joins``; this module only shapes those filters.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, assert_never

from fhir_server.storage.mongo.documents import (
    COMPOSITE,
    DATE,
    NUMBER,
    QUANTITY,
    REFERENCE,
    STRING,
    TOKEN,
    URI,
    Document,
)
from fhir_server.storage.query import (
    AllClause,
    AnyClause,
    Bound,
    ChainClause,
    Clause,
    CompositeClause,
    CompositeValue,
    HasClause,
    HistoryQuery,
    IdClause,
    LastUpdatedClause,
    MissingClause,
    NotClause,
    RangeClause,
    RangeTest,
    ReferenceClause,
    ReferenceValue,
    SearchQuery,
    SortKey,
    StringClause,
    StringStart,
    TextClause,
    TokenClause,
    TokenValue,
    TypeClause,
    UriClause,
    UriEquals,
)

SEARCH_ORDER: Final = [("type", 1), ("id", 1)]
"""The stable order of search results and of the ties of a sort: fields an update never changes."""
HISTORY_ORDER: Final = [("last_updated", -1), ("type", -1), ("id", -1), ("version", -1)]

Join: TypeAlias = ChainClause | HasClause


@dataclass(frozen=True, slots=True)
class Joins:
    """The filter each chained or ``_has`` clause of a query stands for, as ``joins.py`` found
    it. Clauses are told apart by identity: a clause may hold an unhashable (hostile) value."""

    resolved: tuple[tuple[Join, Document], ...] = ()

    def filter_for(self, clause: Join) -> Document:
        for candidate, resolved in self.resolved:
            if candidate is clause:
                return resolved
        raise ValueError("a chained or _has clause must be resolved (joins.py) before compiling")


NO_JOINS: Final = Joins()

_NOTHING: Final[Document] = {"_id": {"$in": []}}
_RANGE_KINDS: Final = {"date": DATE, "number": NUMBER, "quantity": QUANTITY}
_BOUND_FIELDS: Final = {"low": "lo", "high": "hi"}
_BOUND_OPERATORS: Final = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}
_SURROGATES: Final = range(0xD800, 0xE000)
_REFERENCE_VALUE: Final[Document] = {"$ifNull": [{"$concat": ["$$e.t", "/", "$$e.i"]}, "$$e.u"]}
_SORT_ENTRY_VALUES: Final[dict[str, tuple[Any, Any]]] = {
    "string": ("$$e.n", "$$e.n"), "token": ("$$e.c", "$$e.c"), "date": ("$$e.lo", "$$e.hi"),
    "number": ("$$e.lo", "$$e.hi"), "quantity": ("$$e.lo", "$$e.hi"), "uri": ("$$e.v", "$$e.v"),
    "reference": (_REFERENCE_VALUE, _REFERENCE_VALUE)}
"""Per entry kind, the value of an entry ``$$e`` that sorts ascending and descending."""
_SORT_KINDS: Final = {"string": STRING, "token": TOKEN, "date": DATE, "number": NUMBER,
                      "quantity": QUANTITY, "uri": URI, "reference": REFERENCE}
_SORT_CARRIED: Final = ("type", "id", "version", "last_updated", "method", "body", "idx")
"""The fields a ``$group`` computing a sort value keeps (with the earlier sort values)."""
_SORT_SCRATCH: Final = "_sort_values"


def search_filter(query: SearchQuery, joins: Joins = NO_JOINS) -> Document:
    """Current, non-deleted resources of the query's type matching every clause (no paging)."""
    return resources_filter(query.resource_type, query.where, joins)


def resources_filter(resource_type: str | None, where: Sequence[Clause],
                     joins: Joins = NO_JOINS) -> Document:
    """Current, non-deleted resources of ``resource_type`` (any when None) matching ``where``."""
    parts: list[Document] = [{"body": {"$ne": None}}]
    if resource_type is not None:
        parts.append(_equals("type", resource_type))
    parts.extend(clause_filter(clause, joins) for clause in where)
    return {"$and": parts}


def page_filter(query: SearchQuery, joins: Joins = NO_JOINS) -> Document:
    """``search_filter`` restricted to what sorts after the query's keyset cursor, if any."""
    matching = search_filter(query, joins)
    if query.after is None:
        return matching
    tie_breakers = tuple(field for field, _ in SEARCH_ORDER)
    return {"$and": [matching, _beyond(tie_breakers, query.after, "$gt")]}


def sorted_pipeline(query: SearchQuery, joins: Joins = NO_JOINS) -> list[Document]:
    """The aggregation of a sorted search's page: each match with its sort values ``s0``,
    ``s1``… (None when it has none), sorted by them (missing last) then by the tie-breakers.

    An entry-based value takes an ``$unwind`` of the parameter's values and a ``$group`` back
    to one document with their ``$min`` (``$max``): the least / greatest of an array as an
    expression is not available everywhere (mongomock), the accumulators are.
    """
    stages: list[Document] = [{"$match": search_filter(query, joins)}]
    for position, key in enumerate(query.sort):
        stages.extend(_sort_value_stages(key, position))
    if query.after is not None:
        stages.append({"$match": _sorted_keyset(query)})
    order: Document = {}
    for position, key in enumerate(query.sort):
        order[f"m{position}"] = 1
        order[f"s{position}"] = -1 if key.descending else 1
    order.update(dict(SEARCH_ORDER))
    stages.extend([{"$addFields": {f"m{position}": _missing_flag(f"$s{position}")
                                   for position in range(len(query.sort))}},
                   {"$sort": order}, {"$skip": max(query.offset, 0)},
                   {"$limit": query.count}, {"$project": {"idx": 0}}])
    return stages


def _sort_value_stages(key: SortKey, position: int) -> list[Document]:
    name = f"s{position}"
    if key.kind == "id":
        return [{"$addFields": {name: "$id"}}]
    if key.kind == "last_updated":
        return [{"$addFields": {name: "$last_updated"}}]
    kept = [*_SORT_CARRIED, *(f"s{earlier}" for earlier in range(position))]
    return [{"$addFields": {_SORT_SCRATCH: _entry_values(key)}},
            {"$unwind": {"path": f"${_SORT_SCRATCH}", "preserveNullAndEmptyArrays": True}},
            {"$group": {"_id": "$_id", **{field: {"$first": f"${field}"} for field in kept},
                        name: {"$max" if key.descending else "$min": f"${_SORT_SCRATCH}"}}}]


def _entry_values(key: SortKey) -> Document:
    """The parameter's values of a document that sort it: entries of its kind that have one.

    Entries are filtered on the value being above null before being mapped to it, which
    also keeps out entries without the field (a missing field inside ``$map`` is not portable).
    """
    ascending, descending = _SORT_ENTRY_VALUES[key.kind]
    value = descending if key.descending else ascending
    entries = {"$filter": {"input": "$idx", "as": "e", "cond": {"$and": [
        {"$eq": ["$$e.p", {"$literal": key.param}]},
        {"$eq": ["$$e.k", {"$literal": _SORT_KINDS[key.kind]}]},
        {"$gt": [value, None]}]}}}
    return {"$map": {"input": entries, "as": "e", "in": value}}


def _missing_flag(value: str) -> Document:
    """1 when the sort value is missing (sorting it after every present value), else 0."""
    return {"$cond": [{"$gt": [value, None]}, 0, 1]}


def _sorted_keyset(query: SearchQuery) -> Document:
    """Documents after the cursor in sort order: the lexicographic OR-chain over the sort
    values (a missing value sorting after every present one) then the tie-breakers."""
    after = query.after or ()
    if len(after) != len(query.sort) + len(SEARCH_ORDER):
        raise ValueError("a sorted search's cursor holds one value per sort key, then the "
                         "type and id")
    fields = [*((f"s{n}", key.descending) for n, key in enumerate(query.sort)),
              *((field, False) for field, _ in SEARCH_ORDER)]
    alternatives: list[Document] = []
    equal_prefix: list[Document] = []
    for (field, descending), value in zip(fields, after, strict=True):
        if value is not None:
            beyond = {field: {"$lt" if descending else "$gt": value}}
            alternatives.append({"$and": [*equal_prefix,
                                          {"$or": [_equals(field, None), beyond]}]})
        equal_prefix.append(_equals(field, value))
    return _any_of(alternatives)


def clause_filter(clause: Clause, joins: Joins = NO_JOINS) -> Document:
    """The filter of one clause; a chained or ``_has`` clause (nested in an ``AnyClause`` too)
    must be resolved in ``joins``."""
    match clause:
        case IdClause(ids):
            return {"id": {"$in": list(ids)}}
        case TypeClause(types):
            return {"type": {"$in": list(types)}}
        case TokenClause(param, values, negate):
            matching = _any_of([_entry(param, TOKEN, _token_condition(value))
                                for value in values])
            return _negated(matching) if negate else matching
        case LastUpdatedClause(low, high, low_inclusive, high_inclusive):
            bounds: Document = {}
            if low is not None:
                bounds["$gte" if low_inclusive else "$gt"] = low
            if high is not None:
                bounds["$lte" if high_inclusive else "$lt"] = high
            return {"last_updated": bounds} if bounds else {}
        case TextClause(param, values):
            return _any_of([_entry(param, TOKEN, {"x": _starts_with(value)}) for value in values])
        case StringClause(param, values, mode):
            return _any_of([_entry(param, STRING, _string_condition(value, mode))
                            for value in values])
        case RangeClause(param, kind, tests, negate):
            matching = _any_of([_entry(param, _RANGE_KINDS[kind], _range_condition(test))
                                for test in tests])
            return _negated(matching) if negate else matching
        case ReferenceClause(param, values):
            return _any_of([_entry(param, REFERENCE, condition) for value in values
                            for condition in _reference_conditions(value)])
        case UriClause(param, values, mode):
            return _any_of([_entry(param, URI, {"v": _uri_condition(value, mode)})
                            for value in values])
        case CompositeClause(param, values):
            return _any_of([_entry(param, COMPOSITE, condition) for value in values
                            for condition in _composite_conditions(value)])
        case MissingClause(param, missing):
            present: Document = {"idx": {"$elemMatch": {"p": {"$eq": param}}}}
            return _negated(present) if missing else present
        case ChainClause() | HasClause():
            return joins.filter_for(clause)
        case AnyClause(clauses):
            return _any_of([clause_filter(alternative, joins) for alternative in clauses])
        case AllClause(clauses):
            return {"$and": [clause_filter(part, joins) for part in clauses]} if clauses else {}
        case NotClause(clause=negated):
            return {"$nor": [clause_filter(negated, joins)]}
        case _:
            assert_never(clause)


def chain_filter(clause: ChainClause, target_ids: Collection[str]) -> Document:
    """Resources with a ``clause.param`` reference to one of ``target_ids`` of its target type."""
    if not target_ids:
        return _NOTHING
    return _entry(clause.param, REFERENCE, {"t": {"$eq": clause.target_type},
                                            "i": {"$in": sorted(target_ids)}})


def has_filter(target_keys: Collection[str]) -> Document:
    """Resources whose key ("Type/id", the ``_id``) is one of ``target_keys``."""
    return {"_id": {"$in": sorted(target_keys)}}


def _starts_with(prefix: str) -> Document:
    """Strings starting with ``prefix``, as the range [prefix, successor) an index can walk.

    MongoDB compares strings by their UTF-8 bytes, which is code-point order, so the strings
    starting with ``prefix`` are exactly those from ``prefix`` up to (excluded) the prefix with
    its last code point incremented. Appending "\\uffff" instead would miss a value that goes on
    with a character beyond the Basic Multilingual Plane (an emoji).
    """
    if not isinstance(prefix, str):
        return _only_itself(prefix)
    bounds: Document = {"$gte": prefix}
    successor = _prefix_successor(prefix)
    if successor is not None:
        bounds["$lt"] = successor
    return bounds


def _prefix_successor(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix``; None when there is none."""
    while prefix:
        following = ord(prefix[-1]) + 1
        if following in _SURROGATES:
            following = _SURROGATES.stop
        if following <= sys.maxunicode:
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return None


def _uri_ancestors(value: str) -> list[str]:
    """Every non-empty prefix of ``value``, itself included: the entries it starts with."""
    return [value[:end] for end in range(1, len(value) + 1)]


def _entry(param: str, kind: str, condition: Document) -> Document:
    """Resources with one ``idx`` entry of ``param`` and ``kind`` that meets ``condition``."""
    return {"idx": {"$elemMatch": {"p": {"$eq": param}, "k": {"$eq": kind}, **condition}}}


def _token_condition(value: TokenValue) -> Document:
    condition: Document = {}
    if value.system is not None:
        condition["s"] = {"$eq": value.system or None}
    if value.code is not None:
        condition["c"] = {"$eq": value.code}
    return condition


def _string_condition(value: str, mode: Literal["prefix", "exact", "contains"]) -> Document:
    match mode:
        case "prefix":
            return {"n": _starts_with(value)}
        case "exact":
            return {"e": {"$eq": value}}
        case "contains":
            if not isinstance(value, str):
                return {"n": _only_itself(value)}
            return {"n": {"$regex": re.escape(value)}}
        case _:
            assert_never(mode)


def _range_condition(test: RangeTest, *, system: str = "s", code: str = "c") -> Document:
    """All bounds of a test on one entry, with the quantity's system and code when given
    (on the fields ``system`` and ``code``).

    Bounds are merged per field (``{"lo": {"$gte": a, "$lt": b}}``); a comparison repeated on a
    field goes into ``$and``, since a document cannot hold the same operator twice.
    """
    condition: Document = {}
    repeated: list[Document] = []
    for bound in test.bounds:
        field, operator = _bound_operator(bound)
        comparisons = condition.setdefault(field, {})
        if operator in comparisons:
            repeated.append({field: {operator: bound.value}})
        else:
            comparisons[operator] = bound.value
    if repeated:
        condition["$and"] = repeated
    if test.system is not None:
        condition[system] = {"$eq": test.system or None}
    if test.code is not None:
        condition[code] = {"$eq": test.code}
    return condition


def _composite_conditions(value: CompositeValue) -> list[Document]:
    """One entry condition per way the value can match: its first token (``s``/``c``) and its
    second component (a token or quantity unit on ``s2``/``c2``) on the same entry."""
    first = _token_condition(value.first)
    second = value.second
    match second:
        case TokenValue():
            token = _token_condition(second)
            return [{**first, **{f"{field}2": test for field, test in token.items()}}]
        case RangeTest():
            return [{**first, **_range_condition(second, system="s2", code="c2")}]
        case ReferenceValue():
            return [{**first, **condition} for condition in _reference_conditions(second)]
        case StringStart(prefix):
            return [{**first, "n": _starts_with(prefix)}]
        case UriEquals(uri):
            return [{**first, "u": {"$eq": uri}}]
        case _:
            assert_never(second)


def _bound_operator(bound: Bound) -> tuple[str, str]:
    return _BOUND_FIELDS[bound.field], _BOUND_OPERATORS[bound.op]


def _reference_conditions(value: ReferenceValue) -> list[Document]:
    """One entry condition per way the value can match: by its url, and/or by type and id."""
    conditions: list[Document] = []
    if value.url is not None:
        conditions.append({"u": {"$eq": value.url}})
    if value.target_id is not None or value.url is None:
        condition: Document = {}
        if value.target_type is not None:
            condition["t"] = {"$eq": value.target_type}
        if value.target_id is not None:
            condition["i"] = {"$eq": value.target_id}
        conditions.append(condition)
    return conditions


def _uri_condition(value: str, mode: Literal["exact", "above", "below"]) -> Document:
    match mode:
        case "exact":
            return {"$eq": value}
        case "below":
            return _starts_with(value)
        case "above":
            if not isinstance(value, str):
                return _only_itself(value)
            return {"$in": _uri_ancestors(value)}
        case _:
            assert_never(mode)


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


def _only_itself(value: object) -> Document:
    """A value that is not a string (from a hostile query) has no prefix: it equals itself."""
    return {"$eq": value}


def _negated(matching: Document) -> Document:
    """Resources that ``matching`` does not select (those without the parameter included)."""
    return {"$nor": [matching]}


def _any_of(filters: list[Document]) -> Document:
    if not filters:
        return _NOTHING
    return filters[0] if len(filters) == 1 else {"$or": filters}
