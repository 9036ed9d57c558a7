"""Tests for fhir_server.validation.references: the resource types a Reference may point at."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.errors import Issue, IssueType
from fhir_server.validation.messages import ValidationIssue
from fhir_server.validation.references import reference_target_type
from fhir_server.validation.validator import ProfileValidator
from tests.unit.validation import examples
from tests.unit.validation.factories import PROFILE, patient_for_profile, task_for_profile


def targets(issues: tuple[Issue, ...]) -> list[ValidationIssue]:
    return [i for i in issues if isinstance(i, ValidationIssue) and i.rule == "reference-target"]


@pytest.mark.parametrize(("reference", "expected"), [
    ({"reference": "Patient/p1"}, "Patient"),
    ({"reference": "Patient/p1/_history/3"}, "Patient"),
    ({"reference": "https://fhir.example.org/r4/Practitioner/a.b-c"}, "Practitioner"),
    ({"reference": "Nonsense/1"}, None),
    ({"reference": "#org1"}, "Organization"),
    ({"reference": "#"}, "Patient"),
    ({"reference": "#missing"}, None),
    ({"reference": "urn:uuid:0c3a9a3e-6f5b-4f7e-9a55-1f4c6c2b8d11"}, "Practitioner"),
    ({"reference": "urn:uuid:ffffffff-6f5b-4f7e-9a55-1f4c6c2b8d11"}, None),
    ({"type": "Device", "identifier": {"value": "x"}}, "Device"),
    ({"type": "http://hl7.org/fhir/StructureDefinition/Device"}, "Device"),
    ({"identifier": {"value": "x"}}, None),
])
def test_reference_target_type(reference: dict[str, Any], expected: str | None) -> None:
    found = reference_target_type(
        reference, contained={"org1": "Organization"},
        bundle={"urn:uuid:0c3a9a3e-6f5b-4f7e-9a55-1f4c6c2b8d11": "Practitioner"},
        container="Patient")
    assert found == expected


def test_core_target_types(core_validator: ProfileValidator) -> None:
    patient = examples.patient()
    patient["generalPractitioner"] = [{"reference": "Practitioner/1"},
                                      {"reference": "Patient/2"}]
    (issue,) = targets(core_validator.validate(patient))
    assert issue.expression == ("Patient.generalPractitioner[1]",)
    assert issue.issue_type is IssueType.VALUE
    assert "refers to a Patient" in issue.diagnostics
    assert "Organization | Practitioner | PractitionerRole" in issue.diagnostics
    assert "désigne une ressource Patient" in issue.message_fr


def test_any_resource_is_not_checked(core_validator: ProfileValidator) -> None:
    task = task_for_profile(focus={"reference": "Basic/1"}, **{"for": {"reference": "Group/1"}})
    assert targets(core_validator.validate(task)) == []


def test_contained_target(core_validator: ProfileValidator) -> None:
    patient = examples.patient()
    patient["contained"] = [{"resourceType": "Device", "id": "d1", "status": "active"}]
    patient["managingOrganization"] = {"reference": "#d1"}
    (issue,) = targets(core_validator.validate(patient))
    assert issue.expression == ("Patient.managingOrganization",)
    assert "refers to a Device" in issue.diagnostics


def test_bundle_entry_targets_by_full_url(core_validator: ProfileValidator) -> None:
    bundle = examples.bundle()
    observation = bundle["entry"][1]["resource"]
    observation["performer"] = [{"reference": "urn:uuid:0c3a9a3e-6f5b-4f7e-9a55-1f4c6c2b8d11"}]
    assert targets(core_validator.validate(bundle)) == []  # the Patient entry: allowed
    observation["device"] = {"reference": "urn:uuid:0c3a9a3e-6f5b-4f7e-9a55-1f4c6c2b8d11"}
    (issue,) = targets(core_validator.validate(bundle))
    assert issue.expression == ("Bundle.entry[1].resource.device",)


def test_profile_target_profiles_narrow_the_types(profile_validator: ProfileValidator) -> None:
    patient = patient_for_profile(generalPractitioner=[{"reference": "Practitioner/1"}])
    (issue,) = targets(profile_validator.validate(patient, [f"{PROFILE}test-patient"]))
    assert issue.expression == ("Patient.generalPractitioner[0]",)
    assert "only PractitionerRole" in issue.diagnostics
    task = task_for_profile(owner={"reference": "Organization/1"})
    (issue,) = targets(profile_validator.validate(task, [f"{PROFILE}test-task"]))
    assert issue.expression == ("Task.owner",)


def test_a_target_profile_not_known_is_not_checked() -> None:
    def element(name: str, target: str) -> dict[str, Any]:
        return {"id": f"Task.{name}", "path": f"Task.{name}",
                "type": [{"code": "Reference", "targetProfile": [target]}]}
    sd = {"url": "http://example.org/sd", "type": "Task", "derivation": "constraint",
          "snapshot": {"element": [
              {"id": "Task", "path": "Task"},
              element("focus", "http://example.org/unknown-profile"),
              element("for", "http://hl7.org/fhir/StructureDefinition/Device")]}}
    validator = ProfileValidator([sd])
    task = task_for_profile(focus={"reference": "Patient/1"}, **{"for": {"reference": "Patient/1"}})
    (issue,) = targets(validator.validate(task, ["http://example.org/sd"]))
    assert issue.expression == ("Task.for",)
