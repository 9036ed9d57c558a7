"""Parses FHIR search parameters into the query tree (REST-core subset).

Understood here: _id, identifier and _lastUpdated.

The search issue replaces this parser with the registry-driven one for every R4 parameter; callers
only see ``parse_search`` and ``ParsedSearch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fhir_server.engine.indexing import Indexer, types_with_identifier_param
from fhir_server.engine.instants import fhir_range
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.query import (
    Clause,
    IdClause,
    LastUpdatedClause,
    TokenClause,
    TokenValue,
)

RESULT_PARAMETERS = frozenset({"_count", "_total", "_summary", "_elements", "_format", "_pretty",
                               "_cursor", "_offset", "_sort", "_include", "_revinclude"})
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


@dataclass(frozen=True, slots=True)
class ParsedSearch:
    """The query clauses of a search, and the parameters it did not understand."""

    clauses: tuple[Clause, ...]
    unknown: tuple[str, ...]


def supported_parameters(resource_type: str | None) -> tuple[str, ...]:
    """Search parameters this parser understands for a type."""
    names = ["_id", "_lastUpdated"]
    if resource_type in types_with_identifier_param():
        names.append("identifier")
    return tuple(names)


def parse_search(resource_type: str | None, params: Sequence[tuple[str, str]],
                 indexer: Indexer) -> ParsedSearch:
    """Turn (name, value) pairs into AND-ed clauses; repeated names AND, commas OR."""
    clauses: list[Clause] = []
    unknown: list[str] = []
    allowed = supported_parameters(resource_type)
    for name, value in params:
        if name in RESULT_PARAMETERS:
            continue
        base, _, modifier = name.partition(":")
        if base not in allowed or modifier:
            unknown.append(name)
            continue
        if base == "_id":
            clauses.append(IdClause(tuple(v for v in value.split(",") if v)))
        elif base == "identifier":
            clauses.append(_identifier_clause(value, indexer))
        else:
            clauses.append(_last_updated_clause(value))
    return ParsedSearch(tuple(clauses), tuple(unknown))


def _identifier_clause(value: str, indexer: Indexer) -> TokenClause:
    values: list[TokenValue] = []
    for part in _split_or(value):
        if "|" in part:
            system, code = part.split("|", 1)
            code_value = indexer.token_code(system or None, code) if code else None
            values.append(TokenValue(system, code_value))
        else:
            values.append(TokenValue(None, part))
    return TokenClause("identifier", tuple(values))


def _split_or(value: str) -> list[str]:
    """Split on commas that are not escaped with a backslash, and unescape."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p]


def _last_updated_clause(value: str) -> LastUpdatedClause:
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    raw = value[2:] if value[:2] in _PREFIXES else value
    try:
        low, high = fhir_range(raw)
    except ValueError:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"_lastUpdated: '{value[:60]}' is not a valid date",
                        expression=("_lastUpdated",)) from None
    if prefix == "eq":
        return LastUpdatedClause(low, high)
    if prefix in ("gt", "sa"):
        return LastUpdatedClause(high, None, low_inclusive=False)
    if prefix == "ge":
        return LastUpdatedClause(low, None)
    if prefix in ("lt", "eb"):
        return LastUpdatedClause(None, low, high_inclusive=False)
    if prefix == "le":
        return LastUpdatedClause(None, high)
    raise FhirError(ErrorCode.BAD_PARAMETER,
                    f"_lastUpdated: the prefix '{prefix}' is not supported",
                    expression=("_lastUpdated",))
