"""Shared helpers: parse with the real registry, and evaluate range tests as a store would."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_server.engine.indexing import Indexer
from fhir_server.errors import FhirError
from fhir_server.search.parser import ParsedSearch, parse_query
from fhir_server.search.registry import default_registry
from fhir_server.storage.query import Clause, RangeTest
from tests.support.factories import NIR_SYSTEM

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
BASE_URL = "https://pictaderm.test/fhir"
INDEXER = Indexer(blind_index=lambda system, value: f"blind:{system}:{value}",
                  is_sensitive=lambda system: system == NIR_SYSTEM)

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}


def parse(resource_type: str | None, *params: tuple[str, str]) -> ParsedSearch:
    return parse_query(resource_type, params, registry=default_registry(), coder=INDEXER,
                       base_url=BASE_URL, now=NOW)


def only_clause(resource_type: str | None, name: str, value: str) -> Clause:
    """The single clause of a one-parameter search (fails if it was refused)."""
    parsed = parse(resource_type, (name, value))
    assert parsed.unsupported == (), parsed.unsupported
    assert len(parsed.clauses) == 1, parsed.clauses
    return parsed.clauses[0]


def refusal(resource_type: str | None, name: str, value: str) -> str:
    """The reason a one-parameter search was left out (fails if it was parsed)."""
    parsed = parse(resource_type, (name, value))
    assert parsed.clauses == ()
    assert parsed.unknown == (name,)
    return parsed.unsupported[0].reason


def malformed(resource_type: str | None, name: str, value: str) -> FhirError:
    with pytest.raises(FhirError) as caught:
        parse(resource_type, (name, value))
    return caught.value


def passes(tests: Iterable[RangeTest], low: str | float, high: str | float) -> bool:
    """Whether an entry [low, high] passes one of ``tests`` (system and code not checked)."""
    return any(all(_OPS[bound.op](low if bound.field == "low" else high, bound.value)
                   for bound in test.bounds) for test in tests)
