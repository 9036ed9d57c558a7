"""Expands token ``:below`` / ``:above`` values into codes, from the code systems this server holds.

Spec: https://hl7.org/fhir/R4/search.html#modifiers. ``code:below=system|code`` matches the code
and every code it subsumes; ``code:above=system|code`` the code and every code subsuming it. The
hierarchies held here:

- a CodeSystem stored on this server, found by its canonical ``url`` (the latest updated when
  several share it); it takes the place of an official one with the same url;
- the official R4 code systems (FHIR, v3, v2 tables) vendored in
  ``fhir_server/definitions/r4/codesystems.json.gz``, loaded on first use and kept.

A hierarchy is read from nested ``concept``s and from the ``parent`` / ``child`` concept
properties (a code may have several parents). ``hierarchyMeaning`` must be ``is-a`` or absent
(the official FHIR code systems nest their concepts without stating it); ``grouped-by``,
``part-of`` and ``classified-with`` do not make a child a kind of its parent and are refused.
A code without system is looked up in every code system held here, and expanded in the one that
defines it when exactly one does.

Refusals, recorded for the parser (``ValueSetCodes.refused``) because only the parser knows
whether the parameter is a token (``:below`` on a uri parameter is a prefix match): a system
whose hierarchy is not held here (HAPI FHIR answers an empty result there, which a client cannot
tell from "nothing matches": we say why instead), a code the system does not define, a code
without system that no or several held systems define, and, as too costly, an expansion of more
than ``MAX_CODES`` codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any, Final, Literal

from fhir_server.definitions import load_bundle, resource_types
from fhir_server.engine.context import EngineContext
from fhir_server.engine.writing import load
from fhir_server.search.parser import (
    MAX_OR_VALUES,
    ValueSetCodes,
    hierarchy_key,
    split_escaped,
    unescape,
)
from fhir_server.search.registry import ParamType, default_registry
from fhir_server.storage.protocol import StoredVersion
from fhir_server.storage.query import SearchQuery, UriClause

MAX_CODES: Final = 500
"""The most codes one ``:below`` / ``:above`` value may stand for (each code is one OR-ed value
of the query, and SQLite caps a compound SELECT at 500 branches)."""

MAX_SCANNED_CODE_SYSTEMS: Final = 100
"""The most stored CodeSystems read to find the system of a code given without one."""

OFFICIAL_BUNDLE: Final = "codesystems"
"""The vendored definitions file of the official R4 code systems."""

PARENT_PROPERTY: Final = "http://hl7.org/fhir/concept-properties#parent"
CHILD_PROPERTY: Final = "http://hl7.org/fhir/concept-properties#child"

Modifier = Literal["below", "above"]
_MODIFIERS: Final[tuple[Modifier, ...]] = ("below", "above")
_IS_A_MEANINGS: Final = frozenset({None, "is-a"})
_CANONICAL_CANDIDATES: Final = 20
_COLUMN_CODES: Final = frozenset({"_id", "_lastUpdated"})


class TooManyCodes(Exception):
    """An expansion went past its limit."""


@dataclass(frozen=True, slots=True)
class CodeHierarchy:
    """The codes one code system defines and the subsumption links between them."""

    url: str
    codes: frozenset[str]
    parents: Mapping[str, tuple[str, ...]]
    children: Mapping[str, tuple[str, ...]]
    meaning: str | None = None
    """``hierarchyMeaning`` as the CodeSystem states it (None: not stated)."""

    @property
    def is_a(self) -> bool:
        """Whether a child code is a kind of its parent (``is-a``, or not stated)."""
        return self.meaning in _IS_A_MEANINGS

    def below(self, code: str, *, limit: int = MAX_CODES) -> tuple[str, ...]:
        """``code`` and every code it subsumes, nearest first; ``TooManyCodes`` past ``limit``."""
        return _closure(code, self.children, limit)

    def above(self, code: str, *, limit: int = MAX_CODES) -> tuple[str, ...]:
        """``code`` and every code subsuming it, nearest first; ``TooManyCodes`` past ``limit``."""
        return _closure(code, self.parents, limit)


def hierarchy_of(code_system: Mapping[str, Any]) -> CodeHierarchy | None:
    """The hierarchy a CodeSystem resource defines; None when it has no ``url``.

    Walked without recursion, so that deeply nested concepts cannot exhaust the stack. Links to
    codes the CodeSystem does not define are left out.
    """
    url = code_system.get("url")
    if not isinstance(url, str) or not url:
        return None
    parent_codes, child_codes = link_properties(code_system)
    codes: dict[str, None] = {}
    links: list[tuple[str, str]] = []
    pending: list[tuple[Any, str | None]] = [(code_system.get("concept"), None)]
    while pending:
        concepts, parent = pending.pop()
        for concept in concepts if isinstance(concepts, list) else ():
            if not isinstance(concept, dict):
                continue
            code = concept.get("code")
            if not isinstance(code, str) or not code:
                pending.append((concept.get("concept"), None))
                continue
            codes[code] = None
            if parent is not None:
                links.append((parent, code))
            links.extend(_property_links(code, concept.get("property"), parent_codes,
                                         child_codes))
            pending.append((concept.get("concept"), code))
    meaning = code_system.get("hierarchyMeaning")
    return CodeHierarchy(url=url, codes=frozenset(codes),
                         parents=_grouped(((child, parent) for parent, child in links), codes),
                         children=_grouped(links, codes),
                         meaning=meaning if isinstance(meaning, str) else None)


def link_properties(code_system: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """The concept property codes naming a parent, and those naming a child: ``parent`` and
    ``child``, and any code the CodeSystem declares with the standard property URIs."""
    parents, children = {"parent"}, {"child"}
    for declared in code_system.get("property") or ():
        if not isinstance(declared, dict) or not isinstance(code := declared.get("code"), str):
            continue
        if declared.get("uri") == PARENT_PROPERTY:
            parents.add(code)
        elif declared.get("uri") == CHILD_PROPERTY:
            children.add(code)
    return frozenset(parents), frozenset(children)


def _property_links(code: str, properties: Any, parent_codes: frozenset[str],
                    child_codes: frozenset[str]) -> list[tuple[str, str]]:
    """(parent, child) links a concept's ``parent`` / ``child`` properties state."""
    links: list[tuple[str, str]] = []
    for item in properties if isinstance(properties, list) else ():
        if not isinstance(item, dict) or not isinstance(other := item.get("valueCode"), str):
            continue
        if item.get("code") in parent_codes:
            links.append((other, code))
        elif item.get("code") in child_codes:
            links.append((code, other))
    return links


