"""Tests for fhir_server.validation.messages: every issue in French and English, rendered in an
OperationOutcome, and the structure layer's sentences translated."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.errors import Issue, IssueType
from fhir_server.validation.messages import (
    TRANSLATION_EXTENSION,
    Text,
    ValidationIssue,
    french_structure_message,
    issue_json,
    make_issue,
    translated,
)
from fhir_server.validation.validator import ProfileValidator
from tests.unit.validation import examples
from tests.unit.validation.factories import (
    INS_NIA,
    INS_NIR,
    PROFILE,
    a_nir,
    observation_for_profile,
    patient_for_profile,
    task_for_profile,
    wrong_key,
)
from tests.unit.validation.messages_corpus import STRUCTURE_SENTENCES

PROFILE_TEXT = Text(en="in English", fr="en français")
PROFILE_TEXT_WITH_PARAM = Text(en="it is {word}", fr="il est {word}")


def failing_resources() -> list[tuple[dict[str, Any], str]]:
    patient = patient_for_profile(
        identifier=[{"system": INS_NIR, "value": wrong_key(a_nir())},
                    {"system": INS_NIA, "value": a_nir("7800175000012")}],
        active=False, birthDate="1850-01-01", deceasedDateTime="2020-01-01",
        generalPractitioner=[{"reference": "Practitioner/1"}])
    patient["name"].append({"id": "n"})
    observation = observation_for_profile()
    observation["component"].reverse()
    observation["component"].append({"code": {"text": "x"}, "valueString": "x"})
    return [(patient, f"{PROFILE}test-patient"), (observation, f"{PROFILE}test-observation"),
            (task_for_profile(status="bogus", businessStatus={"text": "x"}),
             f"{PROFILE}test-task"),
            (patient_for_profile(), f"{PROFILE}unknown")]


def test_every_issue_has_both_languages_and_an_expression(
        profile_validator: ProfileValidator) -> None:
    rules = set()
    for resource, profile in failing_resources():
        for issue in profile_validator.validate(resource, [profile]):
            assert isinstance(issue, ValidationIssue)
            location = issue.expression[0]
            assert issue.diagnostics.startswith(f"{location}: ")
            assert issue.message_fr.startswith(f"{location} : ")
            english = issue.diagnostics[len(location) + 2:]
            french = issue.message_fr[len(location) + 3:]
            assert english and french and english != french, issue
            rules.add(issue.rule)
    assert {"binding", "ele-1", "fixed", "type", "slicing", "reference-target",
            "nir-definitive", "profile", "test-pat-1"} <= rules


def test_structure_issues_are_translated(profile_validator: ProfileValidator) -> None:
    patient = examples.patient()
    patient["gender"] = ["female"]
    patient["foo"] = 1
    issues = profile_validator.validate(patient)
    assert [i.expression for i in issues] == [("Patient.gender",), ("Patient.foo",)]
    first, second = issues
    assert isinstance(first, ValidationIssue) and isinstance(second, ValidationIssue)
    assert first.message_fr == ("Patient.gender : doit être une valeur unique, pas un tableau "
                                "(cardinalité maximale 1)")
    assert second.message_fr == "Patient.foo : élément inconnu « foo »"
    assert first.rule == "structure" and first.issue_type is IssueType.STRUCTURE


@pytest.mark.parametrize(("english", "french"), STRUCTURE_SENTENCES)
def test_each_structure_sentence_has_its_french(english: str, french: str) -> None:
    assert french_structure_message(english) == french


def test_structure_corpus_needs_no_fallback(core_validator: ProfileValidator) -> None:
    broken: list[dict[str, Any]] = [
        {"id": "x"}, {"resourceType": "Patients"},
        {"resourceType": "Observation", "valueString": "a", "valueInteger": 1},
        {"resourceType": "Patient", "name": [{"given": ["a"], "_given": {"id": "g"}}]},
        {"resourceType": "Patient", "name": [{"given": ["a", "b"], "_given": [None]}]},
        {"resourceType": "Patient", "name": [{"_given": [None]}]},
        {"resourceType": "Patient", "gender": None, "name": {}, "address": [], "meta": "m",
         "contact": [{}], "birthDate": "2023-02-30", "multipleBirthInteger": 2**40,
         "active": "yes", "text": {"status": "generated", "div": "x"}},
        {"resourceType": "Patient", "birthDate": "tomorrow", "language": ""},
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": "x"}]},
    ]
    count = 0
    for resource in broken:
        for issue in core_validator.validate(resource):
            assert isinstance(issue, ValidationIssue)
            assert "erreur de structure" not in issue.message_fr, issue
            count += 1
    assert count >= 18


def test_an_unknown_structure_sentence_falls_back_to_the_english() -> None:
    issue = translated(Issue(diagnostics="Patient.x: something new", expression=("Patient.x",)))
    assert issue.message_fr == "Patient.x : erreur de structure : something new"


def test_issue_json_carries_french_details_with_the_english_translation() -> None:
    issue = make_issue(PROFILE_TEXT, "Patient.identifier[0].value", rule="x",
                       issue_type=IssueType.BUSINESS_RULE)
    rendered = issue_json(issue)
    assert rendered["severity"] == "error" and rendered["code"] == "business-rule"
    assert rendered["expression"] == ["Patient.identifier[0].value"]
    assert rendered["diagnostics"] == "Patient.identifier[0].value: in English"
    assert rendered["details"]["text"] == "Patient.identifier[0].value : en français"
    (translation,) = rendered["details"]["_text"]["extension"]
    assert translation["url"] == TRANSLATION_EXTENSION
    assert translation["extension"] == [
        {"url": "lang", "valueCode": "en"},
        {"url": "content", "valueString": "Patient.identifier[0].value: in English"}]


def test_issue_json_of_a_plain_issue_has_no_details() -> None:
    rendered = issue_json(Issue(diagnostics="x", severity="warning"))
    assert rendered == {"severity": "warning", "code": "invalid", "diagnostics": "x"}


def test_french_parameters_replace_english_ones() -> None:
    issue = make_issue(PROFILE_TEXT_WITH_PARAM, "Task", word="late", french={"word": "tard"})
    assert issue.diagnostics == "Task: it is late"
    assert issue.message_fr == "Task : il est tard"
