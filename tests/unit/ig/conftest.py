"""Shared fixtures for the guide tooling tests: the hand-written test profiles and a small guide."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CANONICAL = "https://example.org/fhir/StructureDefinition/"
Resolver = Callable[[str], "dict[str, Any] | None"]


def fixture_profiles() -> dict[str, dict[str, Any]]:
    """The test StructureDefinitions (differential only) by canonical url."""
    profiles: dict[str, dict[str, Any]] = {}
    for path in sorted(FIXTURES.glob("StructureDefinition-*.json")):
        profile = json.loads(path.read_text(encoding="utf-8"))
        profiles[profile["url"]] = profile
    return profiles


@pytest.fixture
def profiles() -> dict[str, dict[str, Any]]:
    return fixture_profiles()


@pytest.fixture
def resolve(profiles: dict[str, dict[str, Any]]) -> Resolver:
    return profiles.get


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


def make_guide(directory: Path) -> Path:
    """A small guide directory: the fixture profiles, a ValueSet, a manifest and examples."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in FIXTURES.glob("StructureDefinition-*.json"):
        shutil.copy(path, directory / path.name)
    write_json(directory / "package.json", {
        "name": "example.fhir.test", "version": "1.0.0", "canonical": "https://example.org/fhir",
        "fhirVersions": ["4.0.1"], "dependencies": {"hl7.fhir.r4.core": "4.0.1"},
        "type": "fhir.ig", "title": "Test guide", "license": "Apache-2.0",
    })
    write_json(directory / "ValueSet-consent-level.json", {
        "resourceType": "ValueSet", "id": "consent-level", "status": "active",
        "url": "https://example.org/fhir/ValueSet/consent-level", "version": "1.0.0",
        "compose": {"include": [{"system": "https://example.org/fhir/CodeSystem/consent-level"}]},
    })
    patient = {
        "resourceType": "Patient", "id": "example",
        "meta": {"profile": [CANONICAL + "test-patient"]},
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "1840599123456"}],
        "name": [{"family": "Martin"}], "birthDate": "1984-05-09",
    }
    write_json(directory / "examples" / "Patient-example.json", patient)
    no_birth_date = {key: value for key, value in patient.items() if key != "birthDate"}
    write_json(directory / "examples" / "invalid" / "Patient-no-birthdate.json",
               {**no_birth_date, "id": "no-birthdate"})
    write_json(directory / "examples" / "invalid" / "Patient-no-birthdate.expected.json",
               {"reason": "birthDate is required", "expression": "Patient.birthDate",
                "code": "required"})
    return directory
