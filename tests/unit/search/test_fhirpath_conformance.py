"""The fast evaluator against fhirpathpy, on every official expression and synthetic resources.

Every (resource type, parameter) expression of the registry is evaluated both ways on the
synthetic resources of that type (``synthetic.py``: every element filled, every choice type,
reference and code shown in some variant). fhirpathpy is given the same ``resolve()`` as the
fallback (it has none of its own), and ``Resource.`` roots renamed to the type.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache
from typing import Any

from fhir_server.definitions import resource_types
from fhir_server.search.fhirpath import compile_expression, compile_with_fhirpathpy
from fhir_server.search.registry import default_registry
from tests.unit.search.synthetic import variants

FALLBACK_EXPRESSIONS: frozenset[tuple[str, str]] = frozenset()
"""(type, code) of the official parameters left to fhirpathpy: none, all are in the subset."""


def _official_expressions() -> list[tuple[str, str, str]]:
    registry = default_registry()
    return [(resource_type, code, param.expression)
            for resource_type in resource_types()
            for code, param in registry.params_for(resource_type).items()
            if param.expression]


def _canonical(value: Any) -> str:
    def plain(item: Any) -> Any:
        if isinstance(item, Decimal):
            return float(item)
        if isinstance(item, dict):
            return {key: plain(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [plain(inner) for inner in item]
        return item
    return json.dumps(plain(value), sort_keys=True, ensure_ascii=False)


@cache
def _examples(resource_type: str) -> tuple[dict[str, Any], ...]:
    return tuple(variants(resource_type))


def test_almost_every_official_expression_is_in_the_fast_subset() -> None:
    expressions = _official_expressions()
    fallbacks = {(resource_type, code) for resource_type, code, expression in expressions
                 if not compile_expression(expression, resource_type).fast}
    assert fallbacks == FALLBACK_EXPRESSIONS
    assert len(fallbacks) < 0.10 * len(expressions)
    assert len(expressions) > 2500


def test_the_fast_evaluator_gives_what_fhirpathpy_gives() -> None:
    mismatches: list[tuple[str, str, str]] = []
    compared = 0
    with_values: set[tuple[str, str]] = set()
    for resource_type, code, expression in _official_expressions():
        fast = compile_expression(expression, resource_type)
        reference = compile_with_fhirpathpy(expression, resource_type)
        for example in _examples(resource_type):
            expected = {_canonical(v) for v in reference(example)}
            found = fast.evaluate(example)
            compared += 1
            if {_canonical(v) for v in found} != expected:
                mismatches.append((resource_type, code, expression))
            if found:
                with_values.add((resource_type, code))
    assert mismatches == []
    assert compared > 20_000
    # Each expression met data in some example: the comparison is not between empty results.
    all_pairs = {(t, c) for t, c, _ in _official_expressions()}
    assert all_pairs - with_values == set()


def test_the_synthetic_examples_exercise_the_filters_both_ways() -> None:
    compiled = compile_expression("Observation.subject.where(resolve() is Patient)",
                                  "Observation")
    results = [bool(compiled.evaluate(example)) for example in _examples("Observation")]
    assert any(results)
    assert not all(results)
    email = compile_expression("Patient.telecom.where(system='email')", "Patient")
    found = [bool(email.evaluate(example)) for example in _examples("Patient")]
    assert any(found)
    assert not all(found)
