"""The fast FHIRPath subset: each expression form, typed strands, and the fhirpathpy fallback."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.search.fhirpath import (
    branch_root,
    compile_expression,
    compile_with_fhirpathpy,
    is_a,
    reference_type,
    union_branches,
)

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
    "subject": {"reference": "Patient/p1"},
    "performer": [{"reference": "Practitioner/d1"},
                  {"reference": "https://fhir.example.fr/fhir/Patient/p2/_history/3"},
                  {"reference": "urn:uuid:5b0a2a5e-4a0c-4b8e-9d7e-0c5a1c1e2f3a"},
                  {"reference": "#contained-1"},
                  {"identifier": {"value": "x"}}],
    "effectivePeriod": {"start": "2024-03-05"},
    "valueQuantity": {"value": 72, "unit": "/min"},
    "component": [{"code": {"text": "a"}, "valueString": "first"},
                  {"code": {"text": "b"}, "valueQuantity": {"value": 1.5}}],
    "meta": {"tag": [{"code": "t1"}], "profile": ["http://example.org/p"]},
}


def _fast(expression: str, resource_type: str) -> Any:
    compiled = compile_expression(expression, resource_type)
    assert compiled.fast, expression
    return compiled


def test_a_dotted_path_flattens_repeating_elements() -> None:
    patient = {"resourceType": "Patient",
               "name": [{"given": ["Léa", "Anne"]}, {"family": "Martin", "given": ["Zoé"]}]}
    assert _fast("Patient.name.given", "Patient").evaluate(patient) == ["Léa", "Anne", "Zoé"]
    assert _fast("Patient.name.family", "Patient").evaluate(patient) == ["Martin"]
    assert _fast("Patient.birthDate", "Patient").evaluate(patient) == []


def test_a_path_reads_through_content_references() -> None:
    questionnaire = {"resourceType": "Questionnaire",
                     "item": [{"linkId": "1", "item": [{"linkId": "1.1"}]}]}
    compiled = _fast("Questionnaire.item.item.linkId", "Questionnaire")
    assert compiled.evaluate(questionnaire) == ["1.1"]


def test_strands_carry_the_fhir_type_of_their_values() -> None:
    compiled = _fast("Observation.code | Observation.subject", "Observation")
    assert [b.value_type for b in compiled.branches] == ["CodeableConcept", "Reference"]


def test_a_choice_element_without_as_gives_one_strand_per_type() -> None:
    compiled = _fast("Observation.effective", "Observation")
    assert {b.value_type for b in compiled.branches} == {"dateTime", "Period", "Timing",
                                                         "instant"}
    assert compiled.evaluate(OBSERVATION) == [{"start": "2024-03-05"}]


@pytest.mark.parametrize("expression", [
    "Observation.value as Quantity",
    "(Observation.value as Quantity)",
    "Observation.value.as(Quantity)",
    "Observation.value.ofType(Quantity)",
])
def test_as_and_of_type_pick_the_typed_key_of_a_choice(expression: str) -> None:
    compiled = _fast(expression, "Observation")
    assert [b.value_type for b in compiled.branches] == ["Quantity"]
    assert compiled.evaluate(OBSERVATION) == [{"value": 72, "unit": "/min"}]


def test_as_a_type_the_choice_does_not_hold_gives_nothing() -> None:
    assert _fast("Observation.value as string", "Observation").evaluate(OBSERVATION) == []
    assert _fast("(Observation.value as CodeableConcept).text", "Observation").branches[0] \
        .value_type == "string"


def test_as_on_a_repeating_backbone_reads_each_item() -> None:
    compiled = _fast("(Observation.component.value as Quantity)", "Observation")
    assert compiled.evaluate(OBSERVATION) == [{"value": 1.5}]


def test_type_names_match_case_insensitively_and_include_specialisations() -> None:
    assert is_a("dateTime", "DateTime")
    assert is_a("Age", "Quantity")
    assert not is_a("Quantity", "Age")
    compiled = _fast("Condition.onset.as(Quantity)", "Condition")
    assert [b.value_type for b in compiled.branches] == ["Age"]


def test_where_resolve_is_keeps_references_to_that_type() -> None:
    performers = _fast("Observation.performer.where(resolve() is Patient)", "Observation")
    assert performers.evaluate(OBSERVATION) == [
        {"reference": "https://fhir.example.fr/fhir/Patient/p2/_history/3"}]
    subject = _fast("Observation.subject.where(resolve() is Patient)", "Observation")
    assert subject.evaluate(OBSERVATION) == [{"reference": "Patient/p1"}]
    assert _fast("Observation.subject.where(resolve() is Group)", "Observation") \
        .evaluate(OBSERVATION) == []


def test_where_with_an_equality_filters_on_a_child() -> None:
    person = {"resourceType": "Person",
              "telecom": [{"system": "phone", "value": "0601"}, {"system": "email", "value": "a@b"},
                          {"value": "no-system"}]}
    compiled = _fast("Person.telecom.where(system='email')", "Person")
    assert compiled.evaluate(person) == [{"system": "email", "value": "a@b"}]
    artifacts = _fast("Library.relatedArtifact.where(type='depends-on').resource", "Library")
    library = {"resourceType": "Library", "relatedArtifact": [
        {"type": "depends-on", "resource": "http://example.org/Library/a"},
        {"type": "composed-of", "resource": "http://example.org/Library/b"}]}
    assert artifacts.evaluate(library) == ["http://example.org/Library/a"]
    assert artifacts.branches[0].value_type == "canonical"


@pytest.mark.parametrize(("patient", "expected"), [
    ({}, [False]),
    ({"deceasedBoolean": False}, [False]),
    ({"deceasedBoolean": True}, [True]),
    ({"deceasedDateTime": "2020-01-01"}, [True]),
])
def test_exists_and_not_equal_follow_fhirpath_logic(patient: dict[str, Any],
                                                      expected: list[bool]) -> None:
    compiled = _fast("Patient.deceased.exists() and Patient.deceased != false", "Patient")
    assert [b.value_type for b in compiled.branches] == ["boolean"]
    assert compiled.evaluate({"resourceType": "Patient", **patient}) == expected


def test_an_indexer_takes_one_item() -> None:
    bundle = {"resourceType": "Bundle", "type": "document",
              "entry": [{"resource": {"resourceType": "Composition", "id": "c1"}},
                        {"resource": {"resourceType": "Patient", "id": "p1"}}]}
    compiled = _fast("Bundle.entry[0].resource", "Bundle")
    assert compiled.evaluate(bundle) == [{"resourceType": "Composition", "id": "c1"}]


def test_resource_and_domain_resource_roots_read_the_resource_itself() -> None:
    assert _fast("Resource.meta.tag", "Observation").evaluate(OBSERVATION) == [{"code": "t1"}]
    assert _fast("DomainResource.meta.profile", "Observation").evaluate(OBSERVATION) == \
        ["http://example.org/p"]


def test_a_path_without_a_type_starts_at_the_resource() -> None:
    plan = {"resourceType": "InsurancePlan", "name": "Mutuelle", "alias": ["MX", "M-X"]}
    assert _fast("name | alias", "InsurancePlan").evaluate(plan) == ["Mutuelle", "MX", "M-X"]


def test_a_branch_of_another_type_yields_nothing() -> None:
    compiled = _fast("Practitioner.name", "Patient")
    assert compiled.branches == ()


def test_malformed_data_gives_no_values_rather_than_an_error() -> None:
    broken: dict[str, Any] = {"resourceType": "Patient", "name": "not-a-list",
                              "telecom": [None, 3, {}]}
    assert _fast("Patient.name.family", "Patient").evaluate(broken) == []
    assert _fast("Patient.telecom.where(system='email')", "Patient").evaluate(broken) == []


def test_expressions_outside_the_subset_fall_back_to_fhirpathpy() -> None:
    patient = {"resourceType": "Patient", "name": [{"given": ["Léa", "Anne"]}]}
    compiled = compile_expression("Patient.name.given.first()", "Patient")
    assert not compiled.fast
    assert [b.value_type for b in compiled.branches] == [None]
    assert compiled.evaluate(patient) == ["Léa"]


def test_the_fallback_resolves_references_by_their_type() -> None:
    compiled = compile_expression("Observation.performer.where(resolve() is Patient).first()",
                                  "Observation")
    assert not compiled.fast
    assert compiled.evaluate(OBSERVATION) == [
        {"reference": "https://fhir.example.fr/fhir/Patient/p2/_history/3"}]


def test_the_fallback_reads_resource_roots_and_survives_evaluation_errors() -> None:
    tags = compile_expression("Resource.meta.tag.code.first()", "Observation")
    assert tags.evaluate(OBSERVATION) == ["t1"]
    singleton = compile_expression("Observation.component.code.text.upper()", "Observation")
    assert not singleton.fast
    assert singleton.evaluate(OBSERVATION) == []


def test_union_branches_respect_parentheses_and_quotes() -> None:
    assert union_branches("a.b | (c as X) | d.where(x = 'p|q') | (e | f).g") == (
        "a.b", "(c as X)", "d.where(x = 'p|q')", "(e | f).g")
    assert branch_root("((Observation.value as Quantity))") == "Observation"
    assert branch_root("name") == "name"


@pytest.mark.parametrize(("reference", "expected"), [
    ("Patient/p1", "Patient"),
    ("Patient/p1/_history/2", "Patient"),
    ("https://fhir.example.fr/fhir/Practitioner/d1", "Practitioner"),
    ("urn:uuid:5b0a2a5e-4a0c-4b8e-9d7e-0c5a1c1e2f3a", None),
    ("#contained-1", None),
    ("NotAType/x", None),
    ("Patient/", None),
])
def test_reference_type(reference: str, expected: str | None) -> None:
    assert reference_type(reference) == expected


def test_compiling_is_done_once_per_expression_and_type() -> None:
    first = compile_expression("Patient.name.family", "Patient")
    assert compile_expression("Patient.name.family", "Patient") is first



def test_where_equality_on_a_repeating_child_needs_exactly_one_equal_value() -> None:
    expression = "Patient.name.where(given = 'Léa').family"
    patient = {"resourceType": "Patient", "name": [
        {"given": ["Léa"], "family": "Martin"},
        {"given": ["Léa", "Anne"], "family": "Durand"},
        {"given": ["Zoé"], "family": "Petit"}]}
    assert _fast(expression, "Patient").evaluate(patient) == ["Martin"]
    assert compile_with_fhirpathpy(expression, "Patient")(patient) == ["Martin"]


def test_where_against_a_string_keeps_only_a_single_equal_string() -> None:
    """``system = 'phone'``: a one-item list compares by its item; two items, another type or
    another case never equal, as in fhirpathpy."""
    expression = "Person.telecom.where(system = 'phone').value"
    person = {"resourceType": "Person", "telecom": [
        {"system": ["phone"], "value": "one-item list"}, {"system": ["phone", "sms"], "value": "2"},
        {"system": True, "value": "boolean"}, {"system": "phone", "value": "string"},
        {"system": "Phone", "value": "other case"}, "phone", None]}
    assert _fast(expression, "Person").evaluate(person) == ["one-item list", "string"]
    assert compile_with_fhirpathpy(expression, "Person")(person) == ["one-item list", "string"]


def test_a_two_key_path_reads_each_item_and_skips_what_is_not_an_element() -> None:
    expression = "Patient.name.given"
    patient = {"resourceType": "Patient", "name": [
        {"given": ["Léa", "Anne"]}, "not an element", {"given": "Zoé"}, {"family": "Petit"},
        None, [{"given": ["nested list"]}]]}
    assert _fast(expression, "Patient").evaluate(patient) == ["Léa", "Anne", "Zoé"]
    assert compile_with_fhirpathpy(expression, "Patient")(patient) == ["Léa", "Anne", "Zoé"]
    assert _fast(expression, "Patient").evaluate({"resourceType": "Patient",
                                                  "name": {"given": ["Léa"]}}) == ["Léa"]
    assert _fast(expression, "Patient").evaluate({"resourceType": "Patient"}) == []
