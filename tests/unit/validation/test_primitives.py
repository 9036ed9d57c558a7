"""Tests for fhir_server.validation.primitives: rules from the primitive StructureDefinitions."""

from __future__ import annotations

import re
import time

from hypothesis import given
from hypothesis import strategies as st

from fhir_server.definitions import structure_definitions
from fhir_server.validation.primitives import SAFE_PATTERNS, JsonKind, build_rules

RULES = build_rules(structure_definitions())
OFFICIAL_BASE64 = re.compile(r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+")


def test_one_rule_per_primitive_type() -> None:
    assert set(RULES) == {
        "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
        "instant", "integer", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt",
        "uri", "url", "uuid", "xhtml"}
    assert RULES["boolean"].kind is JsonKind.BOOLEAN
    assert RULES["positiveInt"].kind is JsonKind.INTEGER
    assert RULES["decimal"].kind is JsonKind.DECIMAL
    assert RULES["instant"].kind is JsonKind.STRING


def test_patterns_come_from_the_definitions() -> None:
    time_pattern = RULES["time"].pattern
    assert time_pattern is not None
    assert time_pattern.pattern == r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
    assert RULES["xhtml"].pattern is None


def test_base64_uses_the_linear_pattern() -> None:
    pattern = RULES["base64Binary"].pattern
    assert pattern is not None
    assert pattern.pattern == SAFE_PATTERNS["base64Binary"]


@given(st.text(alphabet="AB+/= \n!", max_size=14))
def test_base64_pattern_accepts_what_the_official_one_accepts(text: str) -> None:
    rule = RULES["base64Binary"]
    official_ok = text != "" and OFFICIAL_BASE64.fullmatch(text) is not None
    assert (rule.problem(text) is None) == official_ok


def test_base64_rejects_a_backtracking_trap_quickly() -> None:
    started = time.perf_counter()
    assert RULES["base64Binary"].problem("AAAA " * 5000 + "A") is not None
    assert time.perf_counter() - started < 0.5


def test_long_values_are_shortened_in_messages() -> None:
    problem = RULES["date"].problem("x" * 500)
    assert problem is not None
    assert len(problem) < 120
