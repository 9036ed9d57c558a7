"""Loading a guide directory: resources by type and url, examples, snapshots, clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fhir_server.ig import GuideError, default_guide_directory, load_guide
from tests.unit.ig.conftest import CANONICAL, make_guide, write_json


def test_a_guide_is_loaded_with_every_snapshot_generated(tmp_path: Path) -> None:
    guide = load_guide(make_guide(tmp_path / "guide"))
    assert guide.package_id == "example.fhir.test#1.0.0"
    assert set(guide.structure_definitions) == {
        CANONICAL + name for name in ("test-extension", "test-organization", "test-patient",
                                      "test-patient-minor", "test-task")}
    for definition in guide.structure_definitions.values():
        elements = definition["snapshot"]["element"]
        assert elements[0]["id"] == definition["type"]
    minor = guide.structure_definitions[CANONICAL + "test-patient-minor"]
    minor_ids = [e["id"] for e in minor["snapshot"]["element"]]
    assert "Patient.identifier:insNir.type.coding" in minor_ids
    assert list(guide.value_sets) == ["https://example.org/fhir/ValueSet/consent-level"]
    assert guide.by_url["https://example.org/fhir/ValueSet/consent-level"]["id"] == "consent-level"
    assert [r["id"] for r in guide.by_type["StructureDefinition"]] == [
        "test-extension", "test-organization", "test-patient-minor", "test-patient", "test-task"]
    assert next(iter(guide.files)) == "StructureDefinition-test-extension.json"
    assert guide.code_systems == {} and guide.implementation_guide is None


def test_examples_are_split_into_valid_and_invalid_with_their_expectation(
        tmp_path: Path) -> None:
    guide = load_guide(make_guide(tmp_path / "guide"))
    valid = [e for e in guide.examples if e.valid]
    invalid = [e for e in guide.examples if not e.valid]
    assert [e.filename for e in valid] == ["examples/Patient-example.json"]
    assert valid[0].profiles == (CANONICAL + "test-patient",)
    assert valid[0].expected is None
    assert [e.filename for e in invalid] == ["examples/invalid/Patient-no-birthdate.json"]
    assert invalid[0].expected is not None
    assert invalid[0].expected["expression"] == "Patient.birthDate"


def test_a_guide_is_loaded_once_per_directory(tmp_path: Path) -> None:
    directory = make_guide(tmp_path / "guide")
    first = load_guide(directory)
    assert load_guide(directory / ".." / "guide") is first
    assert load_guide(make_guide(tmp_path / "other")) is not first


def test_bad_json_names_the_file_and_the_position(tmp_path: Path) -> None:
    directory = make_guide(tmp_path / "guide")
    (directory / "ValueSet-broken.json").write_text('{"resourceType": "ValueSet",\n  "id": }',
                                                    encoding="utf-8")
    with pytest.raises(GuideError, match=r"ValueSet-broken.json: invalid JSON at line 2"):
        load_guide(directory)


def test_a_broken_base_names_the_profile_file(tmp_path: Path) -> None:
    directory = make_guide(tmp_path / "guide")
    path = directory / "StructureDefinition-test-patient.json"
    profile = json.loads(path.read_text(encoding="utf-8"))
    profile["baseDefinition"] = "https://example.org/fhir/StructureDefinition/missing"
    write_json(path, profile)
    with pytest.raises(GuideError, match=r"StructureDefinition-test-patient.json: .*base "
                                         r"https://example.org/fhir/StructureDefinition/missing "
                                         r"not found"):
        load_guide(directory)


def test_a_bad_differential_deep_in_a_base_names_the_base_file(tmp_path: Path) -> None:
    directory = make_guide(tmp_path / "guide")
    path = directory / "StructureDefinition-test-patient.json"
    profile = json.loads(path.read_text(encoding="utf-8"))
    profile["differential"]["element"].append(
        {"id": "Patient.gender", "path": "Patient.gender", "max": "*"})
    write_json(path, profile)
    with pytest.raises(GuideError, match=r"StructureDefinition-test-patient.json: "
                                         r"Patient.gender: max \* would widen"):
        load_guide(directory)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: (d / "package.json").unlink(), "package.json: the package manifest is missing"),
    (lambda d: write_json(d / "package.json", {"name": "x"}), "needs a 'name' and a 'version'"),
    (lambda d: (d / "examples/invalid/Patient-no-birthdate.expected.json").unlink(),
     "Patient-no-birthdate.json: an invalid example needs its "
     "Patient-no-birthdate.expected.json"),
    (lambda d: write_json(d / "ValueSet-again.json", {
        "resourceType": "ValueSet", "id": "again",
        "url": "https://example.org/fhir/ValueSet/consent-level"}),
     "ValueSet-consent-level.json: canonical url https://example.org/fhir/ValueSet/"
     "consent-level is already used by ValueSet-again.json"),
    (lambda d: write_json(d / "ValueSet-noid.json", {"resourceType": "ValueSet"}),
     "ValueSet-noid.json: a conformance resource needs an id"),
    (lambda d: write_json(d / "Other.json", [1, 2]), "Other.json: not a FHIR resource"),
])
def test_guide_errors_name_the_file(tmp_path: Path, mutate: object, message: str) -> None:
    directory = make_guide(tmp_path / "guide")
    assert callable(mutate)
    mutate(directory)
    with pytest.raises(GuideError, match=re.escape(message)):
        load_guide(directory)


def test_the_default_directory_is_the_checkout_profiles() -> None:
    directory = default_guide_directory()
    assert directory == Path(__file__).resolve().parents[3] / "profiles"


def test_the_repository_guide_loads() -> None:
    directory = default_guide_directory()
    if not any(directory.glob("StructureDefinition-*.json")) or not (
            directory / "package.json").is_file():
        pytest.skip("profiles/ holds no StructureDefinition or package.json yet")
    guide = load_guide(directory)
    assert guide.structure_definitions
    for url, definition in guide.structure_definitions.items():
        assert definition["snapshot"]["element"], url
        assert definition["snapshot"]["element"][0]["path"] == definition["type"]


def test_a_profile_may_reference_itself_but_not_derive_in_a_cycle(tmp_path: Path) -> None:
    directory = make_guide(tmp_path / "guide")
    path = directory / "StructureDefinition-test-patient.json"
    profile = json.loads(path.read_text(encoding="utf-8"))
    profile["differential"]["element"].append({
        "id": "Patient.link.other", "path": "Patient.link.other",
        "type": [{"code": "Reference", "targetProfile": [CANONICAL + "test-patient"]}]})
    write_json(path, profile)
    guide = load_guide(directory)
    other = next(e for e in guide.structure_definitions[CANONICAL + "test-patient"]["snapshot"][
        "element"] if e["id"] == "Patient.link.other")
    assert other["type"][0]["targetProfile"] == [CANONICAL + "test-patient"]

    cyclic = make_guide(tmp_path / "cyclic")
    path = cyclic / "StructureDefinition-test-patient.json"
    profile = json.loads(path.read_text(encoding="utf-8"))
    profile["baseDefinition"] = CANONICAL + "test-patient-minor"
    write_json(path, profile)
    with pytest.raises(GuideError, match=r"StructureDefinition-test-patient(-minor)?\.json: .*"
                                         r"cycle"):
        load_guide(cyclic)