def _grouped(pairs: Iterable[tuple[str, str]],
             defined: Mapping[str, None]) -> Mapping[str, tuple[str, ...]]:
    """``{a: (b, …)}`` of (a, b) pairs between defined codes, without duplicates or self-links."""
    grouped: dict[str, dict[str, None]] = {}
    for source, target in pairs:
        if source != target and source in defined and target in defined:
            grouped.setdefault(source, {})[target] = None
    return MappingProxyType({source: tuple(targets) for source, targets in grouped.items()})


def _closure(start: str, links: Mapping[str, tuple[str, ...]], limit: int) -> tuple[str, ...]:
    """``start`` and every code reachable through ``links``, breadth first (cycles tolerated)."""
    found: dict[str, None] = {start: None}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for code in frontier:
            for linked in links.get(code, ()):
                if linked not in found:
                    found[linked] = None
                    following.append(linked)
            if len(found) > limit:
                raise TooManyCodes
        frontier = following
    return tuple(found)


@cache
def official_hierarchies() -> Mapping[str, CodeHierarchy]:
    """The vendored official R4 code systems, by canonical url."""
    found: dict[str, CodeHierarchy] = {}
    for resource in load_bundle(OFFICIAL_BUNDLE):
        hierarchy = hierarchy_of(resource)
        if hierarchy is not None:
            found[hierarchy.url] = hierarchy
    return MappingProxyType(found)


