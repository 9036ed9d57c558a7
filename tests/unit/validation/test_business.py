"""Tests for fhir_server.validation.business: NIR, RPPS and FINESS checks bound to profiles."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.errors import Issue, IssueType
from fhir_server.validation.business import (
    CHECKS_BY_SYSTEM,
    definitive_nir_problems,
    finess_problems,
    nir_problems,
    rpps_problems,
)
from fhir_server.validation.messages import (
    FINESS_FORMAT,
    FINESS_KEY,
    NIR_FORMAT,
    NIR_KEY,
    NIR_NOT_DEFINITIVE,
    RPPS_FORMAT,
    RPPS_KEY,
    Text,
    ValidationIssue,
)
from fhir_server.validation.validator import ProfileValidator
from tests.unit.validation.factories import (
    FINESS_SYSTEM,
    INS_NIR,
    PROFILE,
    RPPS_SYSTEM,
    a_finess,
    a_nir,
    an_rpps,
    luhn_broken,
    patient_for_profile,
    wrong_key,
)


def texts(problems: list[tuple[Text, dict[str, Any], dict[str, Any]]]) -> list[Text]:
    return [text for text, _, _ in problems]


# --- the checks --------------------------------------------------------------------------------

@pytest.mark.parametrize("number", [
    "253072B07300470", "253072A07300443", "295109912611193",  # interop-fr.md test vectors
    a_nir(), a_nir("2850375056123"), a_nir("18501" + "2A" + "123456")])
def test_valid_nirs(number: str) -> None:
    assert nir_problems(number) == []
    assert definitive_nir_problems(number) == []


@pytest.mark.parametrize(("number", "problem"), [
    (wrong_key(a_nir()), NIR_KEY),
    ("253072B07300471", NIR_KEY),
    (a_nir()[:-1], NIR_FORMAT),
    (a_nir() + "0", NIR_FORMAT),
    ("1 80 01 75 000 012 23", NIR_FORMAT),
    ("18001750000X223", NIR_FORMAT),
    ("253072C07300443", NIR_FORMAT),
    ("253072a07300443", NIR_FORMAT),
])
def test_invalid_nirs(number: str, problem: Text) -> None:
    assert texts(nir_problems(number)) == [problem]


@pytest.mark.parametrize(("first", "kind"), [("7", "provisional"), ("8", "provisional"),
                                              ("3", "not a definitive"), ("4", "not a definitive")])
def test_non_definitive_nirs(first: str, kind: str) -> None:
    number = a_nir(first + "800175000012")
    assert nir_problems(number) == []
    ((text, params, french),) = definitive_nir_problems(number)
    assert text is NIR_NOT_DEFINITIVE
    assert params["digit"] == first and kind in params["kind"]
    assert french["kind"] in ("numéro provisoire", "numéro non définitif")


def test_rpps() -> None:
    assert rpps_problems(an_rpps()) == []
    assert rpps_problems("10000000009") == []
    assert texts(rpps_problems(luhn_broken(an_rpps()))) == [RPPS_KEY]
    assert texts(rpps_problems(an_rpps()[:-1])) == [RPPS_FORMAT]
    assert texts(rpps_problems("1098765432A")) == [RPPS_FORMAT]


def test_finess() -> None:
    for number in (a_finess(), "750712184", "130783293", "2A0000001"):
        assert finess_problems(number) == [], number
    assert texts(finess_problems(luhn_broken(a_finess()))) == [FINESS_KEY]
    for number in ("75001234", "7500123456", "2C0000001", "75-001234"):
        assert texts(finess_problems(number)) == [FINESS_FORMAT], number


# --- bound to profile elements -----------------------------------------------------------------

def business(issues: tuple[Issue, ...]) -> list[ValidationIssue]:
    return [i for i in issues if isinstance(i, ValidationIssue)
            and i.issue_type is IssueType.BUSINESS_RULE]


def test_fixed_system_implies_the_check(profile_validator: ProfileValidator) -> None:
    bad = wrong_key(a_nir())
    patient = patient_for_profile(identifier=[{"system": INS_NIR, "value": bad}])
    (issue,) = business(profile_validator.validate(patient, [f"{PROFILE}test-patient"]))
    assert issue.expression == ("Patient.identifier[0].value",)
    assert issue.rule == "nir-definitive" and issue.severity == "error"
    assert "NIR key is wrong" in issue.diagnostics and "clé du NIR est fausse" in issue.message_fr
    assert bad not in issue.diagnostics and bad not in issue.message_fr


def test_provisional_nir_refused_where_definitive_is_required(
        profile_validator: ProfileValidator) -> None:
    patient = patient_for_profile(identifier=[{"system": INS_NIR,
                                               "value": a_nir("7800175000012")}])
    (issue,) = business(profile_validator.validate(patient, [f"{PROFILE}test-patient"]))
    assert "first digit 7: a provisional number" in issue.diagnostics
    assert "premier chiffre 7 : numéro provisoire" in issue.message_fr


def test_explicit_marker(profile_validator: ProfileValidator) -> None:
    patient = patient_for_profile(identifier=[
        {"system": INS_NIR, "value": a_nir()},
        {"system": "urn:example:legacy-nir", "value": a_nir("7800175000012")}])
    assert business(profile_validator.validate(patient, [f"{PROFILE}test-patient"])) == []
    patient["identifier"][1]["value"] = "123"
    (issue,) = business(profile_validator.validate(patient, [f"{PROFILE}test-patient"]))
    assert issue.rule == "nir" and issue.expression == ("Patient.identifier[1].value",)


def test_checks_belong_to_profiles_not_to_the_core(core_validator: ProfileValidator) -> None:
    patient = patient_for_profile(identifier=[{"system": INS_NIR, "value": "123"}])
    assert business(core_validator.validate(patient)) == []


def identifier_profile(system: str, check: str | None = None) -> dict[str, Any]:
    marker = ([{"url": "https://fhir.pictaderm.com/StructureDefinition/business-check",
                "valueCode": check}] if check else [])
    return {"url": "http://example.org/sd", "type": "Organization", "derivation": "constraint",
            "snapshot": {"element": [
                {"id": "Organization", "path": "Organization"},
                {"id": "Organization.identifier", "path": "Organization.identifier",
                 "type": [{"code": "Identifier"}], "extension": marker},
                {"id": "Organization.identifier.system", "path": "Organization.identifier.system",
                 "patternUri": system}]}}


@pytest.mark.parametrize(("system", "good", "bad"), [
    (RPPS_SYSTEM, an_rpps(), luhn_broken(an_rpps())),
    (FINESS_SYSTEM, a_finess(), luhn_broken(a_finess())),
])
def test_rpps_and_finess_by_system(system: str, good: str, bad: str) -> None:
    validator = ProfileValidator([identifier_profile(system)])
    organization: dict[str, Any] = {"resourceType": "Organization", "name": "Pharmacie",
                                    "identifier": [{"system": system, "value": good}]}
    assert business(validator.validate(organization, ["http://example.org/sd"])) == []
    organization["identifier"][0]["value"] = bad
    (issue,) = business(validator.validate(organization, ["http://example.org/sd"]))
    assert issue.rule == CHECKS_BY_SYSTEM[system]
    assert "(Luhn)" in issue.diagnostics and "(Luhn)" in issue.message_fr


def test_unknown_check_is_a_warning_about_the_profile() -> None:
    validator = ProfileValidator([identifier_profile("urn:example:x", "no-such-check")])
    organization = {"resourceType": "Organization", "name": "x",
                    "identifier": [{"system": "urn:example:x", "value": "1"}]}
    issues = validator.validate(organization, ["http://example.org/sd"])
    (issue,) = [i for i in issues if isinstance(i, ValidationIssue) and i.rule == "business"]
    assert issue.severity == "warning" and "no-such-check" in issue.diagnostics
