"""Each parameter type with its modifiers: the clause it becomes, and its malformed values."""

from __future__ import annotations

import pytest

from fhir_server.errors import ErrorCode
from fhir_server.storage.query import (
    AnyClause,
    IdClause,
    LastUpdatedClause,
    MissingClause,
    RangeClause,
    ReferenceClause,
    ReferenceValue,
    StringClause,
    TextClause,
    TokenClause,
    TokenValue,
    UriClause,
)
from tests.support.factories import NIR_SYSTEM
from tests.unit.search_parser.support import (
    BASE_URL,
    INDEXER,
    malformed,
    only_clause,
    passes,
    refusal,
)

# token

@pytest.mark.parametrize(("value", "expected"), [
    ("male", TokenValue(None, "male")),
    ("http://hl7.org/fhir/administrative-gender|male",
     TokenValue("http://hl7.org/fhir/administrative-gender", "male")),
    ("|male", TokenValue("", "male")),
    ("http://hl7.org/fhir/administrative-gender|",
     TokenValue("http://hl7.org/fhir/administrative-gender", None)),
])
def test_token_forms(value: str, expected: TokenValue) -> None:
    assert only_clause("Patient", "gender", value) == TokenClause("gender", (expected,))


def test_token_boolean() -> None:
    assert only_clause("Patient", "active", "true") == TokenClause(
        "active", (TokenValue(None, "true"),))


def test_sensitive_identifier_is_searched_by_its_blind_index_only_with_its_system() -> None:
    clause = only_clause("Patient", "identifier", f"{NIR_SYSTEM}|1800175000001,12345")
    assert clause == TokenClause("identifier", (
        TokenValue(NIR_SYSTEM, f"blind:{NIR_SYSTEM}:1800175000001"), TokenValue(None, "12345")))
    plain = only_clause("Patient", "identifier", "urn:example:mrn|42")
    assert plain == TokenClause("identifier", (TokenValue("urn:example:mrn", "42"),))


def test_token_not() -> None:
    assert only_clause("Patient", "gender:not", "male,female") == TokenClause(
        "gender", (TokenValue(None, "male"), TokenValue(None, "female")), negate=True)


def test_token_text_is_normalised() -> None:
    assert only_clause("Observation", "code:text", "Glycémie  À jeun,HbA1c") == TextClause(
        "code", ("glycemie a jeun", "hba1c"))


def test_token_of_type() -> None:
    type_system = "http://terminology.hl7.org/CodeSystem/v2-0203"
    clause = only_clause("Patient", "identifier:of-type", f"{type_system}|MR|446053")
    blind = INDEXER.of_type_codes(type_system, "MR", "446053")[1]
    assert clause == TokenClause("identifier:of-type", (
        TokenValue(type_system, "MR|446053"), TokenValue(type_system, blind)))


@pytest.mark.parametrize("value", ["MR|446053", "sys||446053", "a|b|c|d"])
def test_token_of_type_needs_three_parts(value: str) -> None:
    error = malformed("Patient", "identifier:of-type", value)
    assert "type-system|type-code|value" in error.diagnostics


@pytest.mark.parametrize("value", ["a|b|c", "|"])
def test_malformed_token(value: str) -> None:
    error = malformed("Patient", "gender", value)
    assert error.error is ErrorCode.BAD_PARAMETER and error.expression == ("gender",)
    assert error.diagnostics.startswith(f"gender: '{value}' is not a token")


@pytest.mark.parametrize("modifier", ["in", "not-in", "above", "below", "exact"])
def test_token_modifiers_not_supported_yet(modifier: str) -> None:
    reason = refusal("Observation", f"code:{modifier}", "x")
    assert f":{modifier}" in reason and "token" in reason


# :missing, on every type

@pytest.mark.parametrize(("resource_type", "code"), [
    ("Patient", "gender"), ("Patient", "family"), ("Patient", "birthdate"),
    ("RiskAssessment", "probability"), ("Observation", "value-quantity"),
    ("Observation", "subject"), ("ValueSet", "url")])
def test_missing_on_every_type(resource_type: str, code: str) -> None:
    assert only_clause(resource_type, f"{code}:missing", "true") == MissingClause(code, True)
    assert only_clause(resource_type, f"{code}:missing", "false") == MissingClause(code, False)


@pytest.mark.parametrize("value", ["yes", "true,false", "TRUE"])
def test_missing_takes_true_or_false(value: str) -> None:
    assert "is not true or false" in malformed("Patient", "gender:missing", value).diagnostics


