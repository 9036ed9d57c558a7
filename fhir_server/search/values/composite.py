"""Composite parameters → ``CompositeEntry``: a token and a second value from ONE context element.

Spec: https://hl7.org/fhir/R4/search.html#composite. A composite's expression selects context
elements (the Observation itself, each ``Observation.component``, each ``useContext``…) and its
components' expressions are relative to one of them. Each element gives one entry per pair of
its first component's tokens and its second component's values (at most ``MAX_PAIRS`` per
element), so a search matches both parts on the same element: separate ``component-code`` and
``component-value-quantity`` entries would pair the systolic code of one component with the
diastolic value of another.

Supported: two components, a token then a token, quantity, date, number, string, reference or
uri, the context being a path of elements. That covers every official R4 composite except the
four of MolecularSequence (three components, one read from ``%resource``). DocumentReference
``relationship`` lists its components' definitions in swapped order (``relatesto``, a reference,
with the expression ``code``; corrected in R5): its types follow the expressions, a token
(``relatesTo.code``) then a reference (``relatesTo.target``).

Components go through the ordinary expression compiler and value converters: the element is
wrapped in a minimal resource holding only it, on the context path, and the component is read
from there (``Observation.component.value.as(Quantity)``). Blind indexes, UCUM canonical forms
(entries under ``{code}:canonical``), date and number ranges are thus those of plain parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from fhir_server.search.fhirpath import ROOT_ALIASES, Run, compile_expression, union_branches
from fhir_server.search.registry import ParamType, SearchParam, SearchRegistry
from fhir_server.search.ucum import canonical_param
from fhir_server.search.values import Converter, ConverterFactory, IdentifierProtection
from fhir_server.storage.index import (
    CompositeEntry,
    DateEntry,
    IndexEntry,
    NumberEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
)

MAX_PAIRS: Final = 100
"""Entries one context element may give; pairs beyond (more than ten codings on each side)
are not indexed."""

SECOND_TYPES: Final = frozenset({ParamType.TOKEN, ParamType.QUANTITY, ParamType.DATE,
                                 ParamType.NUMBER, ParamType.STRING, ParamType.REFERENCE,
                                 ParamType.URI})
"""The types a composite's second component may have (its first is always a token)."""

SWAPPED_DEFINITIONS: Final = frozenset({
    "http://hl7.org/fhir/SearchParameter/DocumentReference-relationship"})
"""Official composites whose two component definitions are listed in the wrong order."""

_PATH: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_STARTS_WITH_NAME: Final = re.compile(r"[A-Za-z_]")

Strands: TypeAlias = tuple[tuple[Run, Converter], ...]
"""The typed strands of a component read from a wrapped element, each with its converter."""
_Key: TypeAlias = tuple[str, ParamType]
"""A component: its expression and the type its values are converted as."""

_SCRATCH: Final = ""
"""The code components are converted under, before each composite names its entries."""
_KEPT: Final = (_SCRATCH, canonical_param(_SCRATCH))


class UnsupportedComposite(Exception):
    """A composite parameter this server cannot index or search, and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CompositeShape:
    """A supported composite: its components' expressions (relative to the context element),
    the type of its second component and that component's definition (a reference's
    targets)."""

    first_expression: str
    second_expression: str
    second_type: ParamType
    second: SearchParam


def has_supported_layout(param: SearchParam) -> bool:
    """Whether a composite has the layout this server handles: a context that is a path of
    elements, and two components read from the element itself (not from ``%resource``)."""
    if param.expression is None or len(param.components) != 2:
        return False
    if not all(_PATH.fullmatch(branch) for branch in union_branches(param.expression)):
        return False
    return all(_STARTS_WITH_NAME.match(branch) and "%" not in branch
               for component in param.components
               for branch in union_branches(component.expression))


def composite_shape(param: SearchParam, registry: SearchRegistry) -> CompositeShape:
    """The shape of a composite, its components' definitions read from ``registry``.

    Raises ``UnsupportedComposite`` for a composite outside what ``has_supported_layout`` and
    ``SECOND_TYPES`` describe, or whose component definitions are unknown.
    """
    if not has_supported_layout(param):
        raise UnsupportedComposite(
            f"the composite parameter '{param.code}' does not have two components read from "
            "one element")
    definitions = [registry.by_url(component.definition) for component in param.components]
    first, second = definitions[::-1] if param.url in SWAPPED_DEFINITIONS else definitions
    if first is None or second is None:
        raise UnsupportedComposite(
            f"a component of the composite parameter '{param.code}' is not a known parameter")
    if first.type is not ParamType.TOKEN or second.type not in SECOND_TYPES:
        raise UnsupportedComposite(
            f"the composite parameter '{param.code}' combines a {first.type} and a "
            f"{second.type}; only a token followed by a "
            f"{', '.join(sorted(SECOND_TYPES))} is supported")
    return CompositeShape(param.components[0].expression, param.components[1].expression,
                          second.type, second)


@dataclass(frozen=True, slots=True)
class ContextStep:
    """Every composite of a type read from one context path: how to find the elements, and
    how to turn one element into all those composites' entries."""

    context: str
    find: Run
    convert: Converter
    """Called with the context path as code (each entry names its own composite)."""