@cache
def _official_systems_by_code() -> Mapping[str, tuple[str, ...]]:
    systems: dict[str, list[str]] = {}
    for url, hierarchy in official_hierarchies().items():
        for code in hierarchy.codes:
            systems.setdefault(code, []).append(url)
    return MappingProxyType({code: tuple(sorted(urls)) for code, urls in systems.items()})


def official_systems_defining(code: str) -> tuple[str, ...]:
    """The urls of the official code systems that define ``code``."""
    return _official_systems_by_code().get(code, ())


async def expand_hierarchies(ctx: EngineContext,
                             params: Sequence[tuple[str, str]]) -> dict[str, ValueSetCodes]:
    """The expansion of every value of the ``:below`` / ``:above`` parameters of ``params``
    that may be token parameters, keyed by ``hierarchy_key(modifier, value as written)``.

    Failures are recorded in the expansions (``refused``, ``too_costly``), not raised: the
    parser raises them when the parameter is a token. A parameter with more OR-ed values than
    the parser accepts is not expanded (the parser refuses it).
    """
    expander = _Expander(ctx)
    found: dict[str, ValueSetCodes] = {}
    for name, value in params:
        modifier = hierarchy_modifier(name)
        parts = [part for part in split_escaped(value, ",") if part]
        if modifier is None or len(parts) > MAX_OR_VALUES:
            continue
        for part in parts:
            key = hierarchy_key(modifier, part)
            if key not in found:
                found[key] = await expander.expand(modifier, part)
    return found


def hierarchy_modifier(name: str) -> Modifier | None:
    """``below`` or ``above`` for a parameter that may be a token with that modifier (chained or
    not); None for any other, and for codes no resource type defines as a token."""
    for modifier in _MODIFIERS:
        if name.endswith(f":{modifier}"):
            code = _final_code(name)
            return None if code in _COLUMN_CODES or code in _non_token_codes() else modifier
    return None


def _final_code(name: str) -> str:
    """The code of the parameter a (possibly chained or ``_has``) name ends with."""
    rest = name
    while rest.startswith("_has:"):
        pieces = rest.split(":", 3)
        rest = pieces[3] if len(pieces) == 4 else ""
    return rest.rpartition(".")[2].partition(":")[0]


@cache
def _non_token_codes() -> frozenset[str]:
    """Codes of official parameters that are a token for no resource type (``url``, …)."""
    registry = default_registry()
    types: dict[str, set[ParamType]] = {}
    for resource_type in resource_types():
        for code, param in registry.params_for(resource_type).items():
            types.setdefault(code, set()).add(param.type)
    return frozenset(code for code, found in types.items() if ParamType.TOKEN not in found)


