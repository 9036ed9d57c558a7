"""Tests for fhir_server.validation.bindings: required bindings on code, Coding,
CodeableConcept and Quantity, in the core definitions and in profiles."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.errors import Issue, IssueType
from fhir_server.validation.bindings import check_bindings
from fhir_server.validation.messages import ValidationIssue
from fhir_server.validation.validator import ProfileValidator
from tests.unit.validation import examples
from tests.unit.validation.factories import (
    PROFILE,
    STATUS_SYSTEM,
    STATUS_VALUE_SET,
    coding,
    task_for_profile,
)

TEST_TASK = f"{PROFILE}test-task"


def binding_issues(issues: tuple[Issue, ...]) -> list[ValidationIssue]:
    return [i for i in issues if isinstance(i, ValidationIssue) and i.rule == "binding"]


def errors(issues: tuple[Issue, ...]) -> list[ValidationIssue]:
    return [i for i in binding_issues(issues) if i.severity == "error"]


# --- core required bindings --------------------------------------------------------------------

def test_task_status_bogus_fails(core_validator: ProfileValidator) -> None:
    (issue,) = errors(core_validator.validate(task_for_profile(status="bogus")))
    assert issue.expression == ("Task.status",)
    assert issue.issue_type is IssueType.CODE_INVALID
    assert "'bogus'" in issue.diagnostics and "task-status" in issue.diagnostics
    assert "n'appartient pas au jeu de valeurs" in issue.message_fr


def test_task_status_in_the_value_set_passes(core_validator: ProfileValidator) -> None:
    assert binding_issues(core_validator.validate(task_for_profile())) == []


def test_patient_gender_x_fails(core_validator: ProfileValidator) -> None:
    patient = examples.patient()
    patient["gender"] = "x"
    (issue,) = errors(core_validator.validate(patient))
    assert issue.expression == ("Patient.gender",)


def test_bindings_inside_data_types_and_nested_resources(core_validator: ProfileValidator) -> None:
    bundle = examples.bundle()
    patient = bundle["entry"][0]["resource"]
    patient["name"][0]["use"] = "nickname-ish"
    patient["telecom"][0]["system"] = "pigeon"
    bundle["entry"][1]["resource"]["valueQuantity"]["comparator"] = "<<"
    assert [i.expression[0] for i in errors(core_validator.validate(bundle))] == [
        "Bundle.entry[0].resource.name[0].use",
        "Bundle.entry[0].resource.telecom[0].system",
        "Bundle.entry[1].resource.value.ofType(Quantity).comparator",
    ]


def condition(**clinical_status: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": {"reference": "Patient/p1"},
            "clinicalStatus": clinical_status}


def test_codeable_concept_needs_one_coding_in_the_value_set(
        core_validator: ProfileValidator) -> None:
    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    good = condition(coding=[{"system": "http://snomed.info/sct", "code": "1"},
                             {"system": clinical, "code": "active"}])
    assert errors(core_validator.validate(good)) == []
    bad = condition(coding=[{"system": clinical, "code": "asleep"}])
    (issue,) = errors(core_validator.validate(bad))
    assert issue.expression == ("Condition.clinicalStatus",)
    assert "none of the codes" in issue.diagnostics


def test_codeable_concept_with_text_only_fails_a_required_binding(
        core_validator: ProfileValidator) -> None:
    (issue,) = errors(core_validator.validate(condition(text="active")))
    assert issue.issue_type is IssueType.REQUIRED
    assert "text alone is not enough" in issue.diagnostics
    assert "un texte seul ne suffit pas" in issue.message_fr


def test_extensible_and_preferred_bindings_give_nothing(core_validator: ProfileValidator) -> None:
    patient = examples.patient()
    patient["maritalStatus"] = {"coding": [{"system": "http://example.org/x", "code": "odd"}]}
    patient["communication"] = [{"language": {"coding": [{"system": "urn:ietf:bcp:47",
                                                           "code": "xx-odd"}]}}]
    assert binding_issues(core_validator.validate(patient)) == []


def test_code_from_a_system_not_held_is_information_only(core_validator: ProfileValidator) -> None:
    patient = examples.patient()
    patient["photo"] = [{"contentType": "image/jpeg", "url": "http://example.org/p.jpg"}]
    (issue,) = binding_issues(core_validator.validate(patient))
    assert issue.severity == "information"
    assert issue.expression == ("Patient.photo[0].contentType",)
    assert "not checked" in issue.diagnostics and "pas été vérifié" in issue.message_fr


def test_unknown_value_set_is_information_only(core_validator: ProfileValidator) -> None:
    sequence = {"resourceType": "MolecularSequence", "coordinateSystem": 0,
                "structureVariant": [{"variantType": {"coding": [
                    {"system": "http://loinc.org", "code": "LA6692-3"}]}}]}
    (issue,) = binding_issues(core_validator.validate(sequence))
    assert issue.severity == "information"
    assert "LL379-9" in issue.diagnostics


# --- profile bindings --------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "valid"), [
    ("awaiting-claim", True), ("done", True), ("awaiting-clarification", False),
    ("escalated", False)])
def test_profile_binding_on_codeable_concept(profile_validator: ProfileValidator, code: str,
                                            valid: bool) -> None:
    task = task_for_profile(businessStatus=coding(code))
    found = errors(profile_validator.validate(task, [TEST_TASK]))
    assert (found == []) is valid
    if not valid:
        assert found[0].expression == ("Task.businessStatus",)
        assert STATUS_VALUE_SET in found[0].diagnostics


def test_profile_binding_on_coding(profile_validator: ProfileValidator) -> None:
    task = task_for_profile(performerType=[coding("done"), coding("escalated")])
    (issue,) = errors(profile_validator.validate(task, [TEST_TASK]))
    assert issue.expression == ("Task.performerType[1].coding[0]",)
    assert f"'{STATUS_SYSTEM}|escalated'" in issue.diagnostics


def test_profile_extensible_binding_gives_nothing(profile_validator: ProfileValidator) -> None:
    task = task_for_profile(priority="urgent")
    assert binding_issues(profile_validator.validate(task, [TEST_TASK])) == []


def test_the_layer_reads_a_walk_of_a_core_or_profile_snapshot(
        profile_validator: ProfileValidator) -> None:
    task = task_for_profile(status="bogus", businessStatus=coding("escalated"))
    core_walk = profile_validator.walk(task)
    (issue,) = check_bindings(core_walk, profile_validator.terminology)
    assert issue.expression == ("Task.status",)
    profile_walk = profile_validator.walk(task, TEST_TASK)
    (issue,) = check_bindings(profile_walk, profile_validator.terminology)
    assert issue.expression == ("Task.businessStatus",)
