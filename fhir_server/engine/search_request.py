"""The engine's entry to search parsing: the registry-driven parser over the server's parameters.

Callers (search, conditional operations) only see ``parse_search`` and ``ParsedSearch``; the
parsing itself lives in ``fhir_server.search.parser``. The parameters are the indexer's search
registry: the official R4 ones and the custom ones that are ready; a custom parameter awaiting
``$reindex`` is reported as unsupported, saying so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from fhir_server.engine.indexing import Indexer
from fhir_server.search.parser import (
    RESULT_PARAMETERS,
    ParsedSearch,
    Unsupported,
    ValueSetCodes,
    parse_query,
    searchable,
)
from fhir_server.search.registry import SearchRegistry, default_registry

__all__ = ["RESULT_PARAMETERS", "ParsedSearch", "SupportedParameter", "Unsupported",
           "ValueSetCodes", "parse_search", "supported_parameters"]


@dataclass(frozen=True, slots=True)
class SupportedParameter:
    """A search parameter as the CapabilityStatement lists it."""

    name: str
    type: str
    definition: str


_COLUMN_PARAMETERS = (
    SupportedParameter("_id", "token", "http://hl7.org/fhir/SearchParameter/Resource-id"),
    SupportedParameter("_lastUpdated", "date",
                       "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"),
)


def supported_parameters(resource_type: str, registry: SearchRegistry | None = None
                         ) -> tuple[SupportedParameter, ...]:
    """Every search parameter a type can be searched with, as the registry (default: the
    official R4 one) defines them."""
    found = [*_COLUMN_PARAMETERS]
    for code, param in sorted((registry or default_registry()).params_for(resource_type).items()):
        if code not in ("_id", "_lastUpdated") and searchable(param):
            found.append(SupportedParameter(code, str(param.type), param.url))
    return tuple(found)


def parse_search(resource_type: str | None, params: Sequence[tuple[str, str]],
                 indexer: Indexer, *, base_url: str | None = None,
                 value_sets: Mapping[str, ValueSetCodes] | None = None) -> ParsedSearch:
    """Turn (name, value) pairs into AND-ed clauses; repeated names AND, commas OR.

    ``value_sets``: the expansions of the ValueSets named by ``:in`` / ``:not-in`` and of the
    token ``:below`` / ``:above`` codes (``engine.valuesets.expand_value_sets``); without them
    those parameters are unsupported.
    Raises FhirError(BAD_PARAMETER) for a malformed value; unknown or unsupported parameters are
    returned in ``unknown`` (with reasons in ``unsupported``).
    """
    parsed = parse_query(resource_type, params, registry=indexer.search_registry, coder=indexer,
                         base_url=base_url, value_sets=value_sets)
    if not parsed.unsupported or not indexer.registries.pending:
        return parsed
    types = (resource_type,) if resource_type else parsed.types
    return replace(parsed, unsupported=tuple(
        Unsupported(item.name, _AWAITING_REINDEX.format(code=code))
        if indexer.awaiting_reindex(types, code := _code_of(item.name)) else item
        for item in parsed.unsupported))


_AWAITING_REINDEX = ("'{code}' is a custom search parameter awaiting $reindex: new writes are "
                     "indexed, resources stored before it are not yet")


def _code_of(name: str) -> str:
    """The parameter code of a name as written: ``code:modifier.chain`` → code."""
    return name.partition(".")[0].partition(":")[0]
