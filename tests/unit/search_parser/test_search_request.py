"""The engine adapter still serves the search and conditional interactions as before."""

from __future__ import annotations

import pytest

from fhir_server.engine.search_request import (
    RESULT_PARAMETERS,
    parse_search,
    supported_parameters,
)
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.query import (
    IdClause,
    LastUpdatedClause,
    ReferenceClause,
    ReferenceValue,
    StringClause,
    TokenClause,
    TokenValue,
)
from tests.support.factories import NIR_SYSTEM
from tests.unit.search_parser.support import INDEXER


def test_rest_core_parameters_parse_as_before() -> None:
    parsed = parse_search("Patient", [
        ("_id", "a,b"), ("identifier", f"{NIR_SYSTEM}|1800175000001"),
        ("_lastUpdated", "gt2024-01-01T10:00:00Z"), ("_count", "5")], INDEXER)
    assert parsed.clauses == (
        IdClause(("a", "b")),
        TokenClause("identifier", (TokenValue(NIR_SYSTEM, f"blind:{NIR_SYSTEM}:1800175000001"),)),
        LastUpdatedClause("2024-01-01T10:00:00.999999Z", None, low_inclusive=False))
    assert parsed.unknown == ()


def test_every_registry_parameter_is_now_understood() -> None:
    parsed = parse_search("Patient", [("family", "Martin"), ("nonsense", "1")], INDEXER)
    assert parsed.clauses == (StringClause("family", ("martin",)),)
    assert parsed.unknown == ("nonsense",)


def test_base_url_turns_our_absolute_references_into_type_and_id() -> None:
    params = [("subject", "https://fhir.example/fhir/Patient/p1")]
    ours = parse_search("Observation", params, INDEXER, base_url="https://fhir.example/fhir")
    assert ours.clauses == (ReferenceClause("subject", (ReferenceValue("Patient", "p1"),)),)
    foreign = parse_search("Observation", params, INDEXER)
    assert foreign.clauses == (ReferenceClause("subject", (ReferenceValue(
        None, None, url="https://fhir.example/fhir/Patient/p1"),)),)


def test_malformed_value_is_a_bad_parameter() -> None:
    with pytest.raises(FhirError) as caught:
        parse_search("Patient", [("_lastUpdated", "gtfoo")], INDEXER)
    assert caught.value.error is ErrorCode.BAD_PARAMETER


def test_result_parameters_for_the_search_interaction() -> None:
    assert {"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total",
            "_offset", "_format", "_pretty", "_cursor", "_contained",
            "_containedType", "_explain"} == RESULT_PARAMETERS


def test_supported_parameters_for_the_capability_statement() -> None:
    patient = {p.name: p for p in supported_parameters("Patient")}
    assert [p.name for p in supported_parameters("Patient")][:2] == ["_id", "_lastUpdated"]
    assert patient["identifier"].type == "token"
    assert patient["birthdate"].definition == "http://hl7.org/fhir/SearchParameter/individual-birthdate"
    observation = {p.name: p.type for p in supported_parameters("Observation")}
    assert observation["code-value-quantity"] == "composite"
    sequence = {p.name for p in supported_parameters("MolecularSequence")}
    assert "chromosome-window-coordinate" not in sequence  # three components, one %resource
    assert "near" not in {p.name for p in supported_parameters("Location")}  # special


def test_every_contact_point_parameter_reads_a_telecom_element() -> None:
    """The parser blinds the codes of parameters whose expression reads ``.telecom``; that
    must be exactly the parameters whose values are ContactPoints."""
    from fhir_server.search.fhirpath import compile_expression
    from fhir_server.search.registry import default_registry

    registry = default_registry()
    for resource_type in ("Patient", "Practitioner", "PractitionerRole", "Organization",
                          "RelatedPerson", "Person", "Location", "Endpoint", "CareTeam",
                          "OrganizationAffiliation", "HealthcareService"):
        for code, param in registry.params_for(resource_type).items():
            if param.expression is None or param.type != "token":
                continue
            compiled = compile_expression(param.expression, resource_type)
            kinds = {branch.value_type for branch in compiled.branches}
            assert ("ContactPoint" in kinds) == (".telecom" in param.expression), (
                resource_type, code, kinds)
