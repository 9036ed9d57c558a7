"""Snapshot generation from the hand-written test differentials in fixtures/."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from fhir_server.definitions import structure_definitions
from fhir_server.ig import SnapshotError, generate_snapshot
from tests.unit.ig.conftest import CANONICAL, Resolver

IDENTIFIER_CHILDREN = ["id", "extension", "use", "type", "system", "value", "period", "assigner"]


def snapshot(profiles: dict[str, dict[str, Any]], name: str,
             resolve: Resolver) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = generate_snapshot(
        profiles[CANONICAL + name], resolve)["snapshot"]["element"]
    return elements


def by_id(elements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {element["id"]: element for element in elements}


def children_of(elements: list[dict[str, Any]], parent_id: str) -> list[str]:
    """The ids one level below ``parent_id``, in snapshot order."""
    prefix = parent_id + "."
    return [e["id"] for e in elements
            if e["id"].startswith(prefix) and "." not in e["id"][len(prefix):]
            and ":" not in e["id"][len(prefix):]]


def profile_on(base: str, *diff: dict[str, Any], type_name: str = "Patient") -> dict[str, Any]:
    return {
        "resourceType": "StructureDefinition", "id": "inline",
        "url": CANONICAL + "inline", "type": type_name, "kind": "resource",
        "derivation": "constraint", "baseDefinition": base,
        "differential": {"element": list(diff)},
    }


CORE_PATIENT = "http://hl7.org/fhir/StructureDefinition/Patient"


def test_cardinality_is_narrowed_and_the_base_cardinality_recorded(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    elements = by_id(snapshot(profiles, "test-patient", resolve))
    assert (elements["Patient.birthDate"]["min"], elements["Patient.birthDate"]["max"]) == (1, "1")
    assert elements["Patient.birthDate"]["base"] == {"max": "1", "min": 0,
                                                     "path": "Patient.birthDate"}
    assert elements["Patient.identifier"]["min"] == 1
    assert elements["Patient.gender"]["mustSupport"] is True
    assert elements["Patient.gender"]["binding"]["strength"] == "required"


@pytest.mark.parametrize(("diff", "message"), [
    ({"id": "Patient.link.type", "path": "Patient.link.type", "min": 0},
     "min 0 would widen the base's min 1"),
    ({"id": "Patient.gender", "path": "Patient.gender", "max": "2"},
     "max 2 would widen the base's max 1"),
    ({"id": "Patient.gender", "path": "Patient.gender", "type": [{"code": "string"}]},
     "type string is not allowed"),
    ({"id": "Patient.gender", "path": "Patient.gender",
      "binding": {"strength": "extensible", "valueSet": "http://example.org/vs"}},
     "the base binding is required"),
    ({"id": "Patient.managingOrganization", "path": "Patient.managingOrganization",
      "type": [{"code": "Reference", "targetProfile": [CORE_PATIENT]}]},
     "target http://hl7.org/fhir/StructureDefinition/Patient (Patient) is not allowed"),
    ({"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 2},
     "min 2 is above max 1"),
    ({"id": "Patient.nickname", "path": "Patient.nickname", "min": 1},
     "Patient has no element 'nickname'"),
    ({"id": "Patient.name", "path": "Patient.name", "sliceName": "x"},
     "sliceName x does not match the id"),
    ({"id": "Patient.name:official", "path": "Patient.name", "sliceName": "official"},
     "Patient.name is not sliced"),
    ({"id": "Patient.identifier:nir.system", "path": "Patient.identifier.system", "min": 1},
     "slice 'nir' is used before the differential declares it"),
    ({"id": "Patient.deceased[x].value", "path": "Patient.deceased[x].value"},
     "restrict it to one"),
])
def test_a_profile_cannot_widen_or_misname_its_base(diff: dict[str, Any], message: str) -> None:
    with pytest.raises(SnapshotError, match=re.escape(message)):
        generate_snapshot(profile_on(CORE_PATIENT, diff), lambda _url: None)


def test_a_profile_on_a_profile_cannot_widen_its_slices(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    derived = profile_on(CANONICAL + "test-patient",
                         {"id": "Patient.identifier:insNir", "path": "Patient.identifier",
                          "sliceName": "insNir", "max": "*"})
    with pytest.raises(SnapshotError, match=r"Patient.identifier:insNir: max \* would widen"):
        generate_snapshot(derived, resolve)


def test_fixed_system_on_an_unrolled_identifier_child(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    elements = snapshot(profiles, "test-organization", resolve)
    ids = [e["id"] for e in elements]
    assert children_of(elements, "Organization.identifier") == [
        f"Organization.identifier.{name}" for name in IDENTIFIER_CHILDREN]
    assert ids.index("Organization.identifier.id") == ids.index("Organization.identifier") + 1
    system = by_id(elements)["Organization.identifier.system"]
    assert system["path"] == "Organization.identifier.system"
    assert system["fixedUri"] == "urn:oid:1.2.250.1.71.4.2.2"
    assert (system["min"], system["max"]) == (1, "1")
    assert system["base"]["path"] == "Identifier.system"
    assert by_id(elements)["Organization.identifier.value"]["maxLength"] == 9
    assert "Organization.active" in ids[ids.index("Organization.identifier.assigner"):]


def test_identifier_slices_each_have_the_full_identifier_children(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    elements = snapshot(profiles, "test-patient", resolve)
    ids = [e["id"] for e in elements]
    found = by_id(elements)
    assert found["Patient.identifier"]["slicing"] == {
        "discriminator": [{"type": "value", "path": "system"}], "rules": "open"}
    for name, system in (("insNir", "urn:oid:1.2.250.1.213.1.4.8"),
                         ("insNia", "urn:oid:1.2.250.1.213.1.4.9")):
        slice_id = f"Patient.identifier:{name}"
        assert found[slice_id]["sliceName"] == name
        assert found[slice_id]["path"] == "Patient.identifier"
        assert "slicing" not in found[slice_id]
        assert children_of(elements, slice_id) == [
            f"{slice_id}.{child}" for child in IDENTIFIER_CHILDREN]
        assert found[f"{slice_id}.system"]["fixedUri"] == system
        assert found[f"{slice_id}.system"]["path"] == "Patient.identifier.system"
    # slices come after the sliced element, in differential order, before the next element
    assert (ids.index("Patient.identifier") < ids.index("Patient.identifier:insNir")
            < ids.index("Patient.identifier:insNia") < ids.index("Patient.active"))
    # the INS-NIR type is a CodeableConcept unrolled inside that slice only
    assert found["Patient.identifier:insNir.type.coding"]["min"] == 1
    assert found["Patient.identifier:insNir.type"]["patternCodeableConcept"]["coding"][0][
        "code"] == "INS-NIR"
    assert "Patient.identifier:insNia.type.coding" not in found
    assert found["Patient.identifier:insNir"]["max"] == "1"
    assert found["Patient.identifier:insNir"]["min"] == 0


def test_extension_slices_take_their_children_from_the_extension_definition(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    found = by_id(snapshot(profiles, "test-patient", resolve))
    assert found["Patient.extension"]["slicing"]["discriminator"] == [
        {"type": "value", "path": "url"}]
    slice_element = found["Patient.extension:consentLevel"]
    assert slice_element["type"] == [{"code": "Extension", "profile": [
        CANONICAL + "test-extension"]}]
    assert found["Patient.extension:consentLevel.url"]["fixedUri"] == CANONICAL + "test-extension"
    value = found["Patient.extension:consentLevel.value[x]"]
    assert value["type"] == [{"code": "code"}]
    assert value["min"] == 1
    assert value["binding"]["valueSet"] == "https://example.org/fhir/ValueSet/consent-level"
    assert found["Patient.extension:consentLevel.extension"]["max"] == "0"


def test_an_extension_we_do_not_hold_still_has_its_url_fixed(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    found = by_id(snapshot(profiles, "test-patient", resolve))
    assert found["Patient.extension:birthPlace.url"]["fixedUri"] == (
        "http://hl7.org/fhir/StructureDefinition/patient-birthPlace")
    assert found["Patient.extension:birthPlace"]["max"] == "1"
    assert len(found["Patient.extension:birthPlace.value[x]"]["type"]) > 40


def test_type_profiles_and_target_profiles_are_kept(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    found = by_id(snapshot(profiles, "test-task", resolve))
    assert found["Task.for"]["type"] == [{"code": "Reference",
                                          "targetProfile": [CANONICAL + "test-patient"]}]
    assert found["Task.for"]["min"] == 1
    photo_value = found["Task.input:photo.value[x]"]
    assert photo_value["type"] == [{"code": "Reference", "targetProfile": [
        "http://hl7.org/fhir/StructureDefinition/Media"]}]
    assert found["Task.input.value[x]"]["type"] != photo_value["type"]
    assert found["Task.businessStatus"]["binding"]["strength"] == "required"
    patient = by_id(snapshot(profiles, "test-patient", resolve))
    assert patient["Patient.managingOrganization"]["type"][0]["targetProfile"] == [
        CANONICAL + "test-organization"]


def test_a_resource_type_narrows_a_resource_element_with_a_profile(resolve: Resolver) -> None:
    bundle = profile_on("http://hl7.org/fhir/StructureDefinition/Bundle", {
        "id": "Bundle.entry.resource", "path": "Bundle.entry.resource",
        "type": [{"code": "Patient", "profile": [CANONICAL + "test-patient"]}]},
        type_name="Bundle")
    found = by_id(generate_snapshot(bundle, resolve)["snapshot"]["element"])
    assert found["Bundle.entry.resource"]["type"] == [
        {"code": "Patient", "profile": [CANONICAL + "test-patient"]}]
    wrong = copy.deepcopy(bundle)
    wrong["differential"]["element"][0]["type"][0]["code"] = "Practitioner"
    with pytest.raises(SnapshotError, match="constrains Patient, not Practitioner"):
        generate_snapshot(wrong, resolve)


def test_profile_on_profile(profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    elements = snapshot(profiles, "test-patient-minor", resolve)
    ids = [e["id"] for e in elements]
    found = by_id(elements)
    assert found["Patient.identifier:insNir"]["min"] == 1
    assert found["Patient.identifier:insNir.system"]["fixedUri"] == "urn:oid:1.2.250.1.213.1.4.8"
    assert found["Patient.identifier:insNir.type.coding"]["min"] == 1
    assert found["Patient.birthDate"]["min"] == 1
    assert found["Patient.contact"]["min"] == 1
    assert children_of(elements, "Patient.identifier:nss") == [
        f"Patient.identifier:nss.{child}" for child in IDENTIFIER_CHILDREN]
    assert found["Patient.identifier:nss.system"]["fixedUri"] == "urn:oid:1.2.250.1.213.1.4.10"
    assert ids.index("Patient.identifier:insNia") < ids.index("Patient.identifier:nss") < ids.index(
        "Patient.active")
    assert [c["key"] for c in found["Patient"]["constraint"]].count("tp-1") == 1


def test_a_base_given_without_snapshot_is_generated_first(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    base = profiles[CANONICAL + "test-patient"]
    assert "snapshot" not in base
    generated = generate_snapshot(profiles[CANONICAL + "test-patient-minor"], resolve)
    with_snapshot = generate_snapshot(base, resolve)
    assert generate_snapshot(profiles[CANONICAL + "test-patient-minor"],
                             {**profiles, base["url"]: with_snapshot}.get) == generated


def test_constraints_are_added_with_their_source_and_the_base_ones_kept(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    root = snapshot(profiles, "test-patient", resolve)[0]
    keys = [c["key"] for c in root["constraint"]]
    assert keys[:5] == ["dom-2", "dom-3", "dom-4", "dom-5", "dom-6"]
    added = root["constraint"][keys.index("tp-1")]
    assert added["source"] == CANONICAL + "test-patient"
    assert added["expression"] == "name.exists()"
    assert root["short"] == "A patient with French national identifiers"


def test_the_snapshot_is_placed_before_the_differential_and_the_input_untouched(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    source = profiles[CANONICAL + "test-patient"]
    before = json.dumps(source)
    result = generate_snapshot(source, resolve)
    keys = list(result)
    assert keys.index("snapshot") == keys.index("differential") - 1
    assert result["differential"] == source["differential"]
    assert json.dumps(source) == before
    first = result["snapshot"]["element"][1]
    assert list(first)[:2] == ["id", "path"]
    assert all("definition" in element for element in result["snapshot"]["element"])


def test_generation_is_deterministic(profiles: dict[str, dict[str, Any]],
                                     resolve: Resolver) -> None:
    outputs = {json.dumps(generate_snapshot(profiles[CANONICAL + name], resolve))
               for name in ("test-patient-minor",) for _ in range(3)}
    assert len(outputs) == 1


def test_a_differential_without_ids_is_placed_by_path_and_slice_order(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    with_ids = profiles[CANONICAL + "test-patient"]
    without_ids = copy.deepcopy(with_ids)
    for element in without_ids["differential"]["element"]:
        del element["id"]
    assert (generate_snapshot(without_ids, resolve)["snapshot"]
            == generate_snapshot(with_ids, resolve)["snapshot"])


def test_a_content_reference_is_unrolled_from_the_element_it_names() -> None:
    questionnaire = profile_on("http://hl7.org/fhir/StructureDefinition/Questionnaire", {
        "id": "Questionnaire.item.item.linkId", "path": "Questionnaire.item.item.linkId",
        "maxLength": 20}, type_name="Questionnaire")
    elements = generate_snapshot(questionnaire, lambda _url: None)["snapshot"]["element"]
    found = by_id(elements)
    assert found["Questionnaire.item.item.linkId"]["maxLength"] == 20
    assert found["Questionnaire.item.item.linkId"]["min"] == 1
    assert "Questionnaire.item.item.item" in found
    assert "maxLength" not in found["Questionnaire.item.linkId"]


def test_a_choice_named_by_its_type_restricts_the_choice() -> None:
    patient = profile_on(CORE_PATIENT, {"id": "Patient.deceasedBoolean",
                                        "path": "Patient.deceasedBoolean", "mustSupport": True})
    found = by_id(generate_snapshot(patient, lambda _url: None)["snapshot"]["element"])
    assert found["Patient.deceased[x]"]["type"] == [{"code": "boolean"}]
    assert found["Patient.deceased[x]"]["mustSupport"] is True


def test_a_type_slice_keeps_only_its_type() -> None:
    patient = profile_on(CORE_PATIENT, {"id": "Patient.deceased[x]:deceasedDateTime",
                                        "path": "Patient.deceased[x]",
                                        "sliceName": "deceasedDateTime"})
    found = by_id(generate_snapshot(patient, lambda _url: None)["snapshot"]["element"])
    assert found["Patient.deceased[x]"]["slicing"]["discriminator"] == [
        {"type": "type", "path": "$this"}]
    assert found["Patient.deceased[x]:deceasedDateTime"]["type"] == [{"code": "dateTime"}]


def test_fixed_and_pattern_values_only_tighten(
        profiles: dict[str, dict[str, Any]], resolve: Resolver) -> None:
    base = CANONICAL + "test-patient"
    refix = profile_on(base, {"id": "Patient.identifier:insNir.system",
                              "path": "Patient.identifier.system", "fixedUri": "urn:other"})
    with pytest.raises(SnapshotError, match="fixedUri conflicts with the base's fixedUri"):
        generate_snapshot(refix, resolve)
    loosen = profile_on(base, {"id": "Patient.identifier:insNir.type",
                               "path": "Patient.identifier.type",
                               "patternCodeableConcept": {"text": "NIR"}})
    with pytest.raises(SnapshotError, match="would loosen the base's patternCodeableConcept"):
        generate_snapshot(loosen, resolve)
    tighter = profile_on(base, {"id": "Patient.identifier:insNir.type",
                                "path": "Patient.identifier.type", "patternCodeableConcept": {
                                    "coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/"
                                                "fr-core-cs-v2-0203", "code": "INS-NIR"}],
                                    "text": "NIR"}})
    found = by_id(generate_snapshot(tighter, resolve)["snapshot"]["element"])
    assert found["Patient.identifier:insNir.type"]["patternCodeableConcept"]["text"] == "NIR"
    wrong_type = profile_on(CORE_PATIENT, {"id": "Patient.gender", "path": "Patient.gender",
                                           "fixedUri": "male"})
    with pytest.raises(SnapshotError, match="fixedUri does not match the element's types"):
        generate_snapshot(wrong_type, lambda _url: None)


def test_a_closed_slicing_cannot_be_reopened_nor_extended(resolve: Resolver) -> None:
    closed = profile_on(CORE_PATIENT,
                        {"id": "Patient.identifier", "path": "Patient.identifier",
                         "slicing": {"discriminator": [{"type": "value", "path": "system"}],
                                     "rules": "closed"}},
                        {"id": "Patient.identifier:a", "path": "Patient.identifier",
                         "sliceName": "a"})
    closed_sd = generate_snapshot(closed, lambda _url: None)
    known = {closed["url"]: closed_sd}
    for diff, message in (
            ({"id": "Patient.identifier", "path": "Patient.identifier",
              "slicing": {"rules": "open"}}, "slicing is closed; it cannot be reopened"),
            ({"id": "Patient.identifier:b", "path": "Patient.identifier", "sliceName": "b"},
             "the base closes the slicing of Patient.identifier; no slice can be added")):
        derived = {**profile_on(closed["url"], diff), "url": CANONICAL + "derived"}
        with pytest.raises(SnapshotError, match=re.escape(message)):
            generate_snapshot(derived, known.get)


def test_slice_minimums_cannot_exceed_the_sliced_maximum() -> None:
    patient = profile_on(
        CORE_PATIENT,
        {"id": "Patient.deceased[x]:deceasedBoolean", "path": "Patient.deceased[x]",
         "sliceName": "deceasedBoolean", "min": 1},
        {"id": "Patient.deceased[x]:deceasedDateTime", "path": "Patient.deceased[x]",
         "sliceName": "deceasedDateTime", "min": 1})
    with pytest.raises(SnapshotError, match="its slices require 2 items, above its max 1"):
        generate_snapshot(patient, lambda _url: None)


def test_a_missing_base_and_a_cycle_are_reported() -> None:
    with pytest.raises(SnapshotError, match=re.escape("base https://example.org/none not found")):
        generate_snapshot(profile_on("https://example.org/none"), lambda _url: None)
    first = {**profile_on(CANONICAL + "b"), "url": CANONICAL + "a"}
    second = {**profile_on(CANONICAL + "a"), "url": CANONICAL + "b"}
    known = {first["url"]: first, second["url"]: second}
    with pytest.raises(SnapshotError, match="cycle"):
        generate_snapshot(first, known.get)


def test_every_core_resource_accepts_an_empty_differential() -> None:
    for name, definition in structure_definitions().items():
        if definition.get("kind") != "resource" or definition.get("abstract"):
            continue
        result = generate_snapshot(profile_on(definition["url"], type_name=name),
                                   lambda _url: None)
        assert [e["id"] for e in result["snapshot"]["element"]] == [
            e["id"] for e in definition["snapshot"]["element"]], name
