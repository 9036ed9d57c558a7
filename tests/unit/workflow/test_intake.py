"""Intake rules on the guide's example cases, each rule broken on purpose."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhir_server.workflow.intake import (
    INS_NIA,
    MAX_PHOTO_BYTES,
    CaseFacts,
    Photo,
    intake_issues,
    is_image,
    photo_head,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "profiles" / "examples"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(120)
REQUEST_DAY = date(2026, 11, 20)


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return loaded


def skin_case() -> CaseFacts:
    return CaseFacts(
        request_date=REQUEST_DAY, service_request=example("ServiceRequest-skin-camille-martin"),
        patient=example("Patient-camille-martin"),
        coverages=(example("Coverage-camille-martin"),),
        consents=(example("Consent-exchange-camille-martin"),
                  example("Consent-research-camille-martin")),
        questionnaire_response=example("QuestionnaireResponse-skin-camille-martin"),
        media=(example("Media-skin-camille-martin-1"),),
        photos=(Photo(0, JPEG, 2_000_000),),
        supporting_types=("QuestionnaireResponse", "Media"),
        requester_role=example("PractitionerRole-pharmacist-claire-dubois"),
        requester_organization=example("Organization-pharmacie-du-centre"))


def mole_case_of_a_minor() -> CaseFacts:
    return CaseFacts(
        request_date=REQUEST_DAY, service_request=example("ServiceRequest-mole-lucas-bernard"),
        patient=example("Patient-lucas-bernard"),
        related_persons=(example("RelatedPerson-thomas-bernard"),),
        coverages=(example("Coverage-lucas-bernard"),),
        consents=(example("Consent-exchange-lucas-bernard"),),
        questionnaire_response=example("QuestionnaireResponse-mole-lucas-bernard"),
        media=(example("Media-mole-lucas-bernard-overview"),
               example("Media-mole-lucas-bernard-dermoscopy")),
        photos=(Photo(0, JPEG, 1_000), Photo(1, JPEG, 1_000)),
        supporting_types=("QuestionnaireResponse", "Media", "Media"),
        requester_role=example("PractitionerRole-pharmacist-claire-dubois"),
        requester_organization=example("Organization-pharmacie-du-centre"))


def only_rule(facts: CaseFacts) -> tuple[str, str, str]:
    """The single issue found: its location, English and French messages."""
    (issue,) = intake_issues(facts)
    assert issue.issue_type.value == "business-rule"
    return issue.expression[0], issue.diagnostics, issue.message_fr


def with_nir(value: str) -> dict[str, Any]:
    patient = example("Patient-camille-martin")
    patient["identifier"][0]["value"] = value
    return patient


def keyed(first13: str) -> str:
    return first13 + f"{97 - int(first13) % 97:02d}"


def test_the_examples_pass() -> None:
    assert intake_issues(skin_case()) == ()
    assert intake_issues(mole_case_of_a_minor()) == ()


def test_an_nia_alone_is_refused_as_a_provisional_nir() -> None:
    patient = example("Patient-camille-martin")
    patient["identifier"][0]["system"] = INS_NIA
    where, english, french = only_rule(replace(skin_case(), patient=patient))
    assert where == "Patient.identifier"
    assert "NIR provisoire : téléexpertise impossible" in french
    assert "definitive NIR" in english


def test_a_provisional_nir_in_the_ins_nir_slice_is_refused() -> None:
    where, english, _ = only_rule(replace(skin_case(), patient=with_nir(keyed("7850375056123"))))
    assert where == "Patient.identifier[0].value"
    assert "definitive" in english


def test_a_minor_needs_the_parents_nir_and_the_parent() -> None:
    child = example("Patient-lucas-bernard")
    without_nss = {**child, "identifier": []}
    where, _, french = only_rule(replace(mole_case_of_a_minor(), patient=without_nss))
    assert where == "Patient.identifier" and "mineur" in french
    where, _, _ = only_rule(replace(mole_case_of_a_minor(), related_persons=()))
    assert where == "RelatedPerson.identifier"


def test_an_adult_without_nir_is_refused() -> None:
    adult = {**example("Patient-lucas-bernard"), "birthDate": "1990-01-01"}
    where, _, _ = only_rule(replace(mole_case_of_a_minor(), patient=adult))
    assert where == "Patient.identifier"


@pytest.mark.parametrize("change", [
    {"status": "cancelled"},
    {"period": {"start": "2025-01-01", "end": "2025-12-31"}},
    {"period": {"start": "2026-11-21"}},
])
def test_coverage_must_be_active_on_the_request_date(change: dict[str, Any]) -> None:
    coverage = {**example("Coverage-camille-martin"), **change}
    where, english, french = only_rule(replace(skin_case(), coverages=(coverage,)))
    assert where == "Coverage" and "2026-11-20" in english and "droits" in french


def test_an_open_ended_coverage_counts() -> None:
    coverage = {**example("Coverage-camille-martin"), "period": {"start": "2020-01-01"}}
    assert intake_issues(replace(skin_case(), coverages=(coverage,))) == ()


def test_the_exchange_consent_must_be_given() -> None:
    research_only = (example("Consent-research-camille-martin"),)
    assert only_rule(replace(skin_case(), consents=research_only))[0] == "Consent"
    denied = copy.deepcopy(example("Consent-exchange-camille-martin"))
    denied["provision"]["type"] = "deny"
    assert only_rule(replace(skin_case(), consents=(denied,)))[0] == "Consent"


def test_dermoscopy_belongs_to_mole_cases() -> None:
    dermoscopic = example("Media-mole-lucas-bernard-dermoscopy")
    skin_with_dermoscopy = replace(skin_case(), media=(*skin_case().media, dermoscopic))
    where, _, french = only_rule(skin_with_dermoscopy)
    assert where == "Media.modality" and "dermoscopie" in french
    authorised = copy.deepcopy(example("Organization-pharmacie-du-centre"))
    authorised["extension"][0]["valueBoolean"] = True
    assert intake_issues(replace(skin_with_dermoscopy,
                                 requester_organization=authorised)) == ()
    overview_only = replace(mole_case_of_a_minor(),
                            media=(example("Media-mole-lucas-bernard-overview"),))
    assert only_rule(overview_only)[0] == "Media.modality"


def test_supporting_info_and_photos() -> None:
    observation = replace(skin_case(), supporting_types=("QuestionnaireResponse", "Observation"))
    where, english, _ = only_rule(observation)
    assert where == "ServiceRequest.supportingInfo[1]" and "Observation" in english
    pdf = replace(skin_case(), photos=(Photo(0, b"%PDF-1.7\n" + bytes(130), 5000),))
    assert only_rule(pdf)[0] == "Media[0].content"
    huge = replace(skin_case(), photos=(Photo(0, JPEG, MAX_PHOTO_BYTES + 1),))
    assert "MB" in only_rule(huge)[1]


def test_the_requester_is_an_active_pharmacist_of_an_active_pharmacy() -> None:
    inactive = {**example("PractitionerRole-pharmacist-claire-dubois"), "active": False}
    assert only_rule(replace(skin_case(), requester_role=inactive))[0] == \
        "ServiceRequest.requester"
    closed = {**example("Organization-pharmacie-du-centre"), "active": False}
    assert only_rule(replace(skin_case(), requester_organization=closed))[0] == \
        "ServiceRequest.requester"
    doctor = example("PractitionerRole-tier-1-julien-moreau")
    assert only_rule(replace(skin_case(), requester_role=doctor))[0] == \
        "ServiceRequest.requester"


def test_image_signatures() -> None:
    assert is_image(JPEG)
    assert is_image(b"\x89PNG\r\n\x1a\n" + bytes(10))
    assert is_image(b"\x00\x00\x00\x18ftypheic" + bytes(10))
    assert is_image(bytes(128) + b"DICM")
    assert not is_image(b"GIF89a" + bytes(200))
    assert photo_head("/9j/4AAQ") == (b"\xff\xd8\xff\xe0\x00\x10", 6)
    assert photo_head("not base64!") is None
