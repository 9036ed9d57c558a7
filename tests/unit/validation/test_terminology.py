"""Tests for fhir_server.validation.terminology: ValueSet membership over held CodeSystems."""

from __future__ import annotations

import pytest

from fhir_server.definitions import code_systems, value_sets
from fhir_server.validation.terminology import (
    Terminology,
    and3,
    core_terminology,
    index_code_system,
    or3,
)
from tests.unit.validation.conftest import TEST_BASE
from tests.unit.validation.factories import STATUS_SYSTEM, STATUS_VALUE_SET

FHIR_VS = "http://hl7.org/fhir/ValueSet/"
NESTED = f"{TEST_BASE}/ValueSet/test-nested"
CYCLE = f"{TEST_BASE}/ValueSet/test-cycle"


# --- the vendored value sets -------------------------------------------------------------------

def test_core_value_sets_are_vendored_from_fhir_v2_and_v3() -> None:
    urls = value_sets()
    assert "http://hl7.org/fhir/ValueSet/task-status" in urls
    assert "http://terminology.hl7.org/ValueSet/v2-0203" in urls
    assert "http://terminology.hl7.org/ValueSet/v3-ActCode" in urls
    assert len(urls) > 1000


def test_vendored_value_sets_are_r4_and_slim() -> None:
    for url, value_set in value_sets().items():
        if url.startswith("http://hl7.org/fhir/"):
            assert value_set.get("version") == "4.0.1", url
        assert "text" not in value_set and "expansion" not in value_set, url
        for include in value_set["compose"].get("include", []):
            assert all(set(concept) <= {"code", "display"} and "code" in concept
                       for concept in include.get("concept", [])), url
    assert "http://hl7.org/fhir/ValueSet/detectedissue-status" not in value_sets()


def test_core_code_systems_are_read_from_the_vendored_file() -> None:
    task_status = code_systems()["http://hl7.org/fhir/task-status"]
    assert (task_status["name"], task_status["version"]) == ("TaskStatus", "4.0.1")
    assert {"code": "requested", "display": "Requested"} in task_status["concept"]
    assert core_terminology() is core_terminology()


# --- membership in core value sets -------------------------------------------------------------

@pytest.mark.parametrize(("code", "expected"), [("ready", True), ("bogus", False)])
def test_plain_code_in_a_fhir_value_set(code: str, expected: bool) -> None:
    terminology = core_terminology()
    assert terminology.contains(f"{FHIR_VS}task-status|4.0.1", None, code) is expected


def test_system_must_match_when_given() -> None:
    terminology = core_terminology()
    gender = f"{FHIR_VS}administrative-gender"
    assert terminology.contains(gender, "http://hl7.org/fhir/administrative-gender", "female")
    assert terminology.contains(gender, "http://example.org/other", "female") is False


def test_one_include_of_several_value_sets_is_their_intersection() -> None:
    # action-participant-role includes practitioner-role and relatedperson-relationshiptype in
    # one include: a code must be in both (they share none).
    terminology = core_terminology()
    system = "http://terminology.hl7.org/CodeSystem/practitioner-role"
    assert terminology.contains(f"{FHIR_VS}practitioner-role", system, "doctor") is True
    assert terminology.contains(f"{FHIR_VS}action-participant-role", system, "doctor") is False


def test_descendent_of_filter_on_a_v3_hierarchy() -> None:
    terminology = core_terminology()
    mood = "http://terminology.hl7.org/CodeSystem/v3-ActMood"
    assert terminology.contains(f"{FHIR_VS}inactive", mood, "GOL.CRT") is True
    assert terminology.contains(f"{FHIR_VS}inactive", mood, "EVN") is False
    assert terminology.contains(f"{FHIR_VS}inactive", mood, "_ActMoodPredicate") is False


def test_is_not_a_filter() -> None:
    terminology = core_terminology()
    relationship = f"{FHIR_VS}patient-contactrelationship"
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0131"
    assert terminology.contains(relationship, v2, "C") is True
    assert terminology.contains(relationship, v2, "O") is False


def test_systems_not_held_cannot_be_told() -> None:
    terminology = core_terminology()
    assert terminology.contains(f"{FHIR_VS}mimetypes", None, "image/png") is None
    assert terminology.contains(f"{FHIR_VS}currencies", "urn:iso:std:iso:4217", "EUR") is None


def test_a_regex_filter_refuses_what_it_does_not_match_even_without_the_system() -> None:
    terminology = core_terminology()
    alpha3 = f"{FHIR_VS}iso3166-1-3"
    assert terminology.contains(alpha3, "urn:iso:std:iso:3166", "FRA") is None
    assert terminology.contains(alpha3, "urn:iso:std:iso:3166", "FR") is False


