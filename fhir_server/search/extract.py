"""Index extraction: every search parameter of a resource's type, as index entries.

For each type a plan is built once from the registry: for every parameter and every typed strand
of its compiled expression, the value converter of the parameter type for that FHIR type
(``fhir_server.search.values``). Extracting a resource then only runs the plan, inside one
``ExtractionMemo``: a value several parameters index (``telecom`` and ``phone``, ``name`` and
``given``) is blind-indexed and normalised once for that resource, and the memo ends with it.

Composites give one step per context path (shared by the composites reading it): its elements,
each turned into entries pairing their components (``values/composite.py``).

Not extracted: ``_id`` and ``_lastUpdated`` (the stores keep them in columns), parameters with no
expression (``_text``, ``_content``, ``_query``, ``_list``, ``_has``, ``_type``), ``special`` ones
(``near`` on Location) and composites outside what ``values/composite.py`` supports.
Strands whose values never make entries of the parameter type (an ``Attachment`` for
``Consent.source-reference``, a ``SampledData`` for ``value-quantity``, the inline resource of
``Bundle.composition``) are dropped from the plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from fhir_server.search.fhirpath import Run, compile_expression
from fhir_server.search.registry import ParamType, SearchParam, SearchRegistry
from fhir_server.search.values import (
    Converter,
    ConverterFactory,
    ExtractionMemo,
    IdentifierProtection,
    composite,
    date,
    number,
    quantity,
    reference,
    string,
    token,
    uri,
)
from fhir_server.storage.index import IndexEntry
from fhir_server.types import ResourceDict

NOT_EXTRACTED = frozenset({"_id", "_lastUpdated"})
"""Resource-level parameters the stores answer from their own columns."""

CONVERTERS: dict[ParamType, ConverterFactory] = {
    ParamType.TOKEN: token.converter,
    ParamType.STRING: string.converter,
    ParamType.DATE: date.converter,
    ParamType.NUMBER: number.converter,
    ParamType.QUANTITY: quantity.converter,
    ParamType.REFERENCE: reference.converter,
    ParamType.URI: uri.converter,
}
"""The value module of each parameter type extracted alone (composites pair them)."""


class PlanStep(NamedTuple):
    """One typed strand of one parameter: evaluate it, then convert each value (for the
    composites of one context path, ``code`` is that path: their entries name themselves)."""

    code: str
    run: Run
    convert: Converter


class Extractor:
    """Extracts the index entries of resources, with one plan per resource type."""

    def __init__(self, *, registry: SearchRegistry, protection: IdentifierProtection) -> None:
        self._registry = registry
        self._protection = protection
        self._plans: dict[str, tuple[PlanStep, ...]] = {}

    def extract(self, resource: ResourceDict) -> tuple[IndexEntry, ...]:
        """The deduplicated entries of every parameter of the resource's type."""
        resource_type = resource.get("resourceType")
        if not isinstance(resource_type, str):
            return ()
        found: list[IndexEntry] = []
        with ExtractionMemo(self._protection):
            for code, run, convert in self.plan(resource_type):
                for value in run(resource):
                    convert(code, value, found)
        return tuple(dict.fromkeys(found))

    def plan(self, resource_type: str) -> tuple[PlanStep, ...]:
        """The extraction plan of a type (built on first use; nothing kept for unknown types)."""
        plan = self._plans.get(resource_type)
        if plan is None:
            params = self._registry.params_for(resource_type)
            plan = (*(step for param in params.values()
                      for step in self._steps(param, resource_type)),
                    *self._composite_steps(params.values(), resource_type))
            if params:
                self._plans[resource_type] = plan
        return plan

    def _composite_steps(self, params: Iterable[SearchParam],
                         resource_type: str) -> list[PlanStep]:
        composites = [param for param in params if param.type is ParamType.COMPOSITE]
        steps = composite.composite_steps(composites, resource_type, registry=self._registry,
                                          protection=self._protection, converters=CONVERTERS)
        return [PlanStep(step.context, step.find, step.convert) for step in steps]

    def _steps(self, param: SearchParam, resource_type: str) -> list[PlanStep]:
        factory = CONVERTERS.get(param.type)
        if factory is None or param.expression is None or param.code in NOT_EXTRACTED:
            return []
        compiled = compile_expression(param.expression, resource_type)
        return [PlanStep(param.code, branch.run, convert) for branch in compiled.branches
                if (convert := factory(branch.value_type, self._protection)) is not None]
