"""Tests for fhir_server.validation.slicing: discriminator paths, patterns, and the slice each
repetition is assigned to, with the hand-written profiles of ``fixtures/``."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.validation.slicing import (
    PathError,
    SliceMatcher,
    json_equal,
    matches_pattern,
    parse_path,
    values_at,
)
from fhir_server.validation.snapshot import Definitions, ElementDef
from fhir_server.validation.validator import ProfileValidator
from tests.unit.validation.factories import INS_NIA, INS_NIR, PROFILE, a_nir


def sliced(validator: ProfileValidator, profile: str, path: str) -> ElementDef:
    tree = validator.definitions.profile(f"{PROFILE}{profile}")
    assert tree is not None
    element = tree.root
    for name in path.split("."):
        element = element.children[name]
    return element


def matcher_of(validator: ProfileValidator) -> SliceMatcher:
    """A matcher whose conformance test compares the value's type with the profile's name."""
    return SliceMatcher(validator.terminology,
                        lambda value, type_code, url: type_code == url.rpartition("/")[2])


def names(chosen: tuple[ElementDef | None, ...]) -> list[str | None]:
    return [s.slice_name if s is not None else None for s in chosen]


# --- paths and values --------------------------------------------------------------------------

def test_parse_supported_paths() -> None:
    steps = parse_path("extension('http://a.org/b.c').value.ofType(Coding).code")
    assert [(s.kind, s.argument) for s in steps] == [
        ("extension", "http://a.org/b.c"), ("name", "value"), ("of_type", "Coding"),
        ("name", "code")]
    assert [s.kind for s in parse_path("$this")] == ["this"]
    assert [s.kind for s in parse_path("resolve()")] == ["resolve"]


@pytest.mark.parametrize("path", ["code.where(system = 'x')", "a[0]", "first()"])
def test_unsupported_paths(path: str) -> None:
    with pytest.raises(PathError):
        parse_path(path)


def test_values_at_follows_arrays_choices_and_extensions() -> None:
    value = {"coding": [{"system": "a", "code": "1"}, {"system": "b", "code": "2"}],
             "extension": [{"url": "u", "valueQuantity": {"value": 1}}]}
    assert [v for v, _ in values_at(value, "CodeableConcept", parse_path("coding.code"))] == [
        "1", "2"]
    found = values_at(value, "CodeableConcept", parse_path("extension('u').value"))
    assert found == [({"value": 1}, "Quantity")]
    assert values_at(value, "CodeableConcept",
                     parse_path("extension('u').value.ofType(string)")) == []


def test_resolve_gives_the_type_of_the_target() -> None:
    found = values_at({"reference": "Observation/1"}, "Reference", parse_path("resolve()"))
    assert found == [({"resourceType": "Observation"}, "Observation")]
    assert values_at({"display": "x"}, "Reference", parse_path("resolve()")) == []


# --- patterns ----------------------------------------------------------------------------------

def test_pattern_contains_properties_and_array_items() -> None:
    pattern = {"coding": [{"system": "s", "code": "c"}]}
    assert matches_pattern({"coding": [{"system": "x", "code": "y"},
                                       {"system": "s", "code": "c", "display": "C"}],
                            "text": "t"}, pattern)
    assert not matches_pattern({"coding": [{"system": "s", "code": "other"}]}, pattern)
    assert not matches_pattern({"text": "t"}, pattern)


def test_json_equality_keeps_booleans_apart_from_numbers() -> None:
    assert json_equal({"a": [1, "x"]}, {"a": [1, "x"]})
    assert not json_equal(True, 1) and not json_equal(1, True)
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not matches_pattern(1, True)


# --- discriminators ----------------------------------------------------------------------------

def test_value_discriminator_on_system(profile_validator: ProfileValidator) -> None:
    element = sliced(profile_validator, "test-patient", "identifier")
    items = [({"system": INS_NIA, "value": "x"}, "Identifier"),
             ({"system": INS_NIR, "value": a_nir()}, "Identifier"),
             ({"system": "urn:other", "value": "y"}, "Identifier")]
    assignment = matcher_of(profile_validator).assign(element, items)
    assert names(assignment.slices) == ["nia", "nir", None]
    assert assignment.problems == ()


def test_value_discriminator_on_an_extension_url_from_the_type_profile(
        profile_validator: ProfileValidator) -> None:
    element = sliced(profile_validator, "test-patient", "extension")
    items = [({"url": f"{PROFILE}test-consent-extension", "valueBoolean": True}, "Extension"),
             ({"url": "http://example.org/other", "valueString": "x"}, "Extension")]
    assert names(matcher_of(profile_validator).assign(element, items).slices) == [
        "consent", None]


def test_pattern_discriminator_on_this_and_on_a_child(profile_validator: ProfileValidator) -> None:
    category = sliced(profile_validator, "test-observation", "category")
    vitals = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                          "code": "vital-signs", "display": "Vital Signs"}]}
    assignment = matcher_of(profile_validator).assign(
        category, [({"text": "other"}, "CodeableConcept"), (vitals, "CodeableConcept")])
    assert names(assignment.slices) == [None, "vitals"]
    component = sliced(profile_validator, "test-observation", "component")
    diastolic = {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}}
    assignment = matcher_of(profile_validator).assign(component, [(diastolic, "BackboneElement")])
    assert names(assignment.slices) == ["diastolic"]


def test_type_discriminator_on_a_choice(profile_validator: ProfileValidator) -> None:
    element = sliced(profile_validator, "test-observation", "value[x]")
    assignment = matcher_of(profile_validator).assign(
        element, [({"value": 1}, "Quantity"), ("x", "string")])
    assert names(assignment.slices) == ["valueQuantity", None]


def test_exists_discriminator(profile_validator: ProfileValidator) -> None:
    element = sliced(profile_validator, "test-observation", "identifier")
    assignment = matcher_of(profile_validator).assign(
        element, [({"value": "a", "assigner": {"display": "x"}}, "Identifier"),
                  ({"value": "b"}, "Identifier")])
    assert names(assignment.slices) == ["assigned", "local"]


def test_profile_discriminator_after_resolve(profile_validator: ProfileValidator) -> None:
    element = sliced(profile_validator, "test-observation", "hasMember")
    assignment = matcher_of(profile_validator).assign(
        element, [({"reference": "Observation/1"}, "Reference"),
                  ({"reference": "QuestionnaireResponse/1"}, "Reference")])
    assert names(assignment.slices) == ["observation", None]


def test_binding_discriminator(profile_validator: ProfileValidator) -> None:
    status = "http://hl7.org/fhir/ValueSet/observation-status"
    sd: dict[str, Any] = {"url": "http://example.org/sd", "type": "Observation",
                          "derivation": "constraint", "snapshot": {"element": [
        {"id": "Observation", "path": "Observation"},
        {"id": "Observation.component", "path": "Observation.component",
         "slicing": {"discriminator": [{"type": "value", "path": "code.coding.code"}],
                     "rules": "open"}},
        {"id": "Observation.component:status", "path": "Observation.component",
         "sliceName": "status"},
        {"id": "Observation.component:status.code", "path": "Observation.component.code"},
        {"id": "Observation.component:status.code.coding",
         "path": "Observation.component.code.coding"},
        {"id": "Observation.component:status.code.coding.code",
         "path": "Observation.component.code.coding.code",
         "binding": {"strength": "required", "valueSet": status}}]}}
    definitions = Definitions([sd])
    tree = definitions.profile("http://example.org/sd")
    assert tree is not None
    matcher = SliceMatcher(profile_validator.terminology, lambda v, t, u: False)
    final = {"code": {"coding": [{"system": "http://hl7.org/fhir/observation-status",
                                  "code": "final"}]}}
    other = {"code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]}}
    assignment = matcher.assign(tree.root.children["component"],
                                [(final, "BackboneElement"), (other, "BackboneElement")])
    assert names(assignment.slices) == ["status", None]


def test_a_slice_whose_discriminator_cannot_be_worked_out_is_a_problem() -> None:
    sd: dict[str, Any] = {"url": "http://example.org/sd", "type": "Patient",
                          "derivation": "constraint", "snapshot": {"element": [
        {"id": "Patient", "path": "Patient"},
        {"id": "Patient.identifier", "path": "Patient.identifier",
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
        {"id": "Patient.identifier:loose", "path": "Patient.identifier", "sliceName": "loose"},
        {"id": "Patient.identifier:loose.system", "path": "Patient.identifier.system"}]}}
    definitions = Definitions([sd])
    tree = definitions.profile("http://example.org/sd")
    assert tree is not None
    matcher = SliceMatcher(ProfileValidator().terminology, lambda v, t, u: False)
    assignment = matcher.assign(tree.root.children["identifier"],
                                [({"system": "urn:x", "value": "1"}, "Identifier")])
    assert names(assignment.slices) == [None]
    assert assignment.problems == ("slice loose: no fixed value, pattern or required binding "
                                   "at 'system'",)