# string

def test_string_default_is_a_normalised_prefix() -> None:
    assert only_clause("Patient", "family", "  Dupont-Lefèvre ,ÉLOÏSE") == StringClause(
        "family", ("dupont-lefevre", "eloise"))


def test_string_exact_keeps_the_value_as_written() -> None:
    assert only_clause("Patient", "family:exact", r"Lefèvre\, Jr") == StringClause(
        "family", ("Lefèvre, Jr",), mode="exact", normalized=("lefevre, jr",))


def test_string_contains_is_normalised() -> None:
    assert only_clause("Patient", "name:contains", "ÈVE") == StringClause(
        "name", ("eve",), mode="contains")


def test_string_modifier_not_supported() -> None:
    assert ":text" in refusal("Patient", "family:text", "x")


# uri

@pytest.mark.parametrize(("name", "mode"), [("url", "exact"), ("url:below", "below"),
                                            ("url:above", "above")])
def test_uri_modes(name: str, mode: str) -> None:
    clause = only_clause("ValueSet", name, "http://example.org/fhir/ValueSet/a")
    assert isinstance(clause, UriClause)
    assert (clause.param, clause.values, clause.mode) == (
        "url", ("http://example.org/fhir/ValueSet/a",), mode)


def test_uri_modifier_not_supported() -> None:
    assert ":contains" in refusal("ValueSet", "url:contains", "http://x")


# date

def test_date_clause_holds_one_test_set_per_value() -> None:
    clause = only_clause("Patient", "birthdate", "ge1980,1975-05")
    assert isinstance(clause, RangeClause) and clause.kind == "date"
    assert clause.param == "birthdate" and not clause.negate
    assert passes(clause.tests, "1985-01-01T00:00:00.000000Z", "1985-01-01T23:59:59.999999Z")
    assert passes(clause.tests, "1975-05-02T00:00:00.000000Z", "1975-05-02T23:59:59.999999Z")
    assert not passes(clause.tests, "1976-01-01T00:00:00.000000Z", "1976-01-01T23:59:59.999999Z")


@pytest.mark.parametrize("value", ["1980-13", "xx1980", "gt", "ge1980-01-01T10", "yesterday"])
def test_malformed_date(value: str) -> None:
    error = malformed("Patient", "birthdate", value)
    assert error.expression == ("birthdate",)
    assert error.diagnostics.startswith(f"birthdate: '{value}' is not a date")


def test_date_modifier_not_supported() -> None:
    assert ":exact" in refusal("Patient", "birthdate:exact", "2020")


# number

def test_number_clause() -> None:
    clause = only_clause("RiskAssessment", "probability", "gt0.8")
    assert isinstance(clause, RangeClause) and clause.kind == "number"
    assert passes(clause.tests, 0.85, 0.95) and not passes(clause.tests, 0.75, 0.85)


@pytest.mark.parametrize("value", ["high", "gt", "0.8.1", "zz0.8"])
def test_malformed_number(value: str) -> None:
    error = malformed("RiskAssessment", "probability", value)
    assert error.diagnostics.startswith(f"probability: '{value}' is not a number")


# quantity

@pytest.mark.parametrize(("value", "system", "code"), [
    ("5.4|http://unitsofmeasure.org|mg", "http://unitsofmeasure.org", "mg"),
    ("5.4||mg", None, "mg"),
    ("5.4", None, None),
    ("5.4|http://unitsofmeasure.org|", "http://unitsofmeasure.org", None),
])
def test_quantity_forms(value: str, system: str | None, code: str | None) -> None:
    clause = only_clause("Observation", "value-quantity", value)
    if isinstance(clause, AnyClause):  # a UCUM unit: also the canonical entries, apart
        clause, canonical = clause.clauses
        assert isinstance(canonical, RangeClause)
        assert canonical.param == "value-quantity:canonical"
        assert [t.code for t in canonical.tests] == ["canonical:g"]
    assert isinstance(clause, RangeClause) and clause.kind == "quantity"
    assert [(t.system, t.code) for t in clause.tests] == [(system, code)]
    assert passes(clause.tests, 5.35, 5.45) and not passes(clause.tests, 5.55, 5.65)


def test_quantity_prefix_applies_to_the_number() -> None:
    clause = only_clause("Observation", "value-quantity", "lt5.4||mg,gt10||g")
    assert isinstance(clause, AnyClause)
    clause = clause.clauses[0]
    assert isinstance(clause, RangeClause)
    assert [(t.code, passes((t,), 3.0, 3.0)) for t in clause.tests] == [("mg", True),
                                                                         ("g", False)]


