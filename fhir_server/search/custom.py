"""Custom SearchParameters (``profiles/`` and the REST API): read, checked for use, fingerprinted.

A SearchParameter is usable by this server when:
- its ``type`` is one the index holds (number, date, string, token, reference, quantity, uri);
- its ``base`` names concrete resource types (not ``Resource`` or ``DomainResource``), and its
  ``code`` is a plain name (letters, digits, ``-``, ``_``; not starting with ``_``) that no other
  parameter of those types has: index entries are keyed by code within a resource type;
- for each base, some union branch of its ``expression`` applies to that type and compiles with
  our FHIRPath extraction (the fast typed subset, else a syntax-checked ``fhirpathpy``
  expression that runs on an empty resource), yielding values the parameter type can index.

The fingerprint covers what decides the index entries (code, type, bases, expression): when it
changes, the existing entries no longer match the definition and the index must be rebuilt.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from fhir_server.definitions import resource_types
from fhir_server.search.extract import CONVERTERS
from fhir_server.search.fhirpath import compile_expression, compile_with_fhirpathpy
from fhir_server.search.registry import ParamType, SearchRegistry, expression_for
from fhir_server.search.values import IdentifierProtection

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ABSTRACT_BASES = frozenset({"Resource", "DomainResource"})
_PROBE = IdentifierProtection(blind_index=lambda system, value: value,
                              is_sensitive=lambda system: False)
"""Only asks the value modules whether a FHIR type converts; never indexes anything."""


class InvalidSearchParameter(Exception):
    """This server cannot use the SearchParameter; ``element`` is the FHIRPath of the culprit."""

    def __init__(self, reason: str, element: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.element = element


@dataclass(frozen=True, slots=True)
class CustomParameter:
    """A usable custom SearchParameter: what the registry and the index need of it."""

    url: str
    code: str
    type: ParamType
    base: tuple[str, ...]
    expression: str
    targets: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        """A digest of what decides the index entries: code, type, bases and expression."""
        decisive = [self.code, self.type.value, sorted(self.base), self.expression]
        return hashlib.sha256(orjson.dumps(decisive)).hexdigest()[:32]

    def definition(self) -> dict[str, Any]:
        """The SearchParameter fields ``SearchRegistry`` reads."""
        found: dict[str, Any] = {"url": self.url, "code": self.code, "type": self.type.value,
                                 "base": list(self.base), "expression": self.expression}
        if self.targets:
            found["target"] = list(self.targets)
        return found


def custom_parameter(resource: Mapping[str, Any]) -> CustomParameter:
    """The parameter a SearchParameter resource defines, its fields checked one by one.

    Raises ``InvalidSearchParameter``; whether its expression can be extracted is
    ``check_extractable``, whether its code is free ``check_code_is_free``.
    """
    url = _text(resource, "url")
    code = _text(resource, "code")
    if not _CODE.fullmatch(code):
        raise InvalidSearchParameter(
            f"code '{code[:64]}' must be letters, digits, '-' or '_' (not first), at most 64",
            "SearchParameter.code")
    return CustomParameter(url=url, code=code, type=_type(resource), base=_bases(resource),
                           expression=_text(resource, "expression"),
                           targets=tuple(str(t) for t in resource.get("target", ())
                                         if isinstance(t, str)))


def check_extractable(param: CustomParameter) -> None:
    """Refuse an expression our extraction cannot compile or that yields nothing indexable."""
    factory = CONVERTERS[param.type]
    for base in param.base:
        expression = expression_for(param.expression, base, frozenset(resource_types()))
        if expression is None:
            raise InvalidSearchParameter(
                f"no part of the expression applies to the base {base}",
                "SearchParameter.expression")
        compiled = compile_expression(expression, base)
        if not compiled.fast:
            _check_with_fhirpathpy(expression, base)
        if not any(factory(branch.value_type, _PROBE) is not None
                   for branch in compiled.branches):
            types = ", ".join(sorted({str(b.value_type) for b in compiled.branches})) or "none"
            raise InvalidSearchParameter(
                f"on {base} the expression yields values ({types}) that a {param.type} "
                "parameter cannot index", "SearchParameter.expression")


def check_code_is_free(param: CustomParameter, registry: SearchRegistry) -> None:
    """Refuse a code that another parameter of one of the bases already has in ``registry``."""
    for base in param.base:
        other = registry.param(base, param.code)
        if other is not None and other.url != param.url:
            raise InvalidSearchParameter(
                f"the code '{param.code}' is already the search parameter {other.url} of {base}",
                "SearchParameter.code")


def _text(resource: Mapping[str, Any], field: str) -> str:
    value = resource.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidSearchParameter(f"a usable SearchParameter needs a {field}",
                                     f"SearchParameter.{field}")
    return value.strip()


def _type(resource: Mapping[str, Any]) -> ParamType:
    raw = str(resource.get("type"))
    try:
        kind: ParamType | None = ParamType(raw)
    except ValueError:
        kind = None
    if kind is None or kind not in CONVERTERS:
        supported = ", ".join(sorted(t.value for t in CONVERTERS))
        raise InvalidSearchParameter(
            f"the type '{raw[:40]}' is not supported for custom search parameters "
            f"(supported: {supported})", "SearchParameter.type")
    return kind


def _bases(resource: Mapping[str, Any]) -> tuple[str, ...]:
    raw = resource.get("base")
    bases = tuple(dict.fromkeys(str(b) for b in raw)) if isinstance(raw, list) else ()
    if not bases:
        raise InvalidSearchParameter("a usable SearchParameter needs a base",
                                     "SearchParameter.base")
    known = frozenset(resource_types())
    for base in bases:
        if base in _ABSTRACT_BASES:
            raise InvalidSearchParameter(
                f"the base {base} is not supported for custom search parameters: "
                "name the resource types", "SearchParameter.base")
        if base not in known:
            raise InvalidSearchParameter(f"the base '{base[:60]}' is not an R4 resource type",
                                         "SearchParameter.base")
    return bases


class _RaiseOnError(ErrorListener):  # type: ignore[misc]
    def syntaxError(self, recognizer: Any, offending: Any, line: int, column: int,
                    msg: str, e: Any) -> None:
        raise InvalidSearchParameter(f"the expression is not valid FHIRPath at column "
                                     f"{column + 1}: {msg[:120]}", "SearchParameter.expression")


def _check_with_fhirpathpy(expression: str, base: str) -> None:
    """Outside the fast subset: the whole expression must parse, then run on an empty resource.

    fhirpathpy's own parser recovers from syntax errors (it would run a prefix of the text), so
    the FHIRPath grammar is applied here with errors raised instead.
    """
    listener = _RaiseOnError()
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    parser.entireExpression()  # type: ignore[no-untyped-call]
    try:
        compile_with_fhirpathpy(expression, base)({"resourceType": base}, {})
    except Exception as exc:
        raise InvalidSearchParameter(
            f"the expression cannot run on a {base}: {type(exc).__name__} {str(exc)[:120]}",
            "SearchParameter.expression") from None
