"""search at type and system level (https://hl7.org/fhir/R4/search.html): sorted, keyset-paged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from fhir_server.digits import is_number
from fhir_server.engine.access_control import search_clauses
from fhir_server.engine.bundles import CURSOR_PARAM, page_links, parse_count, resume
from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions.includes import (
    include_entries,
    parse_includes,
    resolve_includes,
)
from fhir_server.engine.resource_types import require_type
from fhir_server.engine.search_request import (
    RESULT_PARAMETERS,
    parse_search,
    supported_parameters,
)
from fhir_server.engine.summary import apply_elements, apply_summary
from fhir_server.engine.valuesets import expand_value_sets
from fhir_server.engine.writing import plaintext_body
from fhir_server.errors import ErrorCode, FhirError, Issue, IssueType
from fhir_server.outcome import outcome_of_issues
from fhir_server.search.registry import SearchRegistry
from fhir_server.storage.protocol import QueryPlan, SearchPage
from fhir_server.storage.query import Clause, SearchQuery, SortKey, SortKind, TypeClause
from fhir_server.types import ResourceDict

_HANDLED_RESULT_PARAMS = frozenset({"_count", "_total", "_summary", "_elements", "_offset",
                                    "_format", "_pretty", "_include", "_revinclude", "_sort",
                                    "_explain", CURSOR_PARAM})
_EXPLAIN_PARAM = "_explain"
_SORT_PARAM = "_sort"
_SORTABLE_TYPES: frozenset[str] = frozenset(
    {"string", "token", "date", "number", "quantity", "uri", "reference"})
_COLUMN_SORTS: dict[str, SortKind] = {"_id": "id", "_lastUpdated": "last_updated"}


def _shaped(resource: ResourceDict, summary: str | None, elements: str | None) -> ResourceDict:
    """A match as ``_summary`` and ``_elements`` ask for it."""
    if summary is not None:
        resource = apply_summary(resource, summary)
    if elements is not None:
        resource = apply_elements(resource, elements)
    return resource


def _offset(params: Sequence[tuple[str, str]], ctx: EngineContext) -> int:
    values = [v for k, v in params if k == "_offset"]
    if not values:
        return 0
    raw = values[-1]
    if not is_number(raw) or int(raw) > ctx.limits.max_offset:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"_offset: '{raw[:20]}' must be a whole number up to "
                        f"{ctx.limits.max_offset}; page with the next links beyond that",
                        expression=("_offset",))
    return int(raw)


def _why(name: str, reasons: Mapping[str, str]) -> str:
    """``'name'`` and, when the parser said why it could not use it, the reason."""
    reason = reasons.get(name)
    return f"'{name}' ({reason})" if reason else f"'{name}' (unknown or unsupported)"


def _last(params: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in params if k == name]
    return values[-1] if values else None


@dataclass(frozen=True, slots=True)
class _Sort:
    """The keys of ``_sort`` this server can sort by, and why it ignores the others."""

    keys: tuple[SortKey, ...]
    refused: tuple[str, ...]


def _parse_sort(registry: SearchRegistry, resource_type: str | None, types: Sequence[str],
                params: Sequence[tuple[str, str]]) -> _Sort:
    """``_sort=a,-b``: a comma list of parameters, ``-`` for descending order."""
    raw = _last(params, _SORT_PARAM)
    keys: list[SortKey] = []
    refused: list[str] = []
    for item in (raw or "").split(","):
        descending = item.startswith("-")
        code = item[1:] if descending else item
        if not code:
            continue
        kind = _sort_kind(registry, resource_type, types, code)
        if kind is None:
            refused.append(code)
        else:
            keys.append(SortKey(code, kind, descending))
    return _Sort(tuple(keys), tuple(refused))


def _sort_kind(registry: SearchRegistry, resource_type: str | None, types: Sequence[str],
               code: str) -> SortKind | None:
    """How to sort by ``code``: the same sortable type in every searched resource type (only
    ``_id`` and ``_lastUpdated`` for a search of every type); None when it cannot sort."""
    if code in _COLUMN_SORTS:
        return _COLUMN_SORTS[code]
    scopes = (resource_type,) if resource_type is not None else tuple(types)
    found = [_parameter_types(registry, scope).get(code) for scope in scopes]
    kinds = set(found)
    if not found or None in kinds or len(kinds) != 1:
        return None
    kind = kinds.pop()
    return cast(SortKind, kind) if kind in _SORTABLE_TYPES else None


def _parameter_types(registry: SearchRegistry, resource_type: str) -> dict[str, str]:
    return {param.name: param.type for param in supported_parameters(resource_type, registry)}


def _sort_refusal(refused: Sequence[str]) -> str:
    return "cannot sort by " + ", ".join(f"'{code}'" for code in refused)


def _keyset_of(result: SearchPage, position: int) -> tuple[object, ...]:
    """The cursor keyset after a match: its sort values (if sorted), then its type and id."""
    match = result.matches[position]
    sort_values = result.sort_values[position] if result.sort_values else ()
    return (*sort_values, match.resource_type, match.id)


def _after(keyset: tuple[Any, ...] | None, sort: Sequence[SortKey]) -> tuple[object, ...] | None:
    """The store's keyset from a cursor's: the sort values, then type and id."""
    if keyset is None:
        return None
    if len(keyset) != len(sort) + 2:
        raise FhirError(ErrorCode.BAD_PARAMETER, "This paging cursor does not match its request",
                        expression=(CURSOR_PARAM,))
    width = len(sort)
    return (*keyset[:width], *(str(key) for key in keyset[width:]))


async def search(ctx: EngineContext, *, base_url: str, params: Sequence[tuple[str, str]],
                 resource_type: str | None = None, strict: bool = False,
                 scope: Sequence[Clause] = (), link_path: str | None = None,
                 may_explain: bool = False) -> ResourceDict:
    """A ``searchset`` Bundle. Unknown parameters: a warning entry, or 400 when ``strict``.

    ``scope``: clauses AND-ed with the parameters' (a compartment's membership); ``link_path``:
    the path, under ``base_url``, that paging links and cursors belong to (default: the type).
    ``_explain=true`` adds the store's plan as an outcome entry; only when ``may_explain``
    (an administrator's request), 403 otherwise.
    """
    if resource_type is not None:
        require_type(resource_type)
    path = link_path if link_path is not None else resource_type or ""
    page = resume(ctx, path, params)
    value_sets = await expand_value_sets(ctx, page.params, base_url=base_url)
    parsed = parse_search(resource_type, page.params, ctx.indexer, base_url=base_url,
                          value_sets=value_sets)
    unsupported = [n for n, _ in page.params
                   if n.split(":")[0] in RESULT_PARAMETERS
                   and n.split(":")[0] not in _HANDLED_RESULT_PARAMS]
    clauses = search_clauses(
        ctx, "s", resource_type, parsed.types,
        parsed.clauses + ((TypeClause(parsed.types),) if parsed.types else ()) + tuple(scope))
    registry = ctx.indexer.search_registry
    includes = parse_includes(page.params, registry)
    sort = _parse_sort(registry, resource_type, parsed.types, page.params)
    ignored = [*parsed.unknown, *unsupported, *includes.rejected]
    reasons = {u.name: u.reason for u in parsed.unsupported}
    if sort.refused:
        ignored.append(_SORT_PARAM)
        reasons[_SORT_PARAM] = _sort_refusal(sort.refused)
    if ignored and strict:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        "Unknown or unsupported search parameter(s): "
                        + "; ".join(_why(name, reasons) for name in ignored),
                        expression=tuple(ignored))
    count = parse_count(page.params, ctx)
    summary = _last(page.params, "_summary")
    total_mode = _last(page.params, "_total")
    offset = _offset(page.params, ctx) if page.keyset is None else 0
    want_total = summary == "count" or total_mode in ("accurate", "estimate")
    explain = _wants_explain(page.params, may_explain)
    query = SearchQuery(
        resource_type, clauses, count=0 if summary == "count" else count + 1,
        offset=offset, after=_after(page.keyset, sort.keys), want_total=want_total,
        sort=sort.keys)
    result = await ctx.store.search(query)
    shown = result.matches[:count]
    more = len(result.matches) > count
    last = shown[-1] if shown else None
    kept = [(k, v) for k, v in page.params if k not in parsed.unknown and k not in unsupported
            and k != CURSOR_PARAM and f"{k}={v}" not in includes.rejected]
    bundle: ResourceDict = {
        "resourceType": "Bundle", "type": "searchset",
        "link": page_links(ctx, base_url=base_url, path=path, params=kept,
                           next_keyset=_keyset_of(result, len(shown) - 1)
                           if more and last else None,
                           cursor_used=_last(params, CURSOR_PARAM)),
    }
    total = result.total
    if total is None and page.keyset is None and offset == 0 and not more:
        total = len(shown)
    if total is not None and total_mode != "none":
        bundle["total"] = total
    elements = _last(page.params, "_elements")
    entries: list[ResourceDict] = [
        {"fullUrl": f"{base_url}/{m.resource_type}/{m.id}",
         "resource": _shaped(orjson.loads(plaintext_body(ctx, m)), summary, elements),
         "search": {"mode": "match"}}
        for m in ([] if summary == "count" else shown)]
    included = await resolve_includes(ctx, includes, matches=[] if summary == "count" else shown,
                                      base_url=base_url)
    entries.extend(include_entries(included, base_url=base_url, shape=lambda m: _shaped(
        orjson.loads(plaintext_body(ctx, m)), summary, elements)))
    if ignored:
        warning = outcome_of_issues([Issue(
            diagnostics=f"Ignored search parameter {_why(name, reasons)}",
            severity="warning", issue_type=IssueType.NOT_SUPPORTED, expression=(name,))
            for name in ignored])
        entries.append({"resource": warning, "search": {"mode": "outcome"}})
    if explain:
        entries.append({"resource": _explanation(await ctx.store.explain(query)),
                        "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return bundle


def _wants_explain(params: Sequence[tuple[str, str]], may_explain: bool) -> bool:
    """Whether ``_explain=true`` was asked for (and may be answered)."""
    value = _last(params, _EXPLAIN_PARAM)
    if value is None or value == "false":
        return False
    if value != "true":
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"_explain: '{value[:20]}' must be true or false",
                        expression=(_EXPLAIN_PARAM,))
    if not may_explain:
        raise FhirError(ErrorCode.FORBIDDEN,
                        "_explain shows how the database runs a search: it is reserved to "
                        "administrators", expression=(_EXPLAIN_PARAM,))
    return True


def _explanation(plan: QueryPlan) -> ResourceDict:
    """The store's plan as an informational OperationOutcome: the query, the plan's steps and
    the indexes it reads."""
    used = ", ".join(plan.indexes) if plan.indexes else "none"
    return outcome_of_issues([
        Issue(diagnostics=f"{plan.backend} query: {plan.statement}", severity="information",
              issue_type=IssueType.INFORMATIONAL, expression=(_EXPLAIN_PARAM,)),
        Issue(diagnostics="plan:\n" + "\n".join(plan.steps), severity="information",
              issue_type=IssueType.INFORMATIONAL, expression=(_EXPLAIN_PARAM,)),
        Issue(diagnostics=f"indexes used: {used}", severity="information",
              issue_type=IssueType.INFORMATIONAL, expression=(_EXPLAIN_PARAM,))])