@pytest.mark.parametrize("value", ["5.4|mg", "five||mg", "5.4|a|b|c"])
def test_malformed_quantity(value: str) -> None:
    assert malformed("Observation", "value-quantity", value).expression == ("value-quantity",)


# reference

@pytest.mark.parametrize(("name", "value", "expected"), [
    ("subject", "Patient/p1", ReferenceValue("Patient", "p1")),
    ("subject", "p1", ReferenceValue(None, "p1")),
    ("patient", "p1", ReferenceValue("Patient", "p1")),
    ("subject:Patient", "p1", ReferenceValue("Patient", "p1")),
    ("subject:Patient", "Patient/p1", ReferenceValue("Patient", "p1")),
    ("subject", "Patient/p1/_history/3", ReferenceValue("Patient", "p1")),
    ("subject", f"{BASE_URL}/Patient/p1", ReferenceValue("Patient", "p1")),
    ("subject", "http://elsewhere.test/fhir/Patient/p1",
     ReferenceValue(None, None, url="http://elsewhere.test/fhir/Patient/p1")),
    ("subject", "urn:uuid:0f5d3b1c-95a4-4f7b-9c1e-0c0e7d1a2b3c",
     ReferenceValue(None, None, url="urn:uuid:0f5d3b1c-95a4-4f7b-9c1e-0c0e7d1a2b3c")),
])
def test_reference_forms(name: str, value: str, expected: ReferenceValue) -> None:
    code = name.partition(":")[0]
    assert only_clause("Observation", name, value) == ReferenceClause(code, (expected,))


def test_reference_or_list() -> None:
    assert only_clause("Observation", "subject", "Patient/a,Group/b") == ReferenceClause(
        "subject", (ReferenceValue("Patient", "a"), ReferenceValue("Group", "b")))


def test_reference_identifier() -> None:
    clause = only_clause("Observation", "subject:identifier", f"{NIR_SYSTEM}|1800175000001")
    assert clause == TokenClause("subject:identifier", (
        TokenValue(NIR_SYSTEM, f"blind:{NIR_SYSTEM}:1800175000001"),))


def test_reference_type_modifier_must_be_a_target() -> None:
    assert ":Medication" in refusal("Observation", "subject:Medication", "m1")
    assert ":Nonsense" in refusal("Observation", "subject:Nonsense", "m1")


@pytest.mark.parametrize(("name", "value", "detail"), [
    ("subject:Patient", "Group/g1", "designates a Group, not a Patient"),
    ("subject", "Nonsense/1", "is not a reference"),
    ("subject", "Patient/1/extra", "is not a reference"),
    ("subject", "Patient/", "is not a reference"),
])
def test_malformed_reference(name: str, value: str, detail: str) -> None:
    assert detail in malformed("Observation", name, value).diagnostics


# _id and _lastUpdated

def test_id() -> None:
    assert only_clause("Patient", "_id", r"a,b\,c") == IdClause(("a", "b,c"))
    assert ":exact" in refusal("Patient", "_id:exact", "a")


def test_last_updated() -> None:
    assert only_clause("Patient", "_lastUpdated", "ge2024-03") == LastUpdatedClause(
        "2024-03-01T00:00:00.000000Z", None)


@pytest.mark.parametrize(("value", "reason"), [
    ("ne2024", "'ne' is not supported"), ("2024,2025", "takes one value")])
def test_last_updated_unsupported_forms(value: str, reason: str) -> None:
    assert reason in refusal("Patient", "_lastUpdated", value)


def test_malformed_last_updated() -> None:
    error = malformed("Patient", "_lastUpdated", "gtfoo")
    assert error.diagnostics.startswith("_lastUpdated: 'gtfoo' is not a date")
    assert error.expression == ("_lastUpdated",)


# Resource-level parameters

def test_meta_parameters() -> None:
    assert only_clause("Patient", "_tag", "urn:tags|vip") == TokenClause(
        "_tag", (TokenValue("urn:tags", "vip"),))
    assert only_clause("Patient", "_security:not", "R") == TokenClause(
        "_security", (TokenValue(None, "R"),), negate=True)
    assert only_clause("Patient", "_profile", "http://p") == UriClause("_profile", ("http://p",))
    assert only_clause("Patient", "_source:below", "urn:app") == UriClause(
        "_source", ("urn:app",), mode="below")
