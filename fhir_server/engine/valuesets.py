"""Expands the ValueSets named by ``:in`` / ``:not-in`` token searches, from this server's store.

Spec: https://hl7.org/fhir/R4/search.html#modifiers. A reference is a canonical URL (``url`` or
``url|version``) of a ValueSet stored here, or ``ValueSet/id`` (also under the server's base).
Without a terminology server, a ValueSet's codes are its ``expansion.contains`` (nested entries
included) when it has an expansion, else its ``compose``: the ``concept`` lists of the includes
minus those of the excludes. A component importing ``valueSet``s keeps the codes common to all of
them (and to its concepts or system, when it names some); imports nest at most
``MAX_IMPORT_DEPTH`` levels. A component selecting by ``filter`` or taking a whole code system
needs a terminology server: the parameter is then reported unsupported, with that reason.

Refusals: a ValueSet not stored here (400, naming it), and one with more than ``MAX_CODES``
codes (400, too costly: every code becomes one OR-ed value of the query).

The codes that token ``:below`` / ``:above`` values stand for are expanded in the same pass
(``engine/code_hierarchy.py``), so that callers hand the parser one set of expansions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from fhir_server.engine.code_hierarchy import expand_hierarchies
from fhir_server.engine.context import EngineContext
from fhir_server.engine.search_request import ValueSetCodes
from fhir_server.engine.writing import load
from fhir_server.errors import ErrorCode, FhirError, Issue, IssueType
from fhir_server.search.parser import MAX_OR_VALUES, split_escaped, unescape
from fhir_server.storage.query import SearchQuery, TokenClause, TokenValue, UriClause
from fhir_server.types import ResourceDict

MAX_CODES: Final = 500
"""The most codes one ``:in`` / ``:not-in`` parameter may stand for (SQLite compiles each OR-ed
value as one branch of a compound SELECT, which it caps at 500)."""

MAX_IMPORT_DEPTH: Final = 5
"""How deep ``compose.include.valueSet`` imports may nest."""

_MODIFIERS: Final = (":in", ":not-in")
_LOCAL_RE: Final = re.compile(r"ValueSet/([A-Za-z0-9\-.]{1,64})")
_CANONICAL_CANDIDATES: Final = 20

Code: TypeAlias = tuple[str | None, str]
_Codes: TypeAlias = dict[Code, None]
"""An ordered set of (system, code)."""


class _CannotExpand(Exception):
    """The ValueSet needs a terminology server (or is not expandable): the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NotStored(Exception):
    def __init__(self, reference: str) -> None:
        super().__init__(reference)
        self.reference = reference


class _TooMany(Exception):
    pass


async def expand_value_sets(ctx: EngineContext, params: Sequence[tuple[str, str]], *,
                            base_url: str | None = None) -> dict[str, ValueSetCodes]:
    """The codes of every ValueSet that an ``:in`` or ``:not-in`` parameter of ``params`` names,
    keyed by the reference as written (unescaped), for ``parse_search(value_sets=...)``; and
    those of every ``:below`` / ``:above`` token value (``expand_hierarchies``).

    Raises FhirError(BAD_PARAMETER) for a ValueSet not stored here, or one parameter standing
    for more than ``MAX_CODES`` codes. A parameter with more OR-ed values than the parser
    accepts is not expanded: the parser refuses it.
    """
    expander = _Expander(ctx, base_url)
    found: dict[str, ValueSetCodes] = {}
    for name, references in value_set_parameters(params):
        if len(references) > MAX_OR_VALUES:
            continue
        for reference in references:
            if reference not in found:
                found[reference] = await expander.codes_of(name, reference)
        _check_total(name, (found[reference] for reference in references))
    found.update(await expand_hierarchies(ctx, params))
    return found


