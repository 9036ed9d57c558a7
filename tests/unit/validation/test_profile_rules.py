"""Tests for fhir_server.validation.profile_rules: cardinality, fixed and pattern values, choice
types and slicing rules of the hand-written profiles in ``fixtures/``."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.errors import Issue, IssueType
from fhir_server.validation.messages import ValidationIssue
from fhir_server.validation.profile_rules import check_profile_rules
from fhir_server.validation.validator import ProfileValidator
from tests.unit.validation.factories import (
    INS_NIA,
    INS_NIR,
    PROFILE,
    a_nir,
    observation_for_profile,
    patient_for_profile,
)

PATIENT = f"{PROFILE}test-patient"
OBSERVATION = f"{PROFILE}test-observation"
RULES = frozenset({"cardinality", "fixed", "pattern", "type", "slicing"})


def rule_issues(validator: ProfileValidator, resource: dict[str, Any],
                profile: str) -> list[tuple[str, str, str]]:
    """(rule, expression, severity) of the profile-rule issues."""
    return [(i.rule or "", i.expression[0], i.severity)
            for i in validator.validate(resource, [profile])
            if isinstance(i, ValidationIssue) and i.rule in RULES]


def only(validator: ProfileValidator, resource: dict[str, Any], profile: str) -> ValidationIssue:
    issues = [i for i in validator.validate(resource, [profile])
              if isinstance(i, ValidationIssue) and i.rule in RULES]
    assert len(issues) == 1, issues
    return issues[0]


def test_valid_resources_pass(profile_validator: ProfileValidator) -> None:
    for resource, profile in ((patient_for_profile(), PATIENT),
                              (observation_for_profile(), OBSERVATION)):
        issues: tuple[Issue, ...] = profile_validator.validate(resource, [profile])
        assert [i for i in issues if i.severity != "information"] == [], issues


# --- cardinality -------------------------------------------------------------------------------

def test_element_required_by_the_profile(profile_validator: ProfileValidator) -> None:
    patient = patient_for_profile()
    del patient["birthDate"]
    issue = only(profile_validator, patient, PATIENT)
    assert issue.expression == ("Patient.birthDate",)
    assert issue.issue_type is IssueType.REQUIRED
    assert "is required by the profile" in issue.diagnostics
    assert "est obligatoire selon le profil" in issue.message_fr


def test_cardinality_inside_a_data_type(profile_validator: ProfileValidator) -> None:
    patient = patient_for_profile(name=[{"given": ["a", "b", "c"]}])
    assert rule_issues(profile_validator, patient, PATIENT) == [
        ("cardinality", "Patient.name[0].given", "error"),
        ("cardinality", "Patient.name[0].family", "error"),
    ]


def test_element_forbidden_by_the_profile(profile_validator: ProfileValidator) -> None:
    patient = patient_for_profile(photo=[{"url": "http://example.org/a.png"},
                                         {"url": "http://example.org/b.png"}])
    assert rule_issues(profile_validator, patient, PATIENT) == [
        ("cardinality", "Patient.photo[0]", "error"), ("cardinality", "Patient.photo[1]", "error")]


# --- fixed, pattern, types ---------------------------------------------------------------------

def test_fixed_value(profile_validator: ProfileValidator) -> None:
    issue = only(profile_validator, patient_for_profile(active=False), PATIENT)
    assert issue.expression == ("Patient.active",)
    assert issue.rule == "fixed" and issue.issue_type is IssueType.VALUE
    assert "must be exactly true" in issue.diagnostics and "found false" in issue.diagnostics
    assert "doit valoir exactement true" in issue.message_fr


def test_pattern_value_is_contained(profile_validator: ProfileValidator) -> None:
    extra = {"coding": [{"system": "http://example.org/other", "code": "x"},
                        {"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                         "code": "M", "display": "Married"}], "text": "marié"}
    assert rule_issues(profile_validator, patient_for_profile(maritalStatus=extra), PATIENT) == []
    wrong = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                         "code": "S"}]}
    issue = only(profile_validator, patient_for_profile(maritalStatus=wrong), PATIENT)
    assert issue.rule == "pattern" and issue.expression == ("Patient.maritalStatus",)
    assert "must contain" in issue.diagnostics and "doit contenir" in issue.message_fr


def test_choice_type_restricted_by_the_profile(profile_validator: ProfileValidator) -> None:
    assert rule_issues(profile_validator, patient_for_profile(deceasedBoolean=False),
                       PATIENT) == []
    issue = only(profile_validator, patient_for_profile(deceasedDateTime="2020-01-01"), PATIENT)
    assert issue.expression == ("Patient.deceased.ofType(dateTime)",)
    assert "type dateTime is not allowed" in issue.diagnostics


def test_rules_of_an_extension_definition_apply_to_its_slice(
        profile_validator: ProfileValidator) -> None:
    patient = patient_for_profile(extension=[{"url": f"{PROFILE}test-consent-extension",
                                              "valueString": "oui"}])
    issue = only(profile_validator, patient, PATIENT)
    assert issue.expression == ("Patient.extension[0].value.ofType(string)",)
    assert issue.rule == "type"


# --- slicing -----------------------------------------------------------------------------------

def test_slice_with_max_0(profile_validator: ProfileValidator) -> None:
    patient = patient_for_profile(identifier=[{"system": INS_NIR, "value": a_nir()},
                                              {"system": INS_NIA, "value": a_nir("7800175000012")}])
    issue = only(profile_validator, patient, PATIENT)
    assert issue.expression == ("Patient.identifier[1]",)
    assert "slice 'nia'" in issue.diagnostics and "la slice 'nia'" in issue.message_fr


def test_slice_max_and_its_children_rules(profile_validator: ProfileValidator) -> None:
    patient = patient_for_profile(identifier=[{"system": INS_NIR, "value": a_nir()},
                                              {"system": INS_NIR}])
    assert rule_issues(profile_validator, patient, PATIENT) == [
        ("slicing", "Patient.identifier", "error"),
        ("cardinality", "Patient.identifier[1].value", "error"),
    ]


def test_closed_slicing_refuses_unmatched_items(profile_validator: ProfileValidator) -> None:
    observation = observation_for_profile()
    observation["component"].append({"code": {"text": "pulse"}, "valueString": "72"})
    issue = only(profile_validator, observation, OBSERVATION)
    assert issue.expression == ("Observation.component[2]",)
    assert "matches none of the slices 'systolic', 'diastolic'" in issue.diagnostics


def test_required_slice_missing(profile_validator: ProfileValidator) -> None:
    observation = observation_for_profile()
    observation["component"] = observation["component"][1:]
    issue = only(profile_validator, observation, OBSERVATION)
    assert issue.expression == ("Observation.component",)
    assert issue.issue_type is IssueType.REQUIRED
    assert "slice 'systolic' has 0 item(s)" in issue.diagnostics


def test_ordered_slicing(profile_validator: ProfileValidator) -> None:
    observation = observation_for_profile()
    observation["component"].reverse()
    issue = only(profile_validator, observation, OBSERVATION)
    assert issue.expression == ("Observation.component[1]",)
    assert "order of the slices" in issue.diagnostics


def test_children_rules_of_a_type_slice(profile_validator: ProfileValidator) -> None:
    observation = observation_for_profile(valueQuantity={"value": 1})
    issue = only(profile_validator, observation, OBSERVATION)
    assert issue.expression == ("Observation.value.ofType(Quantity).system",)
    assert issue.rule == "cardinality"


def test_type_slicing_closed(profile_validator: ProfileValidator) -> None:
    observation = observation_for_profile()
    del observation["valueQuantity"]
    observation["valueString"] = "haute"
    issue = only(profile_validator, observation, OBSERVATION)
    assert issue.expression == ("Observation.value.ofType(string)",)


def test_exists_slicing_ordered(profile_validator: ProfileValidator) -> None:
    observation = observation_for_profile(identifier=[
        {"value": "local"}, {"value": "assigned", "assigner": {"display": "Labo"}}])
    issue = only(profile_validator, observation, OBSERVATION)
    assert issue.expression == ("Observation.identifier[1]",)


def test_profile_discriminator_on_extensions(profile_validator: ProfileValidator) -> None:
    good = {"url": f"{PROFILE}test-consent-extension", "valueBoolean": True}
    assert rule_issues(profile_validator, observation_for_profile(extension=[good]),
                       OBSERVATION) == []
    bad = {"url": f"{PROFILE}test-consent-extension", "valueString": "yes"}
    issue = only(profile_validator, observation_for_profile(extension=[bad]), OBSERVATION)
    assert issue.expression == ("Observation.extension[0]",)
    assert "matches none of the slices 'consent'" in issue.diagnostics


def test_profile_discriminator_on_reference_targets(profile_validator: ProfileValidator) -> None:
    observation = observation_for_profile(hasMember=[{"reference": "Observation/o2"},
                                                     {"reference": "QuestionnaireResponse/q"}])
    issue = only(profile_validator, observation, OBSERVATION)
    assert issue.expression == ("Observation.hasMember[1]",)


@pytest.mark.parametrize("rules", ["openAtEnd"])
def test_open_at_end(rules: str) -> None:
    sd: dict[str, Any] = {"url": "http://example.org/sd", "type": "Patient",
                          "derivation": "constraint", "snapshot": {"element": [
        {"id": "Patient", "path": "Patient"},
        {"id": "Patient.identifier", "path": "Patient.identifier", "type": [{"code": "Identifier"}],
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": rules}},
        {"id": "Patient.identifier:nir", "path": "Patient.identifier", "sliceName": "nir",
         "type": [{"code": "Identifier"}]},
        {"id": "Patient.identifier:nir.system", "path": "Patient.identifier.system",
         "fixedUri": INS_NIR}]}}
    validator = ProfileValidator([sd])
    patient: dict[str, Any] = {"resourceType": "Patient", "identifier": [
        {"system": "urn:other", "value": "1"}, {"system": INS_NIR, "value": a_nir()}]}
    walk = validator.walk(patient, "http://example.org/sd")
    (issue,) = check_profile_rules(walk)
    assert issue.expression == ("Patient.identifier[1]",)
    patient["identifier"].reverse()
    assert check_profile_rules(validator.walk(patient, "http://example.org/sd")) == []


def test_unevaluable_slicing_is_a_warning() -> None:
    sd: dict[str, Any] = {"url": "http://example.org/sd", "type": "Patient",
                          "derivation": "constraint", "snapshot": {"element": [
        {"id": "Patient", "path": "Patient"},
        {"id": "Patient.identifier", "path": "Patient.identifier", "type": [{"code": "Identifier"}],
         "slicing": {"discriminator": [{"type": "value", "path": "system.where(true)"}],
                     "rules": "open"}},
        {"id": "Patient.identifier:nir", "path": "Patient.identifier", "sliceName": "nir",
         "type": [{"code": "Identifier"}]}]}}
    validator = ProfileValidator([sd])
    patient = {"resourceType": "Patient", "identifier": [{"system": INS_NIR, "value": "1"}]}
    (issue,) = check_profile_rules(validator.walk(patient, "http://example.org/sd"))
    assert issue.severity == "warning" and issue.issue_type is IssueType.PROCESSING
    assert "Patient.identifier of the profile http://example.org/sd cannot be applied: slice " \
        "nir: unsupported discriminator path 'system.where(true)'" in issue.diagnostics