def test_unknown_value_set_cannot_be_told() -> None:
    terminology = core_terminology()
    assert terminology.contains("http://example.org/ValueSet/none", None, "x") is None
    assert not terminology.has_value_set("http://example.org/ValueSet/none")


# --- a guide's own terminology -----------------------------------------------------------------

@pytest.mark.parametrize(("code", "expected"), [
    ("waiting", True),
    ("awaiting-claim", True),          # is-a waiting
    ("awaiting-clarification", False),  # excluded
    ("done", True),                     # listed concept
    ("escalated", False),               # in the system, in no include
    ("nowhere", False),                 # not in the system (complete content)
])
def test_filters_concepts_and_excludes(terminology: Terminology, code: str,
                                       expected: bool) -> None:
    assert terminology.contains(STATUS_VALUE_SET, STATUS_SYSTEM, code) is expected


def test_nested_value_set_descendants_and_external_system(terminology: Terminology) -> None:
    assert terminology.contains(NESTED, STATUS_SYSTEM, "awaiting-claim") is True
    assert terminology.contains(NESTED, STATUS_SYSTEM, "cancelled") is True  # parent property
    assert terminology.contains(NESTED, STATUS_SYSTEM, "escalated") is False
    assert terminology.contains(NESTED, "http://snomed.info/sct", "39065001") is None


def test_a_cycle_of_value_sets_cannot_be_told(terminology: Terminology) -> None:
    assert terminology.contains(CYCLE, STATUS_SYSTEM, "done") is None


def test_value_sets_are_compiled_once(terminology: Terminology) -> None:
    first = terminology.compiled(STATUS_VALUE_SET)
    assert first is not None
    assert terminology.compiled(STATUS_VALUE_SET) is first


def test_guide_resources_take_the_place_of_core_ones() -> None:
    replacement = {"resourceType": "ValueSet", "url": f"{FHIR_VS}task-status",
                   "compose": {"include": [{"system": "http://hl7.org/fhir/task-status",
                                            "concept": [{"code": "draft"}]}]}}
    terminology = Terminology([replacement])
    assert terminology.contains(f"{FHIR_VS}task-status", None, "draft") is True
    assert terminology.contains(f"{FHIR_VS}task-status", None, "ready") is False


def test_fragment_code_systems_only_say_yes() -> None:
    fragment = {"resourceType": "CodeSystem", "url": "http://example.org/cs", "content":
                "fragment", "concept": [{"code": "a"}]}
    value_set = {"resourceType": "ValueSet", "url": "http://example.org/vs",
                 "compose": {"include": [{"system": "http://example.org/cs"}]}}
    terminology = Terminology([fragment, value_set], core=False)
    assert terminology.contains("http://example.org/vs", None, "a") is True
    assert terminology.contains("http://example.org/vs", None, "b") is None


def test_property_filter_on_a_declared_property() -> None:
    system = {"resourceType": "CodeSystem", "url": "http://example.org/cs", "content": "complete",
              "property": [{"code": "kind", "type": "code"}],
              "concept": [{"code": "a", "property": [{"code": "kind", "valueCode": "x"}]},
                          {"code": "b", "property": [{"code": "kind", "valueCode": "y"}]}]}
    value_set = {"resourceType": "ValueSet", "url": "http://example.org/vs", "compose": {
        "include": [{"system": "http://example.org/cs",
                     "filter": [{"property": "kind", "op": "=", "value": "x"},
                                {"property": "undeclared", "op": "=", "value": "x"}]}]}}
    terminology = Terminology([system, value_set], core=False)
    assert terminology.contains("http://example.org/vs", None, "b") is None  # undeclared: unknown
    only_declared = {**value_set, "url": "http://example.org/vs2", "compose": {"include": [{
        "system": "http://example.org/cs", "filter": [{"property": "kind", "op": "=",
                                                       "value": "x"}]}]}}
    terminology = Terminology([system, only_declared], core=False)
    assert terminology.contains("http://example.org/vs2", None, "a") is True
    assert terminology.contains("http://example.org/vs2", None, "b") is False


def test_code_system_hierarchy_from_nesting_and_properties() -> None:
    index = index_code_system({
        "url": "http://example.org/cs", "content": "complete",
        "property": [{"code": "subsumedBy", "uri": "http://hl7.org/fhir/concept-properties#parent"}],
        "concept": [{"code": "a", "concept": [{"code": "b"}]},
                    {"code": "c", "property": [{"code": "subsumedBy", "valueCode": "b"}]}]})
    assert index.descendants("a") == {"b", "c"}
    assert index.defines("c") is True and index.defines("z") is False


def test_three_valued_logic() -> None:
    assert and3(True, None) is None and and3(False, None) is False and and3(True, True)
    assert or3(False, None) is None and or3(True, None) is True and or3(False, False) is False