class _Refused(Exception):
    def __init__(self, detail: str, *, too_costly: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.too_costly = too_costly


@dataclass(slots=True)
class _Expander:
    """Expands codes for one request, reading each stored CodeSystem at most once."""

    ctx: EngineContext
    by_url: dict[str, CodeHierarchy | None] = field(default_factory=dict)
    every_stored: tuple[CodeHierarchy, ...] | None = None
    too_many_stored: bool = False

    async def expand(self, modifier: Modifier, part: str) -> ValueSetCodes:
        """The codes ``part`` (``system|code`` or ``code``, escapes kept) stands for."""
        try:
            system, code = _system_and_code(part)
            hierarchy = (await self._held(system) if system is not None
                         else await self._only_definer(code))
            codes = _related(hierarchy, modifier, code)
        except _Refused as refusal:
            return ValueSetCodes(refused=refusal.detail, too_costly=refusal.too_costly)
        return ValueSetCodes(tuple((hierarchy.url, found) for found in codes))

    async def _held(self, system: str) -> CodeHierarchy:
        if system not in self.by_url:
            stored = await self._stored(system)
            self.by_url[system] = stored or official_hierarchies().get(system)
        found = self.by_url[system]
        if found is None:
            raise _Refused(f"names the code system '{system[:100]}', whose hierarchy is unknown "
                           "to this server: store that CodeSystem to search it with :below or "
                           ":above")
        return found

    async def _stored(self, url: str) -> CodeHierarchy | None:
        """The stored CodeSystem with this ``url`` (the latest updated), if any."""
        page = await self.ctx.store.search(SearchQuery(
            "CodeSystem", (UriClause("url", (url,)),), count=_CANONICAL_CANDIDATES))
        if not page.matches:
            return None
        latest = max(page.matches, key=lambda stored: stored.last_updated)
        return hierarchy_of(load(self.ctx, latest))

    async def _only_definer(self, code: str) -> CodeHierarchy:
        """The one held code system that defines ``code``."""
        stored = await self._every_stored()
        stored_urls = {hierarchy.url for hierarchy in stored}
        definers = [hierarchy for hierarchy in stored if code in hierarchy.codes]
        definers.extend(official_hierarchies()[url] for url in official_systems_defining(code)
                        if url not in stored_urls)
        if len(definers) == 1:
            return definers[0]
        if not definers:
            raise _Refused("is a code that no code system held by this server defines: "
                           "write it as system|code")
        urls = sorted(hierarchy.url[:100] for hierarchy in definers)
        listed = ", ".join(urls[:3]) + (", …" if len(urls) > 3 else "")
        raise _Refused(f"is a code of {len(urls)} code systems held by this server ({listed}): "
                       "write it as system|code")

    async def _every_stored(self) -> tuple[CodeHierarchy, ...]:
        """Every stored CodeSystem's hierarchy (the latest updated for each url)."""
        if self.every_stored is None and not self.too_many_stored:
            page = await self.ctx.store.search(SearchQuery(
                "CodeSystem", count=MAX_SCANNED_CODE_SYSTEMS + 1))
            self.too_many_stored = len(page.matches) > MAX_SCANNED_CODE_SYSTEMS
            if not self.too_many_stored:
                self.every_stored = self._latest_by_url(page.matches)
        if self.every_stored is None:
            raise _Refused(f"is a code without system, and this server holds more than "
                           f"{MAX_SCANNED_CODE_SYSTEMS} CodeSystems to look it up in: write it "
                           "as system|code", too_costly=True)
        return self.every_stored

    def _latest_by_url(self, versions: Sequence[StoredVersion]) -> tuple[CodeHierarchy, ...]:
        """The hierarchies of stored CodeSystems, the latest updated for each url."""
        latest: dict[str, CodeHierarchy] = {}
        for stored in sorted(versions, key=lambda version: version.last_updated):
            hierarchy = hierarchy_of(load(self.ctx, stored))
            if hierarchy is not None:
                latest[hierarchy.url] = hierarchy
        for hierarchy in latest.values():
            self.by_url.setdefault(hierarchy.url, hierarchy)
        return tuple(latest.values())


def _system_and_code(part: str) -> tuple[str | None, str]:
    """(system, code) of ``system|code``, (None, code) of a lone code."""
    pieces = [unescape(piece) for piece in split_escaped(part, "|")]
    if len(pieces) == 1:
        return None, pieces[0]
    if len(pieces) == 2 and all(pieces):
        return pieces[0], pieces[1]
    raise _Refused("is not a code to expand: write system|code, or the code alone when one "
                   "code system held by this server defines it")


def _related(hierarchy: CodeHierarchy, modifier: Modifier, code: str) -> tuple[str, ...]:
    """``code`` and the codes below or above it in ``hierarchy``."""
    if not hierarchy.is_a:
        raise _Refused(f"names the code system '{hierarchy.url[:100]}', whose hierarchy is not "
                       f"a subsumption (hierarchyMeaning '{hierarchy.meaning}')")
    if code not in hierarchy.codes:
        raise _Refused(f"is not a code of the code system '{hierarchy.url[:100]}'")
    try:
        return hierarchy.below(code) if modifier == "below" else hierarchy.above(code)
    except TooManyCodes:
        raise _Refused(f"stands for more than {MAX_CODES} codes with :{modifier}, the most a "
                       "search matches against: name a narrower code", too_costly=True) from None
