"""``_include`` and ``_revinclude`` (https://hl7.org/fhir/R4/search.html#include).

The resources a search page's matches reference (``_include=Source:param[:Target]``, or
``Source:*`` for every reference parameter of Source), or that reference them
(``_revinclude=Source:param[:Target]``), added after the matches as ``include`` entries.

``_include`` targets come from re-extracting each match's index entries with the engine's
indexer, keeping the ``ReferenceEntry`` values of the include's parameters: the very entries the
stores index, so an include finds what a reference search finds. Only references to this server
are followed (relative ``Type/id``, or absolute under the base URL). Targets are read by ``_id``,
batched per type. ``_revinclude`` searches the source type with a ``ReferenceClause`` on the
page's resources. Directives with ``:iterate`` (or R4's synonym ``:recurse``) apply again to what
each round added, until nothing new, for at most ``MAX_ROUNDS`` rounds and ``MAX_INCLUDED``
resources; past either bound the included set is cut and a warning says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from fhir_server.engine.access_control import readable_clauses
from fhir_server.engine.context import EngineContext
from fhir_server.engine.resource_types import known_types
from fhir_server.engine.writing import load
from fhir_server.errors import Issue, IssueType
from fhir_server.outcome import outcome_of_issues
from fhir_server.search.registry import ParamType, SearchRegistry, default_registry
from fhir_server.storage.index import ReferenceEntry
from fhir_server.storage.protocol import StoredVersion
from fhir_server.storage.query import IdClause, ReferenceClause, ReferenceValue, SearchQuery
from fhir_server.types import ResourceDict

MAX_ROUNDS: Final = 10
"""How many times ``:iterate`` directives are applied after the first round."""

MAX_INCLUDED: Final = 1000
"""The most included resources one page carries."""

BATCH: Final = 100
"""Ids or reference values per store query (keeps each query's expression small)."""

_DIRECTIVE_NAMES: Final = frozenset({"_include", "_revinclude"})
_ITERATE_MODIFIERS: Final = frozenset({"iterate", "recurse"})

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class IncludeDirective:
    """One ``_include`` (``reverse`` False) or ``_revinclude`` value, its ``*`` expanded.

    ``codes`` are reference parameters of ``source_type``; ``target_type`` None: any target.
    """

    reverse: bool
    iterate: bool
    source_type: str
    codes: tuple[str, ...]
    target_type: str | None = None


@dataclass(frozen=True, slots=True)
class IncludePlan:
    """The include directives of a search, and the ``name=value`` pairs it cannot honour."""

    directives: tuple[IncludeDirective, ...]
    rejected: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Included:
    """The resources included in a page, in order; ``warning`` when the set was cut short."""

    resources: tuple[StoredVersion, ...]
    warning: str | None = None


def parse_includes(params: Sequence[tuple[str, str]],
                   registry: SearchRegistry | None = None) -> IncludePlan:
    """The ``_include``/``_revinclude`` directives among the search parameters, naming the
    reference parameters of ``registry`` (default: the official R4 ones).

    A value naming an unknown type, a parameter that is not a reference parameter of its source
    type, a target type the parameter cannot point to, or an unknown modifier is rejected.
    """
    directives: list[IncludeDirective] = []
    rejected: list[str] = []
    for name, value in params:
        base, _, modifier = name.partition(":")
        if base not in _DIRECTIVE_NAMES:
            continue
        directive = _directive(registry or default_registry(), base == "_revinclude",
                               modifier, value)
        if directive is None:
            rejected.append(f"{name}={value}")
        else:
            directives.append(directive)
    return IncludePlan(tuple(directives), tuple(rejected))


def _directive(registry: SearchRegistry, reverse: bool, modifier: str,
               value: str) -> IncludeDirective | None:
    if modifier and modifier not in _ITERATE_MODIFIERS:
        return None
    parts = value.split(":")
    if len(parts) not in (2, 3):
        return None
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if source not in known_types() or (target is not None and target not in known_types()):
        return None
    codes = _reference_codes(registry, source, code, target)
    if not codes:
        return None
    return IncludeDirective(reverse=reverse, iterate=bool(modifier), source_type=source,
                            codes=codes, target_type=target)


def _reference_codes(registry: SearchRegistry, source: str, code: str,
                     target: str | None) -> tuple[str, ...]:
    """The reference parameters ``code`` stands for (``*``: all of them) that may point to
    ``target``; empty when there is none."""
    params = registry.params_for(source)
    candidates = sorted(params) if code == "*" else [code] if code in params else []
    return tuple(
        candidate for candidate in candidates
        if (param := params[candidate]).type is ParamType.REFERENCE
        and param.expression is not None
        and (target is None or not param.targets or target in param.targets))


async def resolve_includes(ctx: EngineContext, plan: IncludePlan, *,
                           matches: Sequence[StoredVersion], base_url: str,
                           max_included: int = MAX_INCLUDED,
                           max_rounds: int = MAX_ROUNDS) -> Included:
    """The resources ``plan`` adds to a page of ``matches``: none of them a match, none twice."""
    if not plan.directives or not matches:
        return Included(())
    seen: set[Key] = {_key(match) for match in matches}
    found: list[StoredVersion] = []
    frontier: Sequence[StoredVersion] = matches
    directives = plan.directives
    iterating = tuple(d for d in plan.directives if d.iterate)
    for _ in range(max_rounds + 1):
        budget = max_included - len(found) + 1
        fetched = await _apply(ctx, directives, frontier, base_url=base_url, seen=seen,
                               budget=budget)
        fresh = _unseen(fetched, seen)
        found.extend(fresh)
        if len(found) > max_included:
            return Included(tuple(found[:max_included]),
                            f"More than {max_included} resources to include: only the first "
                            f"{max_included} are in this page")
        directives, frontier = iterating, fresh
        if not frontier or not directives:
            return Included(tuple(found))
    return Included(tuple(found), f"_include/_revinclude iteration stopped after {max_rounds} "
                                  "rounds: some iterated resources may be missing")


def include_entries(included: Included, *, base_url: str,
                    shape: Callable[[StoredVersion], ResourceDict]) -> list[ResourceDict]:
    """The Bundle entries of included resources (``search.mode`` include), then the warning."""
    entries: list[ResourceDict] = [
        {"fullUrl": f"{base_url}/{stored.resource_type}/{stored.id}", "resource": shape(stored),
         "search": {"mode": "include"}}
        for stored in included.resources]
    if included.warning is not None:
        outcome = outcome_of_issues([Issue(diagnostics=included.warning, severity="warning",
                                           issue_type=IssueType.TOO_COSTLY)])
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    return entries


async def _apply(ctx: EngineContext, directives: Sequence[IncludeDirective],
                 frontier: Sequence[StoredVersion], *, base_url: str, seen: set[Key],
                 budget: int) -> list[StoredVersion]:
    """One round: the unseen resources ``directives`` reach from ``frontier`` (one resource
    may come twice, through two directives)."""
    forward = [d for d in directives if not d.reverse]
    reverse = [d for d in directives if d.reverse]
    fetched: list[StoredVersion] = []
    if forward:
        targets = _forward_targets(ctx, forward, frontier, base_url=base_url, seen=seen)
        fetched.extend(await _read_targets(ctx, targets))
    for directive in reverse:
        fetched.extend(await _referring(ctx, directive, frontier, seen=seen, budget=budget))
    return fetched


def _forward_targets(ctx: EngineContext, directives: Sequence[IncludeDirective],
                     frontier: Sequence[StoredVersion], *, base_url: str,
                     seen: set[Key]) -> dict[str, list[str]]:
    """Unseen targets of the directives' references, grouped by type (bounded by the frontier:
    a page, or what the previous round added)."""
    targets: dict[Key, None] = {}
    for stored in frontier:
        applicable = [d for d in directives if d.source_type == stored.resource_type]
        if not applicable:
            continue
        references = [entry for entry in ctx.indexer.extract(load(ctx, stored))
                      if isinstance(entry, ReferenceEntry)]
        for directive in applicable:
            targets.update((key, None) for key in _directive_targets(
                directive, references, base_url=base_url) if key not in seen)
    return _by_type(targets)


def _directive_targets(directive: IncludeDirective, references: Iterable[ReferenceEntry], *,
                       base_url: str) -> Iterable[Key]:
    for entry in references:
        if (entry.param in directive.codes and entry.target_type and entry.target_id
                and (directive.target_type is None or entry.target_type == directive.target_type)
                and (entry.url is None or entry.url.startswith(f"{base_url}/"))):
            yield entry.target_type, entry.target_id


def _by_type(keys: Iterable[Key]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for resource_type, id_ in keys:
        grouped.setdefault(resource_type, []).append(id_)
    return grouped


async def _read_targets(ctx: EngineContext, targets: dict[str, list[str]]) -> list[StoredVersion]:
    """The current versions of the targets that exist (deleted or absent ones are skipped)."""
    found: list[StoredVersion] = []
    for resource_type, ids in targets.items():
        limits = readable_clauses(ctx, resource_type)
        if limits is None:
            continue
        for start in range(0, len(ids), BATCH):
            batch = tuple(ids[start:start + BATCH])
            page = await ctx.store.search(SearchQuery(resource_type,
                                                      (IdClause(batch), *limits),
                                                      count=len(batch)))
            found.extend(page.matches)
    return found


async def _referring(ctx: EngineContext, directive: IncludeDirective,
                     frontier: Sequence[StoredVersion], *, seen: set[Key],
                     budget: int) -> list[StoredVersion]:
    """Unseen resources of the directive's source type whose parameters reference the
    frontier, at most about ``budget`` of them."""
    values = [ReferenceValue(stored.resource_type, stored.id) for stored in frontier
              if directive.target_type in (None, stored.resource_type)]
    found: dict[Key, StoredVersion] = {}
    limits = readable_clauses(ctx, directive.source_type)
    if limits is None:
        return []
    for code in directive.codes:
        for start in range(0, len(values), BATCH):
            page = await ctx.store.search(SearchQuery(
                directive.source_type,
                (ReferenceClause(code, tuple(values[start:start + BATCH])), *limits),
                count=budget + len(seen)))
            found.update((key, m) for m in page.matches if (key := _key(m)) not in seen)
            if len(found) >= budget:
                return list(found.values())
    return list(found.values())


def _unseen(candidates: Iterable[StoredVersion], seen: set[Key]) -> list[StoredVersion]:
    """The candidates not seen before, each once; marks them seen."""
    fresh: list[StoredVersion] = []
    for stored in candidates:
        key = _key(stored)
        if key not in seen:
            seen.add(key)
            fresh.append(stored)
    return fresh


def _key(stored: StoredVersion) -> Key:
    return stored.resource_type, stored.id
