"""Whether a code belongs to a ValueSet, for binding checks: core R4 terminology plus a guide's.

Spec: https://hl7.org/fhir/R4/valueset.html#compositions. A ValueSet's ``compose`` is compiled
once into selections, one per ``include`` / ``exclude``: a system with its listed concepts, its
filters (``is-a``, ``descendent-of``, ``is-not-a``, ``in``, ``not-in``, ``regex`` on the code, and
``=`` on a concept property the CodeSystem declares) or the whole system, and included ValueSets.
Codes are resolved against the CodeSystems held here: the official R4 ones vendored in
``fhir_server/definitions/r4`` and the CodeSystem resources given at construction (a guide's,
which take the place of an official one with the same url).

Membership is three-valued: True, False, or None when it cannot be told here: a system we do not
hold (SNOMED CT, LOINC, UCUM, BCP-13 mime types…), a filter on a property we do not have, an
unknown ValueSet, or a cycle of included ValueSets. Callers turn None into at most a warning.
Versions (``url|version``, ``include.version``) are ignored: one version of each is held.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from fhir_server.definitions import code_systems, value_sets

Membership = bool | None
"""True: a member; False: not a member; None: cannot be told here."""

PARENT_PROPERTY: Final = "http://hl7.org/fhir/concept-properties#parent"
CHILD_PROPERTY: Final = "http://hl7.org/fhir/concept-properties#child"
MEMO_SIZE: Final = 20_000
"""The most (value set, system, code) answers remembered."""

_ENUMERABLE_CONTENT: Final = frozenset({"complete"})


def and3(left: Membership, right: Membership) -> Membership:
    """Three-valued AND (Kleene): False wins, then None."""
    if left is False or right is False:
        return False
    if left is None or right is None:
        return None
    return True


def or3(left: Membership, right: Membership) -> Membership:
    """Three-valued OR (Kleene): True wins, then None."""
    if left is True or right is True:
        return True
    if left is None or right is None:
        return None
    return False


def canonical_url(reference: str) -> str:
    """A canonical reference without its ``|version``."""
    return reference.partition("|")[0]


@dataclass(frozen=True, slots=True)
class CodeSystemIndex:
    """The codes one CodeSystem defines, their hierarchy and the properties it carries."""

    url: str
    codes: frozenset[str]
    exhaustive: bool
    """Whether a code missing from ``codes`` is known not to exist (``content = complete``)."""
    children: Mapping[str, tuple[str, ...]]
    properties: Mapping[str, Mapping[str, tuple[str, ...]]]
    """Declared property code -> concept code -> its values as text."""

    def defines(self, code: str) -> Membership:
        if code in self.codes:
            return True
        return False if self.exhaustive else None

    def descendants(self, code: str) -> frozenset[str]:
        """The codes below ``code`` (``code`` itself excluded), cycles tolerated."""
        found: set[str] = set()
        pending = [code]
        while pending:
            for child in self.children.get(pending.pop(), ()):
                if child not in found and child != code:
                    found.add(child)
                    pending.append(child)
        return frozenset(found)


def index_code_system(resource: Mapping[str, Any]) -> CodeSystemIndex:
    """Index a CodeSystem resource: nested concepts and parent/child properties make the tree."""
    parent_codes, child_codes = _link_properties(resource)
    declared = {p["code"] for p in resource.get("property") or () if isinstance(p, dict)
                and isinstance(p.get("code"), str)} - parent_codes - child_codes
    codes: set[str] = set()
    links: list[tuple[str, str]] = []
    values: dict[str, dict[str, list[str]]] = {name: {} for name in declared}
    pending: list[tuple[Any, str | None]] = [(resource.get("concept"), None)]
    while pending:
        concepts, parent = pending.pop()
        for concept in concepts if isinstance(concepts, list) else ():
            code = concept.get("code") if isinstance(concept, dict) else None
            if not isinstance(code, str):
                continue
            codes.add(code)
            if parent is not None:
                links.append((parent, code))
            for prop in concept.get("property") or ():
                _read_property(code, prop, parent_codes, child_codes, links, values)
            pending.append((concept.get("concept"), code))
    children: dict[str, list[str]] = {}
    for parent_code, child in links:
        children.setdefault(parent_code, []).append(child)
    return CodeSystemIndex(
        url=str(resource.get("url", "")),
        codes=frozenset(codes),
        exhaustive=resource.get("content", "complete") in _ENUMERABLE_CONTENT,
        children={k: tuple(v) for k, v in children.items()},
        properties={name: {c: tuple(v) for c, v in by_code.items()}
                    for name, by_code in values.items()},
    )


def _link_properties(resource: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    parents, children = {"parent"}, {"child"}
    for declared in resource.get("property") or ():
        if isinstance(declared, dict) and isinstance(declared.get("code"), str):
            if declared.get("uri") == PARENT_PROPERTY:
                parents.add(declared["code"])
            elif declared.get("uri") == CHILD_PROPERTY:
                children.add(declared["code"])
    return parents, children


def _read_property(code: str, prop: Any, parent_codes: set[str], child_codes: set[str],
                   links: list[tuple[str, str]], values: dict[str, dict[str, list[str]]]) -> None:
    if not isinstance(prop, dict):
        return
    name = prop.get("code")
    value = _property_text(prop)
    if value is None or not isinstance(name, str):
        return
    if name in parent_codes:
        links.append((value, code))
    elif name in child_codes:
        links.append((code, value))
    elif name in values:
        values[name].setdefault(code, []).append(value)


def _property_text(prop: Mapping[str, Any]) -> str | None:
    for key, value in prop.items():
        if key.startswith("value"):
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, str | int | float):
                return str(value)
    return None


@dataclass(frozen=True, slots=True)
class Selection:
    """One compiled ``include`` or ``exclude``."""

    system: str | None
    codes: frozenset[str] | None
    """The codes selected in ``system``; None when they cannot be listed here."""
    exhaustive: bool = True
    """Whether a code outside ``codes`` is known not to be selected."""
    pattern: re.Pattern[str] | None = None
    value_sets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledValueSet:
    url: str
    includes: tuple[Selection, ...]
    excludes: tuple[Selection, ...]


class Terminology:
    """Membership of codes in ValueSets, by canonical url, over the CodeSystems held."""

    def __init__(self, resources: Iterable[Mapping[str, Any]] = (), *,
                 core: bool = True) -> None:
        self._value_sets: dict[str, Mapping[str, Any]] = dict(value_sets()) if core else {}
        self._code_systems: dict[str, Mapping[str, Any]] = dict(code_systems()) if core else {}
        for resource in resources:
            url = resource.get("url")
            if not isinstance(url, str):
                continue
            if resource.get("resourceType") == "ValueSet":
                self._value_sets[canonical_url(url)] = resource
            elif resource.get("resourceType") == "CodeSystem":
                self._code_systems[canonical_url(url)] = resource
        self._indexes: dict[str, CodeSystemIndex] = {}
        self._compiled: dict[str, CompiledValueSet] = {}
        self._memo: dict[tuple[str, str | None, str], Membership] = {}
        self._in_progress: set[str] = set()

    def has_value_set(self, url: str) -> bool:
        return canonical_url(url) in self._value_sets

    def code_system(self, url: str) -> CodeSystemIndex | None:
        """The index of a CodeSystem held here, built on first use."""
        index = self._indexes.get(url)
        if index is None:
            resource = self._code_systems.get(url)
            if resource is None:
                return None
            index = self._indexes[url] = index_code_system(resource)
        return index

    def contains(self, value_set: str, system: str | None, code: str) -> Membership:
        """Whether ``system|code`` is in the ValueSet; ``system`` None for a plain ``code``
        element, whose code may come from any system of the ValueSet."""
        url = canonical_url(value_set)
        key = (url, system, code)
        if key in self._memo:
            return self._memo[key]
        compiled = self.compiled(url)
        if compiled is None or url in self._in_progress:
            return None
        self._in_progress.add(url)
        try:
            answer = self._decide(compiled, system, code)
        finally:
            self._in_progress.discard(url)
        if len(self._memo) < MEMO_SIZE:
            self._memo[key] = answer
        return answer

    def compiled(self, url: str) -> CompiledValueSet | None:
        """The compiled form of a ValueSet held here, compiled on first use."""
        compiled = self._compiled.get(url)
        if compiled is None:
            resource = self._value_sets.get(url)
            if resource is None:
                return None
            compose = resource.get("compose") or {}
            compiled = CompiledValueSet(
                url=url,
                includes=tuple(self._select(part) for part in compose.get("include") or ()),
                excludes=tuple(self._select(part) for part in compose.get("exclude") or ()),
            )
            self._compiled[url] = compiled
        return compiled

    def _decide(self, compiled: CompiledValueSet, system: str | None, code: str) -> Membership:
        included: Membership = False
        for selection in compiled.includes:
            included = or3(included, self._selects(selection, system, code))
            if included is True:
                break
        if included is False:
            return False
        excluded: Membership = False
        for selection in compiled.excludes:
            excluded = or3(excluded, self._selects(selection, system, code))
        return and3(included, None if excluded is None else not excluded)

    def _selects(self, selection: Selection, system: str | None, code: str) -> Membership:
        if selection.system is not None and system is not None and system != selection.system:
            return False
        if selection.pattern is not None and selection.pattern.fullmatch(code) is None:
            return False
        verdict: Membership = True
        if selection.system is not None:
            if selection.codes is None:
                verdict = None
            elif code in selection.codes:
                verdict = True
            else:
                verdict = False if selection.exhaustive else None
        for url in selection.value_sets:
            if verdict is False:
                break
            verdict = and3(verdict, self.contains(url, system, code))
        return verdict

    def _select(self, part: Mapping[str, Any]) -> Selection:
        system = part.get("system")
        nested = tuple(canonical_url(url) for url in part.get("valueSet") or ())
        if not isinstance(system, str):
            return Selection(system=None, codes=None, value_sets=nested)
        if part.get("concept"):
            listed = frozenset(c["code"] for c in part["concept"] if isinstance(c, dict)
                               and isinstance(c.get("code"), str))
            return Selection(system=system, codes=listed, value_sets=nested)
        index = self.code_system(system)
        filters = [f for f in part.get("filter") or () if isinstance(f, dict)]
        pattern = _code_pattern(filters)
        if index is None:
            return Selection(system=system, codes=None, pattern=pattern, value_sets=nested)
        codes: frozenset[str] | None = index.codes
        for item in filters:
            if _is_code_regex(item):
                continue
            chosen = _filtered(index, item)
            codes = None if chosen is None or codes is None else codes & chosen
        return Selection(system=system, codes=codes, exhaustive=index.exhaustive,
                         pattern=pattern, value_sets=nested)


def _is_code_regex(item: Mapping[str, Any]) -> bool:
    return item.get("op") == "regex" and item.get("property") == "code"


def _code_pattern(filters: Sequence[Mapping[str, Any]]) -> re.Pattern[str] | None:
    for item in filters:
        if _is_code_regex(item) and isinstance(item.get("value"), str):
            try:
                return re.compile(item["value"])
            except re.error:
                return None
    return None


def _filtered(index: CodeSystemIndex, item: Mapping[str, Any]) -> frozenset[str] | None:
    """The codes one filter selects in a held CodeSystem; None when it cannot be told."""
    op, prop, value = item.get("op"), item.get("property"), item.get("value")
    if not isinstance(value, str):
        return None
    if op == "is-a":
        return index.descendants(value) | {value} if value in index.codes else frozenset()
    if op == "descendent-of":
        return index.descendants(value)
    if op == "is-not-a":
        return index.codes - index.descendants(value) - {value}
    if op in ("in", "not-in") and prop in ("concept", "code"):
        listed = frozenset(v.strip() for v in value.split(","))
        return index.codes & listed if op == "in" else index.codes - listed
    if op == "=" and isinstance(prop, str) and prop in index.properties:
        by_code = index.properties[prop]
        return frozenset(code for code, values in by_code.items() if value in values)
    return None


@cache
def core_terminology() -> Terminology:
    """The process-wide Terminology over the core R4 definitions only."""
    return Terminology()
