"""The search-parameter registry: every R4 SearchParameter, looked up by resource type and code.

Built from the official ``search-parameters`` bundle (vendored in ``fhir_server.definitions``), or
from any SearchParameter resources given to ``SearchRegistry``; ``extended`` derives one with
more (custom) parameters without rebuilding the official ones. Official expressions often cover
several types (``Patient.name | Practitioner.name``); the ``SearchParam`` returned for a type
carries only the union branches that apply to it: those starting with that type, with
``Resource``/``DomainResource``, or with no type at all (``name | alias`` on InsurancePlan).

Parameters whose base is ``Resource`` apply to every resource type; those whose base is
``DomainResource`` (``_text``) to every type derived from it (not Bundle, Binary, Parameters).
``_list``, ``_has`` and ``_type`` are described on the R4 search page but have no
SearchParameter resource: they are added here as ``special`` parameters without expression.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Any

from fhir_server.definitions import load_bundle, resource_types, structure_definitions
from fhir_server.search.fhirpath import ROOT_ALIASES, branch_root, union_branches


class ParamType(StrEnum):
    NUMBER = "number"
    DATE = "date"
    STRING = "string"
    TOKEN = "token"
    REFERENCE = "reference"
    COMPOSITE = "composite"
    QUANTITY = "quantity"
    URI = "uri"
    SPECIAL = "special"


@dataclass(frozen=True, slots=True)
class Component:
    definition: str
    """Canonical URL of the component's SearchParameter."""
    expression: str
    """FHIRPath relative to the composite's context."""


@dataclass(frozen=True, slots=True)
class SearchParam:
    code: str
    url: str
    type: ParamType
    base: tuple[str, ...]
    expression: str | None
    """Only the part of the official expression that applies to the resource type asked for."""
    targets: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()


SEARCH_PAGE_PARAMETERS: tuple[SearchParam, ...] = tuple(
    SearchParam(code, f"http://hl7.org/fhir/SearchParameter/Resource-{code[1:]}",
                ParamType.SPECIAL, ("Resource",), None)
    for code in ("_list", "_has", "_type"))
"""Resource-level parameters of the R4 search page that have no SearchParameter resource."""


_NO_PARAMS: Mapping[str, SearchParam] = MappingProxyType({})


class SearchRegistry:
    """Search parameters by (resource type, code) and by canonical URL."""

    def __init__(self, definitions: Iterable[Mapping[str, Any]]) -> None:
        self._known_types = frozenset(resource_types())
        self._by_url: dict[str, SearchParam] = {}
        self._common: dict[str, SearchParam] = {p.code: p for p in SEARCH_PAGE_PARAMETERS}
        self._domain: dict[str, SearchParam] = {}
        self._by_type: dict[str, dict[str, SearchParam]] = {}
        self._views: dict[str, Mapping[str, SearchParam]] = {}
        for definition in definitions:
            self._add(definition)

    def extended(self, definitions: Iterable[Mapping[str, Any]]) -> SearchRegistry:
        """A new registry: these parameters plus ``definitions`` (this registry is unchanged)."""
        copy = SearchRegistry(())
        copy._by_url = dict(self._by_url)
        copy._common = dict(self._common)
        copy._domain = dict(self._domain)
        copy._by_type = {resource_type: dict(params)
                         for resource_type, params in self._by_type.items()}
        for definition in definitions:
            copy._add(definition)
        return copy

    def param(self, resource_type: str, code: str) -> SearchParam | None:
        """The parameter ``code`` of a type (Resource-level ones included), or None."""
        return self.params_for(resource_type).get(code)

    def params_for(self, resource_type: str) -> Mapping[str, SearchParam]:
        """Code → parameter for a type, Resource-level parameters included; empty if unknown."""
        view = self._views.get(resource_type)
        if view is None:
            if resource_type not in self._known_types:
                return _NO_PARAMS
            view = MappingProxyType(self._collect(resource_type))
            self._views[resource_type] = view
        return view

    def by_url(self, url: str) -> SearchParam | None:
        """A parameter by its canonical URL, with its whole expression and every base."""
        return self._by_url.get(url)

    def _collect(self, resource_type: str) -> dict[str, SearchParam]:
        found = dict(self._common)
        if _is_domain_resource(resource_type):
            found.update(self._domain)
        found.update(self._by_type.get(resource_type, {}))
        return found

    def _add(self, definition: Mapping[str, Any]) -> None:
        whole = _search_param(definition, tuple(definition.get("base", ())),
                              definition.get("expression"))
        self._by_url[whole.url] = whole
        for base in whole.base:
            if base == "Resource":
                self._common[whole.code] = whole
            elif base == "DomainResource":
                self._domain[whole.code] = whole
            else:
                per_type = _search_param(definition, whole.base,
                                         expression_for(whole.expression, base,
                                                        self._known_types))
                self._by_type.setdefault(base, {})[whole.code] = per_type


@dataclass(frozen=True, slots=True)
class Registries:
    """The parameters the server extracts on every write, and those it searches with.

    A custom parameter awaiting ``$reindex`` is only in ``extracting``: new writes index it, but
    a search with it would miss the resources stored before it, until they are re-extracted.
    ``pending`` holds its (resource type, code) pairs.
    """

    extracting: SearchRegistry
    searching: SearchRegistry
    pending: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of(cls, registry: SearchRegistry) -> Registries:
        """One registry for both uses, nothing pending."""
        return cls(extracting=registry, searching=registry)


def _search_param(definition: Mapping[str, Any], base: tuple[str, ...],
                  expression: str | None) -> SearchParam:
    return SearchParam(
        code=str(definition["code"]),
        url=str(definition["url"]),
        type=ParamType(definition["type"]),
        base=base,
        expression=expression,
        targets=tuple(definition.get("target", ())),
        components=tuple(Component(str(c["definition"]), str(c["expression"]))
                         for c in definition.get("component", ())))


def expression_for(expression: str | None, resource_type: str,
                   known_types: frozenset[str]) -> str | None:
    """The union branches of an official expression that apply to one resource type."""
    if not expression:
        return None
    kept = [branch for branch in union_branches(expression)
            if (root := branch_root(branch)) == resource_type or root in ROOT_ALIASES
            or root not in known_types]
    return " | ".join(kept) if kept else None


@cache
def _is_domain_resource(resource_type: str) -> bool:
    sd = structure_definitions().get(resource_type, {})
    return str(sd.get("baseDefinition", "")).endswith("/DomainResource")


@cache
def default_registry() -> SearchRegistry:
    """The registry of the official R4 search parameters (built once)."""
    return SearchRegistry(load_bundle("search-parameters"))
