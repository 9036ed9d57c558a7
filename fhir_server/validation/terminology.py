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

Expansion (``Terminology.expand``, for ``ValueSet/$expand``) lists the codes a ValueSet selects
with their display and designations (https://hl7.org/fhir/R4/valueset.html#expansion): listed
concepts are taken as listed, even from a system not held here; a filter or a whole system needs
that CodeSystem held with complete content, else ``CannotExpand`` says why (SNOMED CT, LOINC…).
A CodeSystem's index keeps each concept's display, designations and properties
(``CodeSystemIndex.concepts``, for ``CodeSystem/$lookup``); ``describe`` finds what is known of
one code. ``overlaid`` is this Terminology with more resources taking the place of held ones
(stored CodeSystems and ValueSets).
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any, Final

from fhir_server.definitions import code_systems, value_sets

Membership = bool | None
"""True: a member; False: not a member; None: cannot be told here."""

PARENT_PROPERTY: Final = "http://hl7.org/fhir/concept-properties#parent"
CHILD_PROPERTY: Final = "http://hl7.org/fhir/concept-properties#child"
MEMO_SIZE: Final = 20_000
"""The most (value set, system, code) answers remembered."""
EXPANSION_LIMIT: Final = 10_000
"""The most codes ``expand`` lists by default before refusing with ``ExpansionTooLarge``."""
MAX_NESTING: Final = 10
"""How deep ValueSets may include each other in an expansion."""

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
    return reference.partition("|")[0] if "|" in reference else reference


@dataclass(frozen=True, slots=True)
class Designation:
    """Another representation of a concept: a translation, a synonym (``CodeSystem.concept.
    designation``)."""

    value: str
    language: str | None = None
    use: Mapping[str, Any] | None = None
    """A Coding saying what kind of designation it is."""

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.language:
            out["language"] = self.language
        if self.use:
            out["use"] = dict(self.use)
        out["value"] = self.value
        return out


@dataclass(frozen=True, slots=True)
class ConceptDetails:
    """What a CodeSystem says of one of its concepts."""

    code: str
    display: str | None = None
    definition: str | None = None
    designations: tuple[Designation, ...] = ()
    properties: tuple[tuple[str, str, Any], ...] = ()
    """Declared properties other than parent / child: (property code, ``value[x]`` key, value)."""


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
    concepts: Mapping[str, ConceptDetails] = field(default_factory=dict)
    """Every concept by code, in the CodeSystem's order (depth first)."""
    version: str | None = None
    name: str | None = None
    language: str | None = None
    """The language of the displays (``CodeSystem.language``)."""

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

    def parents(self, code: str) -> tuple[str, ...]:
        """The codes directly above ``code``."""
        return tuple(parent for parent, children in self.children.items() if code in children)

    def ordered(self, codes: Iterable[str]) -> list[str]:
        """``codes`` that this CodeSystem defines, in its order."""
        wanted = set(codes)
        return [code for code in self.concepts if code in wanted]


def index_code_system(resource: Mapping[str, Any]) -> CodeSystemIndex:
    """Index a CodeSystem resource: nested concepts and parent/child properties make the tree."""
    parent_codes, child_codes = _link_properties(resource)
    declared = {p["code"] for p in resource.get("property") or () if isinstance(p, dict)
                and isinstance(p.get("code"), str)} - parent_codes - child_codes
    concepts: dict[str, ConceptDetails] = {}
    links: list[tuple[str, str]] = []
    values: dict[str, dict[str, list[str]]] = {name: {} for name in declared}
    for concept, parent in _depth_first(resource.get("concept")):
        code = concept["code"]
        if parent is not None:
            links.append((parent, code))
        for prop in concept.get("property") or ():
            _read_property(code, prop, parent_codes, child_codes, links, values)
        concepts.setdefault(code, _details(concept, declared))
    children: dict[str, list[str]] = {}
    for parent_code, child in links:
        children.setdefault(parent_code, []).append(child)
    return CodeSystemIndex(
        url=str(resource.get("url", "")),
        codes=frozenset(concepts),
        exhaustive=resource.get("content", "complete") in _ENUMERABLE_CONTENT,
        children={k: tuple(v) for k, v in children.items()},
        properties={name: {c: tuple(v) for c, v in by_code.items()}
                    for name, by_code in values.items()},
        concepts=MappingProxyType(concepts),
        version=_text(resource.get("version")),
        name=_text(resource.get("name")) or _text(resource.get("title")),
        language=_text(resource.get("language")),
    )


def _depth_first(concepts: Any) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Each concept having a code, with its parent's code, in document order; no recursion, so
    deep nesting cannot exhaust the stack."""
    pending: list[Iterator[Any]] = [iter(concepts if isinstance(concepts, list) else ())]
    parents: list[str | None] = [None]
    while pending:
        concept = next(pending[-1], None)
        if concept is None:
            pending.pop()
            parents.pop()
            continue
        if not isinstance(concept, dict) or not isinstance(concept.get("code"), str):
            continue
        yield concept, parents[-1]
        nested = concept.get("concept")
        if isinstance(nested, list) and nested:
            pending.append(iter(nested))
            parents.append(concept["code"])


def _details(concept: Mapping[str, Any], declared: set[str]) -> ConceptDetails:
    properties = tuple(
        (prop["code"], key, value) for prop in concept.get("property") or ()
        if isinstance(prop, dict) and prop.get("code") in declared
        for key, value in prop.items() if key.startswith("value"))
    return ConceptDetails(code=concept["code"], display=_text(concept.get("display")),
                          definition=_text(concept.get("definition")),
                          designations=designations_of(concept), properties=properties)


def designations_of(concept: Mapping[str, Any]) -> tuple[Designation, ...]:
    """The well-formed ``designation`` entries of a concept (a CodeSystem's or a ValueSet's)."""
    found: list[Designation] = []
    for item in concept.get("designation") or ():
        if isinstance(item, dict) and isinstance(item.get("value"), str):
            use = item.get("use")
            found.append(Designation(value=item["value"], language=_text(item.get("language")),
                                     use=use if isinstance(use, dict) else None))
    return tuple(found)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


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
        self._add(resources)
        self._indexes: dict[str, CodeSystemIndex] = {}
        self._compiled: dict[str, CompiledValueSet] = {}
        self._memo: dict[tuple[str, str | None, str], Membership] = {}
        self._in_progress: set[str] = set()

    def _add(self, resources: Iterable[Mapping[str, Any]]) -> set[str]:
        """Hold these ValueSets and CodeSystems (in place of any with their url); returns the
        urls of the CodeSystems added."""
        systems: set[str] = set()
        for resource in resources:
            url = resource.get("url")
            if not isinstance(url, str):
                continue
            if resource.get("resourceType") == "ValueSet":
                self._value_sets[canonical_url(url)] = resource
            elif resource.get("resourceType") == "CodeSystem":
                self._code_systems[canonical_url(url)] = resource
                systems.add(canonical_url(url))
        return systems

    def overlaid(self, resources: Iterable[Mapping[str, Any]]) -> Terminology:
        """A Terminology holding what this one holds, with ``resources`` taking the place of
        those with the same url. The indexes of the CodeSystems left in place are shared."""
        layered = Terminology(core=False)
        layered._value_sets = dict(self._value_sets)
        layered._code_systems = dict(self._code_systems)
        replaced = layered._add(resources)
        layered._indexes = {url: index for url, index in self._indexes.items()
                            if url not in replaced}
        return layered

    def has_value_set(self, url: str) -> bool:
        return canonical_url(url) in self._value_sets

    def value_set(self, url: str) -> Mapping[str, Any] | None:
        """The ValueSet resource held with this canonical url (``|version`` ignored)."""
        return self._value_sets.get(canonical_url(url))

    def code_system_resource(self, url: str) -> Mapping[str, Any] | None:
        """The CodeSystem resource held with this canonical url (``|version`` ignored)."""
        return self._code_systems.get(canonical_url(url))

    def expand(self, value_set: Mapping[str, Any], *,
               limit: int = EXPANSION_LIMIT) -> tuple[ExpandedCode, ...]:
        """The codes a ValueSet resource selects, in order, each once: its ``compose`` over
        what is held here, or its own ``expansion`` when it has no ``compose``. Raises
        ``CannotExpand`` (with the reason) or ``ExpansionTooLarge`` (past ``limit`` codes)."""
        url = value_set.get("url")
        trail = (canonical_url(url),) if isinstance(url, str) else ()
        return tuple(_Expansion(self, limit).of_value_set(value_set, trail).values())

    def describe(self, system: str | None, code: str,
                 value_set: Mapping[str, Any] | None = None) -> ExpandedCode | None:
        """What is known here of ``system|code``: its held CodeSystem's concept, else the
        concept as a ValueSet lists it (``value_set`` and the ValueSets it includes). Without
        ``system``, the first system of ``value_set`` that knows the code."""
        systems = [system] if system is not None else _systems_of(self, value_set)
        for candidate in systems:
            index = self.code_system(candidate)
            details = index.concepts.get(code) if index is not None else None
            if index is not None and details is not None:
                return _from_code_system(index, details)
        if value_set is None:
            return None
        return _listed(self, value_set, system, code)

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


# --- expansion ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ExpandedCode:
    """One code of an expansion, with what is known of it."""

    system: str
    code: str
    display: str | None = None
    version: str | None = None
    language: str | None = None
    """The language of ``display`` (its CodeSystem's or ValueSet's ``language``), if stated."""
    designations: tuple[Designation, ...] = ()

    def display_in(self, language: str | None) -> str | None:
        """The display in ``language`` (a designation in it when the display is in another
        one), else the display."""
        if language is None or (self.language is not None
                                and same_language(self.language, language)):
            return self.display
        for designation in self.designations:
            if designation.language and same_language(designation.language, language):
                return designation.value
        return self.display

    def matches_text(self, folded: str) -> bool:
        """Whether the folded text (``fold``) is in the code, display or a designation."""
        texts = (self.code, self.display or "", *(d.value for d in self.designations))
        return any(folded in fold(text) for text in texts)


class CannotExpand(Exception):
    """The ValueSet cannot be expanded with what is held here; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExpansionTooLarge(Exception):
    """The expansion has more than ``limit`` codes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} codes")
        self.limit = limit


def fold(text: str) -> str:
    """Text for case- and accent-insensitive comparison: ``Médecin`` -> ``medecin``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def same_language(tag: str, wanted: str) -> bool:
    """Whether a language tag answers a wanted one: equal, or one a region of the other
    (``en`` and ``en-GB``), case-insensitively."""
    one, other = tag.lower(), wanted.lower()
    return one == other or one.startswith(other + "-") or other.startswith(one + "-")


_Key = tuple[str, str]


class _Expansion:
    """One expansion: ValueSets (nested ones included) turned into ordered codes."""

    def __init__(self, terminology: Terminology, limit: int) -> None:
        self._terminology = terminology
        self._limit = limit

    def of_value_set(self, value_set: Mapping[str, Any],
                     trail: tuple[str, ...]) -> dict[_Key, ExpandedCode]:
        compose = value_set.get("compose")
        if not isinstance(compose, dict):
            return self._of_expansion(value_set, trail)
        language = _text(value_set.get("language"))
        codes: dict[_Key, ExpandedCode] = {}
        for part in _parts(compose, "include"):
            for key, found in self._component(part, language, trail).items():
                codes.setdefault(key, found)
            if len(codes) > self._limit:
                raise ExpansionTooLarge(self._limit)
        for part in _parts(compose, "exclude"):
            for key in self._component(part, language, trail):
                codes.pop(key, None)
        return codes

    def _of_expansion(self, value_set: Mapping[str, Any],
                      trail: tuple[str, ...]) -> dict[_Key, ExpandedCode]:
        expansion = value_set.get("expansion")
        if not isinstance(expansion, dict):
            raise CannotExpand(f"the ValueSet {_name(trail)} has neither compose nor expansion")
        codes: dict[_Key, ExpandedCode] = {}
        pending = deque(expansion.get("contains") or ())
        while pending:
            item = pending.popleft()
            if not isinstance(item, dict):
                continue
            pending.extendleft(reversed(item.get("contains") or ()))
            system, code = item.get("system"), item.get("code")
            if isinstance(system, str) and isinstance(code, str):
                codes.setdefault((system, code), ExpandedCode(
                    system=system, code=code, display=_text(item.get("display")),
                    version=_text(item.get("version")), language=_text(value_set.get("language")),
                    designations=designations_of(item)))
        if len(codes) > self._limit:
            raise ExpansionTooLarge(self._limit)
        return codes

    def _component(self, part: Mapping[str, Any], language: str | None,
                   trail: tuple[str, ...]) -> dict[_Key, ExpandedCode]:
        system = part.get("system")
        codes = (self._system_codes(system, part, language) if isinstance(system, str)
                 else None)
        for reference in part.get("valueSet") or ():
            nested = self._nested(canonical_url(str(reference)), trail)
            codes = nested if codes is None else {k: v for k, v in codes.items() if k in nested}
        if codes is None:
            raise CannotExpand(f"the ValueSet {_name(trail)} has a compose entry with neither "
                               "system nor valueSet")
        return codes

    def _nested(self, url: str, trail: tuple[str, ...]) -> dict[_Key, ExpandedCode]:
        if url in trail:
            raise CannotExpand(f"the ValueSets {' -> '.join((*trail, url))} include each other "
                               "in a cycle")
        if len(trail) >= MAX_NESTING:
            raise CannotExpand(f"the ValueSets include each other more than {MAX_NESTING} "
                               f"levels deep (at {url})")
        resource = self._terminology.value_set(url)
        if resource is None:
            raise CannotExpand(f"the ValueSet {_name(trail)} includes the ValueSet {url}, "
                               "which this server does not hold")
        return self.of_value_set(resource, (*trail, url))

    def _system_codes(self, system: str, part: Mapping[str, Any],
                      language: str | None) -> dict[_Key, ExpandedCode]:
        index = self._terminology.code_system(system)
        listed = [c for c in part.get("concept") or ()
                  if isinstance(c, dict) and isinstance(c.get("code"), str)]
        if listed:
            version = (index.version if index else None) or _text(part.get("version"))
            return {(system, c["code"]): _listed_code(system, c, index, version, language)
                    for c in listed}
        if index is None:
            raise CannotExpand(f"it includes codes of {system}, a code system this server does "
                               "not hold (an external terminology server would be needed)")
        if not index.exhaustive:
            raise CannotExpand(f"it includes codes of {system}, whose CodeSystem here does not "
                               "list every code (content is not 'complete')")
        chosen = _filter_codes(index, [f for f in part.get("filter") or () if isinstance(f, dict)])
        if len(chosen) > self._limit:
            raise ExpansionTooLarge(self._limit)
        return {(system, code): _from_code_system(index, index.concepts[code])
                for code in index.ordered(chosen)}


def _parts(compose: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    return [part for part in compose.get(name) or () if isinstance(part, dict)]


def _name(trail: tuple[str, ...]) -> str:
    return trail[-1] if trail else "given"


def _filter_codes(index: CodeSystemIndex, filters: Sequence[Mapping[str, Any]]) -> set[str]:
    """The codes of ``index`` every filter selects; ``CannotExpand`` for a filter it cannot
    apply."""
    chosen = set(index.codes)
    for item in filters:
        if _is_code_regex(item):
            pattern = _code_pattern([item])
            if pattern is None:
                raise CannotExpand(f"its regex filter {item.get('value')!r} is not a valid "
                                   "regular expression")
            chosen = {code for code in chosen if pattern.fullmatch(code)}
            continue
        selected = _filtered(index, item)
        if selected is None:
            raise CannotExpand(f"its filter '{item.get('property')} {item.get('op')} "
                               f"{item.get('value')}' on {index.url} is not supported here")
        chosen &= selected
    return chosen


def _from_code_system(index: CodeSystemIndex, details: ConceptDetails) -> ExpandedCode:
    return ExpandedCode(system=index.url, code=details.code, display=details.display,
                        version=index.version, language=index.language,
                        designations=details.designations)


def _listed_code(system: str, concept: Mapping[str, Any], index: CodeSystemIndex | None,
                 version: str | None, language: str | None) -> ExpandedCode:
    """A concept as a ValueSet lists it, completed from its held CodeSystem."""
    known = index.concepts.get(concept["code"]) if index is not None else None
    display = _text(concept.get("display"))
    designations = designations_of(concept)
    if display is None and known is not None:
        display, language = known.display, index.language if index else None
    if not designations and known is not None:
        designations = known.designations
    return ExpandedCode(system=system, code=concept["code"], display=display, version=version,
                        language=language, designations=designations)


def _listed(terminology: Terminology, value_set: Mapping[str, Any], system: str | None,
            code: str, depth: int = 0) -> ExpandedCode | None:
    """``code`` as ``value_set`` (or a ValueSet it includes) lists it, if it does."""
    compose = value_set.get("compose")
    if not isinstance(compose, dict) or depth > MAX_NESTING:
        return None
    language = _text(value_set.get("language"))
    for part in _parts(compose, "include"):
        found_system = part.get("system")
        if isinstance(found_system, str) and system in (None, found_system):
            for concept in part.get("concept") or ():
                if isinstance(concept, dict) and concept.get("code") == code:
                    index = terminology.code_system(found_system)
                    return _listed_code(found_system, concept, index,
                                        _text(part.get("version")), language)
        for reference in part.get("valueSet") or ():
            nested = terminology.value_set(str(reference))
            found = (_listed(terminology, nested, system, code, depth + 1)
                     if nested is not None else None)
            if found is not None:
                return found
    return None


def _systems_of(terminology: Terminology, value_set: Mapping[str, Any] | None,
                depth: int = 0) -> list[str]:
    """The systems a ValueSet (and those it includes) draws its codes from, in order."""
    compose = value_set.get("compose") if value_set is not None else None
    if not isinstance(compose, dict) or depth > MAX_NESTING:
        return []
    found: list[str] = []
    for part in _parts(compose, "include"):
        if isinstance(part.get("system"), str):
            found.append(part["system"])
        for reference in part.get("valueSet") or ():
            found.extend(_systems_of(terminology, terminology.value_set(str(reference)),
                                     depth + 1))
    return list(dict.fromkeys(found))


@cache
def core_terminology() -> Terminology:
    """The process-wide Terminology over the core R4 definitions only."""
    return Terminology()
