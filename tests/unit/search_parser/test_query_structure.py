"""AND/OR and escaping, result and unknown parameters, chains, _has and _type."""

from __future__ import annotations

import pytest

from fhir_server.errors import ErrorCode, FhirError
from fhir_server.search.parser import Unsupported, split_escaped, unescape
from fhir_server.storage.query import (
    ChainClause,
    HasClause,
    IdClause,
    MissingClause,
    ReferenceClause,
    ReferenceValue,
    StringClause,
    TokenClause,
    TokenValue,
)
from tests.unit.search_parser.support import malformed, only_clause, parse, refusal

# escaping, AND and OR

def test_split_keeps_escapes_for_the_next_split() -> None:
    assert split_escaped(r"a\,b,c\|d|e", ",") == [r"a\,b", r"c\|d|e"]
    assert split_escaped(r"a\\,b", ",") == [r"a\\", "b"]
    assert split_escaped(r"a\|b|c", "|") == [r"a\|b", "c"]


def test_unescape_only_the_search_escapes() -> None:
    assert unescape(r"a\,b\|c\$d\\e") == r"a,b|c$d\e"
    assert unescape(r"C:\temp\n") == r"C:\temp\n"


def test_escaped_separators_stay_in_token_values() -> None:
    assert only_clause("Patient", "identifier", r"urn:sys\|v2|a\,b,c\\") == TokenClause(
        "identifier", (TokenValue("urn:sys|v2", "a,b"), TokenValue(None, "c\\")))


def test_escaped_dollar_and_backslash_in_strings() -> None:
    assert only_clause("Patient", "family:exact", r"100\$\\x") == StringClause(
        "family", (r"100$\x",), mode="exact", normalized=(r"100$\x",))


def test_repeated_parameters_and_while_commas_or() -> None:
    parsed = parse("Patient", ("family", "martin,durand"), ("family", "mar"),
                   ("gender", "female"))
    assert parsed.clauses == (StringClause("family", ("martin", "durand")),
                              StringClause("family", ("mar",)),
                              TokenClause("gender", (TokenValue(None, "female"),)))


def test_empty_values_and_empty_or_parts_are_ignored() -> None:
    parsed = parse("Patient", ("family", ""), ("gender", ",male,"), ("name", " "),
                   ("_id", ","))
    assert parsed.clauses == (TokenClause("gender", (TokenValue(None, "male"),)),)
    assert parsed.unsupported == ()


# result and unknown parameters

def test_result_parameters_are_left_to_the_caller() -> None:
    parsed = parse("Patient", *[(name, "x") for name in (
        "_count", "_sort", "_include", "_include:iterate", "_revinclude:iterate", "_summary",
        "_elements", "_total", "_offset", "_format", "_pretty", "_cursor", "_contained",
        "_containedType")])
    assert parsed.clauses == () and parsed.unsupported == ()


@pytest.mark.parametrize(("resource_type", "name", "reason"), [
    ("Patient", "nonsense", "'nonsense' is not a search parameter of Patient"),
    ("Patient", "_text", "not supported"),
    ("Patient", "_content", "not supported"),
    ("Patient", "_list", "not supported"),
    ("Patient", "_query", "not supported"),
    ("MolecularSequence", "chromosome-window-coordinate",
     "composite parameter 'chromosome-window-coordinate'"),
    ("Location", "near", "special parameter 'near'"),
    ("Patient", "_type", "_type restricts a system-level search only"),
])
def test_unknown_or_unsupported_parameters_are_reported(resource_type: str, name: str,
                                                        reason: str) -> None:
    assert reason in refusal(resource_type, name, "x")


def test_unknown_names_are_reported_as_written_alongside_the_clauses() -> None:
    parsed = parse("Patient", ("gender", "male"), ("family:fuzzy", "x"), ("nonsense", "1"))
    assert parsed.clauses == (TokenClause("gender", (TokenValue(None, "male"),)),)
    assert parsed.unknown == ("family:fuzzy", "nonsense")
    assert [u.name for u in parsed.unsupported] == ["family:fuzzy", "nonsense"]


def test_a_malformed_value_names_the_parameter_and_the_value() -> None:
    with pytest.raises(FhirError) as caught:
        parse("Patient", ("gender", "male"), ("birthdate", "ge1980,1980-99"))
    assert caught.value.error is ErrorCode.BAD_PARAMETER
    assert caught.value.status == 400
    assert caught.value.expression == ("birthdate",)
    assert caught.value.diagnostics.startswith("birthdate: '1980-99' is not a date")


# chains

def test_chain_with_type_modifier() -> None:
    assert only_clause("Observation", "subject:Patient.name", "Léa") == ChainClause(
        "subject", "Patient", (StringClause("name", ("lea",)),))


def test_chain_through_a_single_target() -> None:
    assert only_clause("Observation", "patient.gender", "female") == ChainClause(
        "patient", "Patient", (TokenClause("gender", (TokenValue(None, "female"),)),))


def test_chain_target_chosen_when_only_one_target_has_the_parameter() -> None:
    assert only_clause("Observation", "subject.birthdate:missing", "true") == ChainClause(
        "subject", "Patient", (MissingClause("birthdate", True),))


def test_chain_with_several_candidate_targets_asks_for_a_type_modifier() -> None:
    reason = refusal("Observation", "subject.name", "x")
    assert "'subject' may designate Patient, Location" in reason
    assert "'subject:Patient.name'" in reason


