"""Case resources: the guide's marks give its profiles; generic resources get none."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.ig import Example, load_guide
from fhir_server.validation.case_profiles import CASE_ANCHORS, CaseProfiles
from tests.support.factories import observation, patient

GUIDE = load_guide()
CASES = CaseProfiles.of_guide(GUIDE)
VALID = [e for e in GUIDE.examples if e.valid]
BASE = "https://fhir.pictaderm.com/StructureDefinition/"
UNMARKED = {"Patient", "RelatedPerson", "Practitioner", "Organization", "Coverage", "Bundle"}


def undeclared(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key != "meta"}


@pytest.mark.parametrize("valid", VALID, ids=lambda e: e.filename.rsplit("/", 1)[-1])
def test_each_valid_example_gets_the_profile_it_declares(valid: Example) -> None:
    resource = undeclared(valid.resource)
    assert CASES.intake_profiles(resource) == valid.profiles
    expected = () if resource["resourceType"] in UNMARKED else valid.profiles
    assert CASES.profiles(resource) == expected


def test_generic_resources_are_not_case_resources() -> None:
    task = {"resourceType": "Task", "status": "requested", "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code",
                                 "code": "fulfill"}]}}
    media = {"resourceType": "Media", "status": "completed",
             "modality": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                                      "code": "US"}]}, "content": {"url": "Binary/x"}}
    generic = [patient(), observation("Patient/p1"), task, media]
    assert [CASES.profiles(resource) for resource in generic] == [()] * len(generic)
    assert not CASES.is_intake(generic)


def test_a_mark_picks_between_two_profiles_of_a_type() -> None:
    consent = undeclared(next(e.resource for e in VALID
                              if e.filename.endswith("Consent-research-camille-martin.json")))
    assert CASES.profiles(consent) == (f"{BASE}pictaderm-consent-research",)
    scope_only = {**consent, "category": []}
    assert CASES.profiles(scope_only) == ()
    assert CASES.intake_profiles(scope_only) == (f"{BASE}pictaderm-consent-research",)
    bare = {"resourceType": "Consent", "status": "active"}
    assert CASES.intake_profiles(bare) == (f"{BASE}pictaderm-consent-exchange",)
    assert CASES.intake_profiles({"resourceType": "Binary"}) == ()


def test_a_case_task_or_service_request_makes_an_intake_bundle() -> None:
    anchors = [undeclared(e.resource) for e in VALID if e.resource["resourceType"] in CASE_ANCHORS]
    assert {a["resourceType"] for a in anchors} == CASE_ANCHORS
    for anchor in anchors:
        assert CASES.is_intake([patient(), anchor])
    photo = undeclared(next(e.resource for e in VALID if e.resource["resourceType"] == "Media"))
    assert CASES.profiles(photo) and not CASES.is_intake([patient(), photo])


def test_every_type_the_guide_profiles_has_an_intake_profile() -> None:
    assert CASES.profiled_types == {
        str(sd["type"]) for sd in GUIDE.structure_definitions.values()
        if sd["kind"] == "resource" and sd["type"] != "Extension"}
