"""Tests for fhir_server.validation.snapshot: snapshots compiled into element trees."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.definitions import structure_definitions
from fhir_server.validation.snapshot import (
    Definitions,
    ProfileError,
    compile_tree,
)
from tests.unit.validation.conftest import fixture_resources
from tests.unit.validation.factories import PROFILE


@pytest.fixture(scope="module")
def definitions() -> Definitions:
    return Definitions(fixture_resources("StructureDefinition-"))


def test_core_tree_has_children_by_name(definitions: Definitions) -> None:
    tree = definitions.core("Patient")
    assert tree is not None and not tree.is_profile
    contact = tree.root.children["contact"]
    assert contact.children["name"].type_codes == ("HumanName",)
    assert tree.root.children["deceased[x]"].type_codes == ("boolean", "dateTime")


def test_core_trees_are_compiled_once(definitions: Definitions) -> None:
    assert definitions.core("Observation") is definitions.core("Observation")
    assert definitions.core("NoSuchType") is None


def test_content_reference_shares_children_and_rules(definitions: Definitions) -> None:
    tree = definitions.core("Questionnaire")
    assert tree is not None
    item = tree.root.children["item"]
    nested = item.children["item"]
    assert nested.children is item.children
    assert nested.constraints == item.constraints
    assert nested.definition_path == "Questionnaire.item"
    assert nested.path == "Questionnaire.item.item"


def test_system_types_are_read_as_their_fhir_type(definitions: Definitions) -> None:
    tree = definitions.core("Extension")
    assert tree is not None
    assert tree.root.children["url"].type_codes == ("uri",)


def test_profile_slices_and_their_children(definitions: Definitions) -> None:
    tree = definitions.profile(f"{PROFILE}test-patient")
    assert tree is not None and tree.is_profile and tree.type == "Patient"
    identifier = tree.root.children["identifier"]
    assert identifier.slicing is not None and identifier.slicing.rules == "open"
    assert [s.slice_name for s in identifier.slices] == ["nir", "nia", "legacy"]
    nir = identifier.slices[0]
    assert nir.children["system"].fixed == "urn:oid:1.2.250.1.213.1.4.8"
    assert nir.max == 1 and nir.children["value"].narrows_cardinality
    assert identifier.slices[1].max == 0
    assert identifier.slices[2].business == ("nir",)


def test_fixed_and_pattern_values(definitions: Definitions) -> None:
    tree = definitions.profile(f"{PROFILE}test-patient")
    assert tree is not None
    assert tree.root.children["active"].fixed is True
    marital = tree.root.children["maritalStatus"]
    assert marital.has_pattern and not marital.has_fixed
    assert not tree.root.children["birthDate"].has_fixed


def test_constraint_human_in_both_languages(definitions: Definitions) -> None:
    tree = definitions.profile(f"{PROFILE}test-patient")
    assert tree is not None
    (constraint,) = tree.root.constraints
    assert constraint.human == "The birth date is after 1 January 1900."
    assert constraint.human_fr == "La date de naissance est postérieure au 1er janvier 1900."


def test_an_english_human_with_a_french_translation() -> None:
    sd = {"url": "http://example.org/sd", "type": "Basic", "snapshot": {"element": [{
        "id": "Basic", "path": "Basic", "constraint": [{
            "key": "x-1", "severity": "error", "human": "Be good.", "expression": "true",
            "_human": {"extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/translation",
                "extension": [{"url": "lang", "valueCode": "fr-FR"},
                              {"url": "content", "valueString": "Soyez sage."}]}]}}]}]}}
    (constraint,) = compile_tree(sd).root.constraints
    assert (constraint.human, constraint.human_fr) == ("Be good.", "Soyez sage.")


def test_elements_without_ids_are_placed_by_path() -> None:
    sd: dict[str, Any] = {"url": "http://example.org/sd", "type": "Basic", "snapshot": {
        "element": [{"path": "Basic"}, {"path": "Basic.code", "min": 1, "max": "1"}]}}
    tree = compile_tree(sd)
    assert tree.root.children["code"].min == 1


def test_unknown_and_unreadable_profiles() -> None:
    broken = {"url": "http://example.org/broken", "type": "Basic",
              "snapshot": {"element": [{"id": "Basic", "path": "Basic"}, {"id": "Basic.x"}]}}
    definitions = Definitions([broken])
    assert definitions.profile("http://example.org/none") is None
    with pytest.raises(ProfileError):
        definitions.profile("http://example.org/broken")


def test_type_of_core_and_profile_urls(definitions: Definitions) -> None:
    assert definitions.type_of("http://hl7.org/fhir/StructureDefinition/Patient|4.0.1") == (
        "Patient")
    assert definitions.type_of(f"{PROFILE}test-practitioner-role") == "PractitionerRole"
    assert definitions.type_of("http://example.org/unknown") is None
    assert definitions.is_core_url("http://hl7.org/fhir/StructureDefinition/Task")


def test_every_core_snapshot_compiles() -> None:
    definitions = Definitions()
    for name in structure_definitions():
        tree = definitions.core(name)
        assert tree is not None and tree.type == name