def test_chain_of_several_hops() -> None:
    clause = only_clause("Observation", "subject:Patient.organization.name", "Clinique")
    assert clause == ChainClause("subject", "Patient", (
        ChainClause("organization", "Organization", (StringClause("name", ("clinique",)),)),))


def test_chain_ending_in_a_modifier_and_an_or_list() -> None:
    assert only_clause("Encounter", "patient.identifier:not", "a,b") == ChainClause(
        "patient", "Patient", (TokenClause(
            "identifier", (TokenValue(None, "a"), TokenValue(None, "b")), negate=True),))


def test_chain_through_id() -> None:
    assert only_clause("Observation", "subject:Patient._id", "p1") == ChainClause(
        "subject", "Patient", (IdClause(("p1",)),))


@pytest.mark.parametrize(("name", "reason"), [
    ("gender.x", "'gender' is not a reference parameter"),
    ("general-practitioner:Observation.code", "Observation is not a type"),
    ("organization.nonsense", "'nonsense' is not a search parameter of Organization"),
    ("general-practitioner.nonsense", "has a parameter 'nonsense'"),
    ("nonsense.name", "'nonsense' is not a search parameter of Patient"),
])
def test_unsupported_chains(name: str, reason: str) -> None:
    assert reason in refusal("Patient", name, "x")


def test_malformed_value_in_a_chain_names_the_whole_parameter() -> None:
    error = malformed("Observation", "patient.birthdate", "1980-99")
    assert error.expression == ("patient.birthdate",)
    assert error.diagnostics.startswith("patient.birthdate: '1980-99' is not a date")


def test_chain_with_an_empty_value_is_ignored() -> None:
    assert parse("Observation", ("patient.name", "")).clauses == ()


# _has

def test_has() -> None:
    assert only_clause("Patient", "_has:Observation:subject:code", "http://loinc.org|1234-5") \
        == HasClause("Observation", "subject", (
            TokenClause("code", (TokenValue("http://loinc.org", "1234-5"),)),))


def test_nested_has() -> None:
    clause = only_clause("Patient", "_has:Observation:subject:_has:AuditEvent:entity:agent",
                         "Practitioner/pr1")
    assert clause == HasClause("Observation", "subject", (HasClause("AuditEvent", "entity", (
        ReferenceClause("agent", (ReferenceValue("Practitioner", "pr1"),)),)),))


def test_has_with_a_modifier_and_a_chain_inside() -> None:
    clause = only_clause("Patient", "_has:Observation:patient:performer:Practitioner.name",
                         "Dupont")
    assert clause == HasClause("Observation", "patient", (ChainClause(
        "performer", "Practitioner", (StringClause("name", ("dupont",)),)),))


@pytest.mark.parametrize(("name", "reason"), [
    ("_has:Observation:subject", "_has takes the form"),
    ("_has:Observation::code", "_has takes the form"),
    ("_has:Nonsense:subject:code", "'Nonsense' is not a resource type"),
    ("_has:Observation:code:code", "'code' is not a reference parameter of Observation"),
    ("_has:Observation:patient:code", "Observation.patient cannot designate a Practitioner"),
    ("_has:Observation:performer:nonsense",
     "'nonsense' is not a search parameter of Observation"),
])
def test_unsupported_has(name: str, reason: str) -> None:
    assert reason in refusal("Practitioner", name, "x")


# system level and _type

def test_system_level_common_parameters() -> None:
    parsed = parse(None, ("_tag", "urn:t|a"), ("_id", "x"), ("_lastUpdated", "gt2024"),
                   ("_security", "R"))
    assert [type(c).__name__ for c in parsed.clauses] == [
        "TokenClause", "IdClause", "LastUpdatedClause", "TokenClause"]
    assert parsed.types == ()


def test_system_level_type_specific_parameter_needs_type() -> None:
    assert "is not a search parameter of a search of every type" in refusal(None, "name", "x")


def test_type_restricts_and_enables_the_shared_parameters() -> None:
    parsed = parse(None, ("_type", "Patient,Practitioner"), ("name", "Léa"),
                   ("gender", "female"), ("birthdate", "1980"))
    assert parsed.types == ("Patient", "Practitioner")
    assert parsed.clauses == (StringClause("name", ("lea",)),
                              TokenClause("gender", (TokenValue(None, "female"),)))
    assert parsed.unknown == ("birthdate",)


def test_type_parameter_must_have_one_type_in_every_listed_type() -> None:
    parsed = parse(None, ("_type", "Account,StructureDefinition"), ("type", "x"),
                   ("_type", "Account"), ("gender", "male"))
    assert parsed.types == ("Account", "StructureDefinition")
    assert parsed.unsupported == (
        Unsupported("type", "'type' is not a search parameter of Account, StructureDefinition"),
        Unsupported("gender", "'gender' is not a search parameter of Account, "
                              "StructureDefinition"))


def test_unknown_type_is_malformed() -> None:
    error = malformed(None, "_type", "Patient,Nonsense")
    assert error.diagnostics == "_type: 'Nonsense' is not a resource type"
    assert error.expression == ("_type",)


def test_split_escaped_takes_the_plain_path_and_the_escaped_one_alike() -> None:
    from fhir_server.search.parser import split_escaped, unescape

    assert split_escaped("a|b|c", "|") == ["a", "b", "c"]
    assert split_escaped("a\\|b|c", "|") == ["a\\|b", "c"]
    assert split_escaped("a\\\\|b", "|") == ["a\\\\", "b"]
    assert split_escaped("", ",") == [""]
    assert unescape("plain") == "plain"
    assert unescape("a\\,b\\\\c\\x") == "a,b\\c\\x"