def composite_steps(params: Iterable[SearchParam], resource_type: str, *,
                    registry: SearchRegistry, protection: IdentifierProtection,
                    converters: Mapping[ParamType, ConverterFactory]) -> list[ContextStep]:
    """The extraction steps of a type's composites (unsupported ones left out), one per
    context path: several composites share one (``code-value-quantity`` and
    ``code-value-concept`` read the Observation itself), so each element is wrapped once and
    each component expression read once for all of them."""
    components: dict[str, dict[_Key, Strands]] = {}
    pairings: dict[str, list[tuple[str, _Key, _Key]]] = {}
    for param in params:
        try:
            shape = composite_shape(param, registry)
        except UnsupportedComposite:
            continue
        first_key = (shape.first_expression, ParamType.TOKEN)
        second_key = (shape.second_expression, shape.second_type)
        for context in union_branches(param.expression or ""):
            known = components.setdefault(context, {})
            for expression, kind in (first_key, second_key):
                if (expression, kind) not in known:
                    known[expression, kind] = _strands(context, expression, resource_type,
                                                       converters[kind], protection)
            if known[first_key] and known[second_key]:
                pairings.setdefault(context, []).append((param.code, first_key, second_key))
    return [ContextStep(context, compile_expression(context, resource_type).evaluate,
                        _element_converter(_wrapper(context, resource_type), components[context],
                                           tuple(pairs)))
            for context, pairs in pairings.items()]


def _strands(context: str, expression: str, resource_type: str, factory: ConverterFactory,
             protection: IdentifierProtection) -> Strands:
    """A component's strands, read from the resource root along the context path."""
    found: list[tuple[Run, Converter]] = []
    for branch in union_branches(expression):
        compiled = compile_expression(f"{context}.{branch}", resource_type)
        found.extend((strand.run, convert) for strand in compiled.branches
                     if (convert := factory(strand.value_type, protection)) is not None)
    return tuple(found)


def _wrapper(context: str, resource_type: str) -> Callable[[Any], Any]:
    """A resource holding only the given element, on the context path (the resource itself
    when the context is the resource)."""
    segments = context.split(".")
    keys = segments[1:] if segments[0] == resource_type or segments[0] in ROOT_ALIASES \
        else segments
    if not keys:
        return lambda element: element

    def wrap(element: Any) -> Any:
        for key in reversed(keys[1:]):
            element = {key: element}
        return {"resourceType": resource_type, keys[0]: element}
    return wrap


def _element_converter(wrap: Callable[[Any], Any], components: Mapping[_Key, Strands],
                       pairings: tuple[tuple[str, _Key, _Key], ...]) -> Converter:
    def add_element(context: str, element: Any, out: list[IndexEntry]) -> None:
        wrapped = wrap(element)
        read: dict[_Key, list[IndexEntry]] = {}
        for code, first_key, second_key in pairings:
            values = read.get(second_key)
            if values is None:
                values = read[second_key] = _entries(components[second_key], wrapped)
            if not values:  # the usual case (an Observation has one kind of value)
                continue
            tokens = read.get(first_key)
            if tokens is None:
                tokens = read[first_key] = _entries(components[first_key], wrapped)
            _add_pairs(code, tokens, values, out)
    return add_element


def _entries(strands: Strands, wrapped: Any) -> list[IndexEntry]:
    """A component's entries for one element, under the scratch code (its canonical form
    included, its ``:identifier`` and ``:of-type`` companions left out)."""
    found: list[IndexEntry] = []
    for run, convert in strands:
        for value in run(wrapped):
            convert(_SCRATCH, value, found)
    return [entry for entry in found if entry.param in _KEPT]


def _add_pairs(code: str, tokens: list[IndexEntry], values: list[IndexEntry],
               out: list[IndexEntry]) -> None:
    """The entries of one composite for one element, at most ``MAX_PAIRS``."""
    canonical = canonical_param(code)
    pairs = 0
    for token in tokens:
        if type(token) is not TokenEntry:
            continue
        for value in values:
            entry = composite_entry(code if value.param == _SCRATCH else canonical, token,
                                    value)
            if entry is not None:
                out.append(entry)
                pairs += 1
                if pairs == MAX_PAIRS:
                    return


def composite_entry(param: str, first: TokenEntry, second: IndexEntry) -> CompositeEntry | None:
    """The entry of ``param`` pairing a first component's token with a second component's
    entry; None when the first has no code or the second is a token without one (a
    CodeableConcept's text)."""
    if not first.code:
        return None
    system, code = first.system, first.code
    match second:
        case TokenEntry():
            if second.code is None:
                return None
            return CompositeEntry(param, system, code, value_system=second.system,
                                  value_code=second.code)
        case QuantityEntry():
            return CompositeEntry(param, system, code, value_system=second.system,
                                  value_code=second.code, low=second.low, high=second.high)
        case DateEntry() | NumberEntry():
            return CompositeEntry(param, system, code, low=second.low, high=second.high)
        case StringEntry():
            return CompositeEntry(param, system, code, normalized=second.normalized,
                                  exact=second.exact)
        case ReferenceEntry():
            return CompositeEntry(param, system, code, target_type=second.target_type,
                                  target_id=second.target_id, url=second.url)
        case UriEntry():
            return CompositeEntry(param, system, code, url=second.value)
        case CompositeEntry():
            return None
