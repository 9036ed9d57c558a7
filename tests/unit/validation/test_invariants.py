"""Tests for fhir_server.validation.invariants and fast_invariants: the snapshots' constraints
evaluated with fhirpathpy, the Python equivalents of the frequent core ones, and the core
invariants skipped or rewritten (each shown to fail in fhirpathpy as published)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.models import models

from fhir_server.definitions import structure_definitions
from fhir_server.errors import Issue, IssueType
from fhir_server.validation.fast_invariants import FAST_CHECKS, fast_check
from fhir_server.validation.invariants import (
    REWRITTEN,
    SKIPPED,
    InvariantChecker,
    syntax_error,
)
from fhir_server.validation.messages import ValidationIssue
from fhir_server.validation.snapshot import Constraint
from fhir_server.validation.validator import ProfileValidator
from fhir_server.validation.walk import Visit
from tests.unit.validation import examples
from tests.unit.validation.factories import PROFILE, patient_for_profile, task_for_profile

Resource = dict[str, Any]


def by_rule(issues: tuple[Issue, ...], rule: str) -> list[ValidationIssue]:
    return [i for i in issues if isinstance(i, ValidationIssue) and i.rule == rule]


def core_constraints() -> dict[str, set[str]]:
    """Every core constraint key -> its expressions."""
    found: dict[str, set[str]] = defaultdict(set)
    for sd in structure_definitions().values():
        for element in sd["snapshot"]["element"]:
            for constraint in element.get("constraint", []):
                found[constraint["key"]].add(constraint["expression"])
    return found


# --- core invariants that must fire ------------------------------------------------------------

def test_ele_1_on_a_complex_element_with_only_an_id(core_validator: ProfileValidator) -> None:
    patient = examples.patient()
    patient["name"].append({"id": "n2"})
    (issue,) = by_rule(core_validator.validate(patient), "ele-1")
    assert issue.expression == ("Patient.name[1]",)
    assert issue.issue_type is IssueType.INVARIANT and issue.severity == "error"
    assert "All FHIR elements must have a @value or children" in issue.diagnostics
    assert "doit avoir une valeur ou des éléments enfants" in issue.message_fr


def test_ele_1_on_a_primitive_with_only_an_id(core_validator: ProfileValidator) -> None:
    patient = examples.patient()
    del patient["birthDate"]
    patient["_birthDate"] = {"id": "b"}
    (issue,) = by_rule(core_validator.validate(patient), "ele-1")
    assert issue.expression == ("Patient.birthDate",)
    patient["_birthDate"]["extension"] = [{"url": "http://example.org/why", "valueString": "?"}]
    assert by_rule(core_validator.validate(patient), "ele-1") == []


def with_contained(**changes: Any) -> Resource:
    patient = examples.patient()
    patient["contained"] = [{"resourceType": "Organization", "id": "org1", "name": "Pharmacie"}]
    patient.update(changes)
    return patient


def test_dom_3_contained_resource_not_referenced(core_validator: ProfileValidator) -> None:
    (issue,) = by_rule(core_validator.validate(with_contained()), "dom-3")
    assert issue.expression == ("Patient",)
    assert "SHALL be referred to from elsewhere" in issue.diagnostics
    assert "doit être référencée ailleurs" in issue.message_fr


def test_dom_3_passes_when_referenced(core_validator: ProfileValidator) -> None:
    patient = with_contained(managingOrganization={"reference": "#org1"})
    assert by_rule(core_validator.validate(patient), "dom-3") == []


def test_dom_3_passes_when_the_contained_resource_refers_to_its_container(
        core_validator: ProfileValidator) -> None:
    patient = with_contained()
    patient["contained"][0]["partOf"] = {"reference": "#"}
    patient["contained"][0]["resourceType"] = "Organization"
    issues = core_validator.validate(patient)
    assert by_rule(issues, "dom-3") == []
    assert by_rule(issues, "ref-1") == []


def test_dom_2_4_5_on_contained_resources(core_validator: ProfileValidator) -> None:
    patient = with_contained(managingOrganization={"reference": "#org1"})
    inner = patient["contained"][0]
    inner["meta"] = {"versionId": "1", "security": [{"system": "http://example.org", "code": "x"}]}
    issues = core_validator.validate(patient)
    assert [i.expression for i in by_rule(issues, "dom-4")] == [("Patient",)]
    assert [i.expression for i in by_rule(issues, "dom-5")] == [("Patient",)]


def test_dom_6_is_a_warning(core_validator: ProfileValidator) -> None:
    observation = examples.observation()
    (issue,) = by_rule(core_validator.validate(observation), "dom-6")
    assert issue.severity == "warning"
    observation["text"] = {"status": "generated",
                           "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}
    assert by_rule(core_validator.validate(observation), "dom-6") == []


def test_ref_1_local_reference_to_a_missing_contained_resource(
        core_validator: ProfileValidator) -> None:
    patient = with_contained(managingOrganization={"reference": "#elsewhere"})
    (issue,) = by_rule(core_validator.validate(patient), "ref-1")
    assert issue.expression == ("Patient.managingOrganization",)


@pytest.mark.parametrize(("authored", "modified", "fails"), [
    ("2024-05-02T10:00:00Z", "2024-05-01T10:00:00Z", True),
    ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z", False),
    ("2024-05-01T10:00:00Z", "2024-05-01T12:00:00+01:00", False),
    ("2024-05-01T10:00:00Z", "2024-05-01T10:30:00+01:00", True),
])
def test_task_inv_1_last_modified_after_authored_on(core_validator: ProfileValidator,
                                                    authored: str, modified: str,
                                                    fails: bool) -> None:
    task = task_for_profile(authoredOn=authored, lastModified=modified)
    found = by_rule(core_validator.validate(task), "inv-1")
    assert bool(found) is fails
    if fails:
        assert found[0].expression == ("Task",)
        assert "Last modified date must be greater" in found[0].diagnostics
        assert "date de dernière modification" in found[0].message_fr


def test_invariants_of_nested_resources_are_located_inside_them(
        core_validator: ProfileValidator) -> None:
    bundle = examples.bundle()
    bundle["entry"][0]["resource"]["name"].append({"id": "x"})
    (issue,) = by_rule(core_validator.validate(bundle), "ele-1")
    assert issue.expression == ("Bundle.entry[0].resource.name[1]",)


def test_content_reference_elements_get_the_constraints_of_their_definition(
        core_validator: ProfileValidator) -> None:
    parameters = examples.parameters()
    parameters["parameter"][2]["part"][0]["part"] = [{"name": "x", "valueString": "y"}]
    (issue,) = by_rule(core_validator.validate(parameters), "inv-1")
    assert issue.expression == ("Parameters.parameter[2].part[0]",)
    assert by_rule(core_validator.validate(examples.parameters()), "inv-1") == []


# --- profile invariants ------------------------------------------------------------------------

def test_profile_invariant_in_french_with_its_english_translation(
        profile_validator: ProfileValidator) -> None:
    patient = patient_for_profile(birthDate="1850-01-01")
    (issue,) = by_rule(profile_validator.validate(patient, [f"{PROFILE}test-patient"]),
                       "test-pat-1")
    assert issue.diagnostics == ("Patient: constraint test-pat-1 is not met: "
                                 "The birth date is after 1 January 1900.")
    assert issue.message_fr == ("Patient : la contrainte test-pat-1 n'est pas respectée : "
                                "La date de naissance est postérieure au 1er janvier 1900.")


def test_profile_invariant_with_warning_severity(profile_validator: ProfileValidator) -> None:
    task = task_for_profile(status="accepted")
    (issue,) = by_rule(profile_validator.validate(task, [f"{PROFILE}test-task"]), "test-task-1")
    assert issue.severity == "warning"


def test_an_expression_that_cannot_be_evaluated_is_information(
        profile_validator: ProfileValidator) -> None:
    issues = profile_validator.validate(task_for_profile(), [f"{PROFILE}test-task"])
    (issue,) = by_rule(issues, "test-task-2")
    assert issue.severity == "information"
    assert "could not be evaluated" in issue.diagnostics and "nosuchfunction" in issue.diagnostics


def test_an_expression_with_a_syntax_error_is_information() -> None:
    sd = {"url": "http://example.org/sd", "type": "Task", "derivation": "constraint",
          "snapshot": {"element": [{"id": "Task", "path": "Task", "constraint": [
              {"key": "x-1", "severity": "error", "human": "Typo.",
               "expression": "status ==  'accepted'"}]}]}}
    issues = ProfileValidator([sd]).validate(task_for_profile(), ["http://example.org/sd"])
    (issue,) = by_rule(issues, "x-1")
    assert issue.severity == "information"
    assert "syntax error at column 9" in issue.diagnostics


def test_every_core_expression_parses() -> None:
    for key, expressions in core_constraints().items():
        for expression in expressions:
            assert syntax_error(expression) is None, key


def test_core_invariants_are_not_evaluated_again_for_a_profile(
        profile_validator: ProfileValidator) -> None:
    patient = patient_for_profile()
    patient["name"].append({"id": "n"})
    issues = profile_validator.validate(patient, [f"{PROFILE}test-patient"])
    assert len(by_rule(issues, "ele-1")) == 1


def test_each_expression_is_compiled_once() -> None:
    validator = ProfileValidator()
    validator.validate(with_contained())
    compiled = validator.invariants.compiled_expressions
    assert compiled > 0
    for _ in range(3):
        validator.validate(with_contained())
    assert validator.invariants.compiled_expressions == compiled


# --- skipped and rewritten core invariants -----------------------------------------------------

def fhirpath(expression: str, resource: Resource) -> list[Any]:
    result: list[Any] = fhirpathpy.evaluate(
        resource, expression, {"resource": resource, "rootResource": resource}, models["r4"],
        {"traceFn": lambda label, value: None})
    return result


@pytest.mark.parametrize("key", sorted(SKIPPED))
def test_skipped_invariants_are_the_published_core_ones(key: str) -> None:
    assert SKIPPED[key].expression in core_constraints()[key]
    assert SKIPPED[key].reason


@pytest.mark.parametrize("key", sorted(REWRITTEN))
def test_rewritten_invariants_are_the_published_core_ones(key: str) -> None:
    assert REWRITTEN[key].expression in core_constraints()[key]
    assert REWRITTEN[key].reason and REWRITTEN[key].replacement


def test_html_checks_are_not_a_fhirpathpy_function() -> None:
    narrative = {"resourceType": "Patient",
                 "text": {"status": "generated", "div": "<div>x</div>"}}
    with pytest.raises(Exception, match="htmlChecks"):
        fhirpath("Patient.text.`div`.all(htmlChecks())", narrative)


def test_resolve_is_not_a_fhirpathpy_function() -> None:
    team = {"resourceType": "CareTeam", "participant": [
        {"member": {"reference": "Practitioner/1"}, "onBehalfOf": {"reference": "Organization/1"}}]}
    with pytest.raises(Exception, match="resolve"):
        fhirpath("CareTeam.participant.all(" + SKIPPED["ctm-1"].expression + ")", team)


def test_dom_3_as_published_raises_in_fhirpathpy_and_its_rewrite_decides() -> None:
    patient = with_contained(managingOrganization={"reference": "#org1"})
    with pytest.raises(Exception, match="singleton"):
        fhirpath(REWRITTEN["dom-3"].expression, patient)
    replacement = REWRITTEN["dom-3"].replacement
    assert replacement is not None
    assert fhirpath(replacement, patient) == [True]
    assert fhirpath(replacement, with_contained()) == [False]


def test_que_7_as_published_refuses_a_boolean_answer_and_its_rewrite_accepts_it() -> None:
    questionnaire: Resource = {"resourceType": "Questionnaire", "status": "active", "item": [
        {"linkId": "1", "type": "boolean"},
        {"linkId": "2", "type": "string",
         "enableWhen": [{"question": "1", "operator": "exists", "answerBoolean": True}]}]}
    where = "Questionnaire.item.enableWhen.all({})"
    assert fhirpath(where.format(REWRITTEN["que-7"].expression), questionnaire) == [False]
    replacement = REWRITTEN["que-7"].replacement
    assert replacement is not None
    assert fhirpath(where.format(replacement), questionnaire) == [True]
    questionnaire["item"][1]["enableWhen"][0] = {"question": "1", "operator": "exists",
                                                 "answerString": "yes"}
    assert fhirpath(where.format(replacement), questionnaire) == [False]


def test_rng_2_as_published_raises_and_its_rewrite_compares_same_unit_values() -> None:
    def observation(low: dict[str, Any], high: dict[str, Any]) -> Resource:
        return {"resourceType": "Observation", "valueRange": {"low": low, "high": high}}
    where = "Observation.value.ofType(Range).all({})"
    with pytest.raises(Exception, match="not supported"):
        fhirpath(where.format(REWRITTEN["rng-2"].expression),
                 observation({"value": 1}, {"value": 2}))
    replacement = REWRITTEN["rng-2"].replacement
    assert replacement is not None
    assert fhirpath(where.format(replacement), observation({"value": 1}, {"value": 2})) == [True]
    assert fhirpath(where.format(replacement), observation({"value": 3}, {"value": 2})) == [False]
    grams = {"value": 3, "system": "http://unitsofmeasure.org", "code": "g"}
    milligrams = {"value": 2, "system": "http://unitsofmeasure.org", "code": "mg"}
    assert fhirpath(where.format(replacement), observation(grams, milligrams)) == [True]


def test_validator_reports_que_7_and_rng_2_correctly(core_validator: ProfileValidator) -> None:
    questionnaire = examples.questionnaire()
    questionnaire.setdefault("item", []).append({
        "linkId": "w", "type": "string", "text": "w",
        "enableWhen": [{"question": "1", "operator": "exists", "answerBoolean": True}]})
    issues = core_validator.validate(questionnaire)
    assert by_rule(issues, "que-7") == []
    observation = examples.observation()
    del observation["valueQuantity"]
    observation["valueRange"] = {"low": {"value": 3}, "high": {"value": 2}}
    (issue,) = by_rule(core_validator.validate(observation), "rng-2")
    assert issue.expression == ("Observation.value.ofType(Range)",)


# --- the Python equivalents agree with fhirpathpy ----------------------------------------------

def samples() -> list[Resource]:
    """Resources where each fast-checked invariant holds somewhere and fails somewhere."""
    contained_org = {"resourceType": "Organization", "id": "org1", "name": "x"}
    nested = {"resourceType": "Organization", "id": "org2", "contained": [contained_org],
              "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z",
                       "security": [{"system": "http://example.org", "code": "s"}]}}
    patient = examples.patient()
    patient["name"].append({"id": "n"})
    patient["_birthDate"] = {"id": "b"}
    patient["contained"] = [nested, contained_org]
    patient["managingOrganization"] = {"reference": "#org1"}
    patient["generalPractitioner"] = [{"reference": "#nowhere"}, {"reference": "#org2"},
                                      {"reference": "Practitioner/1"}]
    patient["extension"] = [
        {"url": "http://example.org/a", "valueString": "x"},
        {"url": "http://example.org/b", "valueString": "x",
         "extension": [{"url": "c", "valueString": "y"}]},
        {"url": "http://example.org/d", "extension": [{"url": "e", "valueBoolean": True}]}]
    response = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": [
        {"linkId": "1", "answer": [{"valueString": "a"}], "item": [{"linkId": "1.1"}]},
        {"linkId": "2", "answer": [{"valueString": "b"}]}]}
    good_bundle = examples.bundle()
    bad_bundle = {"resourceType": "Bundle", "type": "collection", "total": 2, "entry": [
        {"fullUrl": "http://example.org/Patient/1", "resource": examples.patient(),
         "request": {"method": "GET", "url": "Patient/1"}, "search": {"mode": "match"},
         "response": {"status": "200"}},
        {"fullUrl": "http://example.org/Patient/1/_history/2", "resource": examples.patient()},
        {"fullUrl": "http://example.org/Patient/1", "resource": examples.patient()},
        {"fullUrl": "urn:uuid:0c3a9a3e-6f5b-4f7e-9a55-1f4c6c2b8d12"}]}
    searchset = {"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [
        {"fullUrl": "http://example.org/Patient/1", "resource": examples.patient(),
         "search": {"mode": "match"}}]}
    periods = examples.observation()
    periods["effectivePeriod"] = {"start": "2024-05-01T10:00:00Z", "end": "2024-05-02T10:00:00Z"}
    del periods["effectiveDateTime"]
    periods["valuePeriod"] = {"start": "2024-05-03T10:00:00Z", "end": "2024-05-02T10:00:00Z"}
    del periods["valueQuantity"]
    tasks = [task_for_profile(), task_for_profile(lastModified="2024-04-01T10:00:00+02:00")]
    dispense = {"resourceType": "MedicationDispense", "status": "completed",
                "medicationCodeableConcept": {"text": "x"},
                "whenPrepared": "2024-05-02T10:00:00Z", "whenHandedOver": "2024-05-01T10:00:00Z"}
    in_order = {**dispense, "whenHandedOver": "2024-05-03T10:00:00Z"}
    return [patient, examples.observation(), response, good_bundle, bad_bundle, searchset,
            examples.parameters(), periods, *tasks, dispense, in_order]


def visits_with(validator: ProfileValidator, expression: str) -> list[tuple[Visit, Constraint]]:
    found: list[tuple[Visit, Constraint]] = []
    for resource in samples():
        for visit in validator.walk(resource).visits:
            for definition in visit.definitions:
                found.extend((visit, c) for c in definition.constraints
                             if c.expression == expression)
    return found


HAND_OVER_INSTEAD_OF_FAILING = frozenset({"contained_referenced", "holds_for_other_types"})
"""Fast checks that never fail: they hand the cases that may fail over to fhirpathpy."""


def passes(verdict: bool | None) -> bool:
    return verdict is not False


@pytest.mark.parametrize("expression", sorted(FAST_CHECKS))
def test_fast_check_agrees_with_fhirpathpy(core_validator: ProfileValidator,
                                           expression: str) -> None:
    checker = InvariantChecker()
    pairs = visits_with(core_validator, expression)
    assert pairs, "no sample carries the invariant"
    verdicts = set()
    for visit, constraint in pairs:
        fast = FAST_CHECKS[expression](visit)
        if fast is None:
            continue
        verdicts.add(fast)
        assert passes(fast) == passes(checker.evaluate_fhirpath(constraint, visit)), (
            constraint.key, visit.location)
    assert True in verdicts
    if FAST_CHECKS[expression].__name__ not in HAND_OVER_INSTEAD_OF_FAILING:
        assert False in verdicts, "no sample fails the invariant"


@pytest.mark.parametrize(("start", "end", "holds"), [
    ("2024-05-01T10:30:00+01:00", "2024-05-01T10:00:00Z", True),   # 09:30Z before 10:00Z
    ("2024-05-01T10:00:00Z", "2024-05-01T10:30:00+01:00", False),  # 10:00Z after 09:30Z
    ("2024-05-01T10:00:00Z", "2024-05-01", True),                  # unknown: holds
    ("2024-05-02T10:00:00Z", "2024-05-01", False),                 # decided by the day
    ("2024-05", "2024-04-30", False),
])
def test_date_comparisons_follow_fhirpath_not_text_order(core_validator: ProfileValidator,
                                                         start: str, end: str,
                                                         holds: bool) -> None:
    observation = examples.observation()
    del observation["effectiveDateTime"]
    observation["effectivePeriod"] = {"start": start, "end": end}
    found = by_rule(core_validator.validate(observation), "per-1")
    assert (found == []) is holds


def test_fhirpathpy_compares_date_elements_as_text() -> None:
    """Why per-1, inv-1 and mdd-1 are computed in Python: the zone is ignored."""
    task = {"resourceType": "Task", "authoredOn": "2024-05-01T10:00:00Z",
            "lastModified": "2024-05-01T10:30:00+01:00"}
    assert fhirpath("lastModified >= authoredOn", task) == [True]
    assert fhirpath("lastModified.toDateTime() >= authoredOn.toDateTime()", task) == [False]


def test_fast_checks_are_core_expressions() -> None:
    published = {e for expressions in core_constraints().values() for e in expressions}
    assert set(FAST_CHECKS) <= published


def _pattern_samples() -> list[dict[str, Any]]:
    """Resources where cpt-2, qty-3, att-1 and pat-1 hold in one element and fail in another."""
    return [
        {"resourceType": "Patient", "telecom": [{"system": "phone", "value": "0600000000"},
                                                {"value": "0611111111"}],
         "contact": [{"name": {"family": "Martin"}}, {"gender": "female"}]},
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
         "component": [{"code": {"text": "a"}, "valueQuantity": {"value": 1, "code": "mg"}},
                       {"code": {"text": "b"}, "valueQuantity": {
                           "value": 1, "code": "mg", "system": "http://unitsofmeasure.org"}}]},
        {"resourceType": "Media", "status": "completed",
         "content": {"data": "AAAA"}},
        {"resourceType": "Media", "status": "completed",
         "content": {"data": "AAAA", "contentType": "image/jpeg"}},
    ]


@pytest.mark.parametrize("key", ["cpt-2", "qty-3", "att-1", "pat-1"])
def test_pattern_fast_checks_agree_with_fhirpathpy(core_validator: ProfileValidator,
                                                   key: str) -> None:
    checker = InvariantChecker()
    verdicts = set()
    for resource in _pattern_samples():
        for visit in core_validator.walk(resource).visits:
            for definition in visit.definitions:
                for constraint in definition.constraints:
                    if constraint.key != key:
                        continue
                    fast = fast_check(constraint.expression)
                    assert fast is not None and constraint.expression not in FAST_CHECKS
                    verdict = fast(visit)
                    verdicts.add(verdict)
                    assert passes(verdict) == passes(
                        checker.evaluate_fhirpath(constraint, visit)), (key, visit.location)
    assert verdicts == {True, False}


def test_other_expressions_are_left_to_fhirpathpy() -> None:
    assert fast_check("name.exists() and telecom.exists()") is None
    assert fast_check("value.empty() or system.exists() or x") is None
