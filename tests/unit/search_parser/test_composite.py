"""Composite parameters: ``first$second`` values, the second read with its own type's rules."""

from __future__ import annotations

import pytest

from fhir_server.errors import ErrorCode
from fhir_server.search.parser import MAX_OR_VALUES, parse_query, searchable
from fhir_server.search.registry import default_registry
from fhir_server.storage.query import (
    AnyClause,
    Bound,
    ChainClause,
    Clause,
    CompositeClause,
    CompositeValue,
    RangeTest,
    ReferenceValue,
    SecondComponent,
    StringStart,
    TokenValue,
    UriEquals,
)
from tests.unit.search.test_composite import custom_registry
from tests.unit.search_parser.support import (
    BASE_URL,
    INDEXER,
    NOW,
    malformed,
    only_clause,
    passes,
    refusal,
)

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def composite(param: str, *values: tuple[TokenValue, SecondComponent]) -> CompositeClause:
    return CompositeClause(param, tuple(CompositeValue(first, second) for first, second in values))


def test_a_quantity_component_takes_its_prefix() -> None:
    clause = only_clause("Observation", "component-code-value-quantity", f"{LOINC}|8480-6$gt140")
    assert clause == composite("component-code-value-quantity", (
        TokenValue(LOINC, "8480-6"), RangeTest((Bound("low", "gt", 140.0),))))


def test_a_quantity_unit_outside_the_ucum_table_is_matched_as_written() -> None:
    clause = only_clause("Observation", "code-value-quantity",
                         f"8480-6$lt90|{UCUM}|mm[Hg]")
    assert clause == composite("code-value-quantity", (
        TokenValue(None, "8480-6"), RangeTest((Bound("high", "lt", 90.0),), UCUM, "mm[Hg]")))


def test_a_convertible_unit_also_searches_the_canonical_entries() -> None:
    clause = only_clause("Observation", "code-value-quantity", f"2345-7$5|{UCUM}|mg")
    assert isinstance(clause, AnyClause)
    written, converted = clause.clauses
    assert isinstance(written, CompositeClause) and isinstance(converted, CompositeClause)
    assert written.param == "code-value-quantity"
    assert converted.param == "code-value-quantity:canonical"
    [value] = converted.values
    assert value.first == TokenValue(None, "2345-7")
    assert isinstance(value.second, RangeTest)
    assert (value.second.system, value.second.code) == (UCUM, "canonical:g")
    assert passes([value.second], 0.005, 0.005)
    assert not passes([value.second], 5, 5)


def test_a_date_component_follows_the_date_prefixes() -> None:
    clause = only_clause("Observation", "code-value-date", "x$ge2024-03")
    assert isinstance(clause, CompositeClause)
    tests = [value.second for value in clause.values if isinstance(value.second, RangeTest)]
    assert len(tests) == len(clause.values) == 2
    assert passes(tests, "2024-03-10T00:00:00.000000Z", "2024-03-10T23:59:59.999999Z")
    assert passes(tests, "2025-01-01T00:00:00.000000Z", "2025-01-01T23:59:59.999999Z")
    assert not passes(tests, "2024-02-28T00:00:00.000000Z", "2024-02-28T23:59:59.999999Z")


def test_token_string_and_reference_components() -> None:
    assert only_clause("Observation", "code-value-concept", "a|1$|2") == composite(
        "code-value-concept", (TokenValue("a", "1"), TokenValue("", "2")))
    assert only_clause("Observation", "code-value-string", "x$Lésion") == composite(
        "code-value-string", (TokenValue(None, "x"), StringStart("lesion")))
    assert only_clause("DocumentReference", "relationship", "replaces$d1") == composite(
        "relationship", (TokenValue(None, "replaces"), ReferenceValue("DocumentReference", "d1")))
    assert only_clause("DocumentReference", "relationship",
                       f"replaces${BASE_URL}/DocumentReference/d2") == composite(
        "relationship", (TokenValue(None, "replaces"), ReferenceValue("DocumentReference", "d2")))


def test_number_and_uri_components() -> None:
    def parse(resource_type: str, name: str, value: str) -> tuple[Clause, ...]:
        parsed = parse_query(resource_type, [(name, value)], registry=custom_registry(),
                             coder=INDEXER, now=NOW)
        assert parsed.unsupported == ()
        return parsed.clauses

    [number] = parse("RiskAssessment", "outcome-probability", "melanoma$gt0.5")
    assert number == composite("outcome-probability", (
        TokenValue(None, "melanoma"), RangeTest((Bound("low", "gt", 0.5),))))
    [uri] = parse("Questionnaire", "item-code-definition", "site$urn:x\\$y")
    assert uri == composite("item-code-definition", (TokenValue(None, "site"),
                                                     UriEquals("urn:x$y")))


def test_commas_or_values_and_escapes_keep_separators() -> None:
    clause = only_clause("Observation", "code-value-concept", "a\\$b$1,c$d\\,e")
    assert clause == composite("code-value-concept",
                               (TokenValue(None, "a$b"), TokenValue(None, "1")),
                               (TokenValue(None, "c"), TokenValue(None, "d,e")))


def test_a_chain_may_end_on_a_composite() -> None:
    clause = only_clause("DiagnosticReport", "result.component-code-value-quantity",
                         "8480-6$gt140")
    assert clause == ChainClause("result", "Observation", (composite(
        "component-code-value-quantity",
        (TokenValue(None, "8480-6"), RangeTest((Bound("low", "gt", 140.0),)))),))


@pytest.mark.parametrize("value", ["8480-6", "8480-6$gt140$mm", "$gt140", "8480-6$",
                                   "8480-6$big", "a|b|c$1"])
def test_malformed_values_are_refused_naming_the_parameter(value: str) -> None:
    error = malformed("Observation", "code-value-quantity", value)
    assert error.error is ErrorCode.BAD_PARAMETER
    assert error.diagnostics.startswith("code-value-quantity: ")


def test_a_string_component_needs_text() -> None:
    error = malformed("Observation", "code-value-string", "x$  ")
    assert "is blank" in error.diagnostics


def test_too_many_values_are_too_costly() -> None:
    # each ``ne`` date value is two tests: 260 values stand for 520
    value = ",".join(f"c{n}$ne2024" for n in range(260))
    error = malformed("Observation", "code-value-date", value)
    assert error.issues and error.issues[0].issue_type.value == "too-costly"
    assert str(MAX_OR_VALUES) in error.diagnostics


def test_composites_take_no_modifier() -> None:
    reason = refusal("Observation", "code-value-quantity:exact", "a$1")
    assert "':exact' is not supported on the composite parameter 'code-value-quantity'" in reason


def test_molecular_sequence_composites_are_not_supported() -> None:
    param = default_registry().param("MolecularSequence", "chromosome-window-coordinate")
    assert param is not None and not searchable(param)
    assert "not supported" in refusal("MolecularSequence", "chromosome-window-coordinate",
                                      "1$2$3")
    observation = default_registry().param("Observation", "code-value-quantity")
    assert observation is not None and searchable(observation)