def value_set_parameters(params: Sequence[tuple[str, str]]
                         ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each ``:in`` / ``:not-in`` parameter (chained or not) with the ValueSets it names."""
    return tuple((name, tuple(unescape(part) for part in split_escaped(value, ",") if part))
                 for name, value in params if name.endswith(_MODIFIERS))


def _check_total(name: str, expansions: Iterable[ValueSetCodes]) -> None:
    codes = {code for expansion in expansions for code in expansion.codes}
    if len(codes) > MAX_CODES:
        raise _too_costly(name, f"{name[:100]}: its ValueSets hold {len(codes)} codes, more "
                                f"than the {MAX_CODES} a search matches against")


def _too_costly(name: str, diagnostics: str) -> FhirError:
    return FhirError(
        ErrorCode.BAD_PARAMETER, diagnostics, expression=(name,),
        issues=(Issue(diagnostics="Expanding the ValueSet is too costly: name a smaller one",
                      issue_type=IssueType.TOO_COSTLY, expression=(name,)),))


@dataclass(slots=True)
class _Expander:
    """Expands ValueSets for one request, reading each stored ValueSet once."""

    ctx: EngineContext
    base_url: str | None
    resolved: dict[str, ResourceDict | None] = field(default_factory=dict)
    expanded: dict[str, _Codes] = field(default_factory=dict)

    async def codes_of(self, name: str, reference: str) -> ValueSetCodes:
        """The codes of the ValueSet ``reference``, named by the parameter ``name``."""
        try:
            codes = await self._expand(await self._require(reference), trail=())
        except _CannotExpand as refusal:
            return ValueSetCodes(unsupported=f"the ValueSet '{reference[:100]}' cannot be "
                                             f"expanded here: {refusal.reason}")
        except _NotStored as missing:
            imported = ("" if missing.reference == reference
                        else f", imported by '{reference[:100]}',")
            raise FhirError(ErrorCode.BAD_PARAMETER,
                            f"{name[:100]}: the ValueSet '{missing.reference[:100]}'{imported} "
                            "is not stored on this server", expression=(name,)) from None
        except _TooMany:
            raise _too_costly(name, f"{name[:100]}: the ValueSet '{reference[:100]}' holds more "
                                    f"than {MAX_CODES} codes, the most a search matches "
                                    "against") from None
        return ValueSetCodes(tuple(codes))

    async def _require(self, reference: str) -> ResourceDict:
        if reference not in self.resolved:
            self.resolved[reference] = await self._resolve(reference)
        found = self.resolved[reference]
        if found is None:
            raise _NotStored(reference)
        return found

    async def _resolve(self, reference: str) -> ResourceDict | None:
        """The ValueSet by relative reference, else by canonical URL, else by our absolute URL.
        A reference starting with ``:`` is neither (and would be taken for a ``hierarchy_key``)."""
        if reference.startswith(":"):
            return None
        if (local := _LOCAL_RE.fullmatch(reference)) is not None:
            return await self._read(local.group(1))
        if (by_url := await self._by_canonical(reference)) is not None:
            return by_url
        base = (self.base_url or "").rstrip("/") + "/"
        if self.base_url and reference.startswith(base):
            local = _LOCAL_RE.fullmatch(reference[len(base):])
            return await self._read(local.group(1)) if local is not None else None
        return None

    async def _read(self, id: str) -> ResourceDict | None:
        stored = await self.ctx.store.read("ValueSet", id)
        return None if stored is None or stored.deleted else load(self.ctx, stored)

    async def _by_canonical(self, reference: str) -> ResourceDict | None:
        """The ValueSet with this ``url`` (and ``version`` after ``|``): the latest updated."""
        url, _, version = reference.partition("|")
        where: tuple[UriClause | TokenClause, ...] = (UriClause("url", (url,)),)
        if version:
            where += (TokenClause("version", (TokenValue(None, version),)),)
        page = await self.ctx.store.search(SearchQuery("ValueSet", where,
                                                       count=_CANONICAL_CANDIDATES))
        if not page.matches:
            return None
        return load(self.ctx, max(page.matches, key=lambda stored: stored.last_updated))

    async def _expand(self, value_set: ResourceDict, *, trail: tuple[str, ...]) -> _Codes:
        """The codes of a ValueSet; ``trail``: the ValueSets importing it, outermost first."""
        key = f"ValueSet/{value_set.get('id')}"
        if key in self.expanded:
            return self.expanded[key]
        if key in trail:
            raise _CannotExpand(f"its valueSet imports loop back to {key}")
        if len(trail) >= MAX_IMPORT_DEPTH:
            raise _CannotExpand(f"its valueSet imports nest deeper than {MAX_IMPORT_DEPTH} levels")
        expansion = value_set.get("expansion")
        if isinstance(expansion, dict):
            codes = _contained_codes(expansion.get("contains"))
        else:
            codes = await self._composed(value_set.get("compose"), trail=(*trail, key))
        self.expanded[key] = codes
        return codes

    async def _composed(self, compose: Any, *, trail: tuple[str, ...]) -> _Codes:
        if not isinstance(compose, dict) or not compose.get("include"):
            raise _CannotExpand("it has neither an expansion nor a compose.include")
        included: _Codes = {}
        for component in _components(compose, "include"):
            included.update(await self._component(component, trail=trail))
            _check_size(included)
        for component in _components(compose, "exclude"):
            for code in await self._component(component, trail=trail):
                included.pop(code, None)
        return included

    async def _component(self, component: dict[str, Any], *, trail: tuple[str, ...]) -> _Codes:
        """The codes of one include or exclude: its concepts or system, within its imports."""
        if component.get("filter"):
            raise _CannotExpand("a compose component selects codes by filter, which needs a "
                                "terminology server")
        system = component.get("system")
        imports = [url for url in component.get("valueSet") or () if isinstance(url, str)]
        concepts = component.get("concept")
        if not concepts and not imports:
            raise _CannotExpand(f"a compose component takes the whole code system '{system}', "
                                "which needs a terminology server" if system else
                                "a compose component names neither a system nor a valueSet")
        selections = [_concept_codes(system, concepts)] if concepts else []
        for url in imports:
            selections.append(await self._expand(await self._require(url), trail=trail))
        first, *others = selections
        return {code: None for code in first
                if all(code in other for other in others)
                and (concepts or not system or code[0] == system)}


def _components(compose: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item for item in compose.get(kind) or () if isinstance(item, dict)]


def _concept_codes(system: str | None, concepts: Any) -> _Codes:
    codes: _Codes = {(system, concept["code"]): None for concept in concepts
                     if isinstance(concept, dict) and isinstance(concept.get("code"), str)}
    _check_size(codes)
    return codes


def _contained_codes(contains: Any) -> _Codes:
    """The codes of ``expansion.contains``, nested entries included (walked without recursion,
    so that a deeply nested expansion cannot exhaust the stack)."""
    codes: _Codes = {}
    pending = [contains]
    while pending:
        entries = pending.pop()
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, dict):
                continue
            if isinstance(code := entry.get("code"), str):
                system = entry.get("system")
                codes[(system if isinstance(system, str) else None, code)] = None
                _check_size(codes)
            pending.append(entry.get("contains"))
    return codes


def _check_size(codes: _Codes) -> None:
    if len(codes) > MAX_CODES:
        raise _TooMany
