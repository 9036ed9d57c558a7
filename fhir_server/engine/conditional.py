"""Resolves the search criteria of conditional create, update, delete and patch.

Spec: https://hl7.org/fhir/R4/http.html#cond-update. Unlike an ordinary search, a conditional
operation never ignores a parameter it does not understand: that would widen the match.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fhir_server.engine.access_control import search_clauses
from fhir_server.engine.context import EngineContext
from fhir_server.engine.search_request import parse_search
from fhir_server.engine.valuesets import expand_value_sets
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.protocol import StoredVersion
from fhir_server.storage.query import SearchQuery


async def find_matches(ctx: EngineContext, resource_type: str, criteria: str,
                       *, limit: int = 2, base_url: str | None = None
                       ) -> tuple[StoredVersion, ...]:
    """Up to ``limit`` current resources matching ``criteria`` (a URL query string);
    ``base_url``: the server's base as the client addressed it, so that references to it
    written as absolute URLs match as local ones, as in a search."""
    params = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
    if not params:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        "A conditional operation needs search criteria "
                        "(e.g. identifier=system|value)")
    parsed = parse_search(resource_type, params, ctx.indexer,
                          base_url=base_url,
                          value_sets=await expand_value_sets(ctx, params, base_url=base_url))
    if parsed.unknown:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"Conditional operations on {resource_type} do not support "
                        "the parameter(s) "
                        f"{', '.join(parsed.unknown)}")
    if not parsed.clauses:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        "A conditional operation needs search criteria, not only result parameters")
    where = search_clauses(ctx, "s", resource_type, (), parsed.clauses)
    page = await ctx.store.search(SearchQuery(resource_type, where, count=limit))
    return page.matches


def multiple_matches(resource_type: str, criteria: str) -> FhirError:
    """The 412 of a conditional operation whose criteria match more than one resource."""
    return FhirError(ErrorCode.MULTIPLE_MATCHES,
                     f"The criteria '{criteria[:200]}' match more than one {resource_type}: "
                     "make them more selective")
