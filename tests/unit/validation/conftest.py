"""Shared fixtures for the validation tests: validators over the core R4 definitions, and over
the hand-written profiles and terminology of ``fixtures/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_server.validation import StructureValidator
from fhir_server.validation.structure import shared_validator
from fhir_server.validation.terminology import Terminology
from fhir_server.validation.validator import ProfileValidator

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_BASE = "https://fhir.pictaderm.com/test"


def fixture_resources(prefix: str) -> list[dict[str, Any]]:
    """The fixture resources whose file name starts with ``prefix`` (e.g. ``ValueSet-``)."""
    return [json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(FIXTURES.glob(f"{prefix}*.json"))]


@pytest.fixture(scope="session")
def validator() -> StructureValidator:
    return shared_validator()


@pytest.fixture(scope="session")
def terminology() -> Terminology:
    return Terminology([*fixture_resources("CodeSystem-"), *fixture_resources("ValueSet-")])


@pytest.fixture(scope="session")
def core_validator() -> ProfileValidator:
    return ProfileValidator()


@pytest.fixture(scope="session")
def profile_validator(terminology: Terminology) -> ProfileValidator:
    return ProfileValidator(fixture_resources("StructureDefinition-"), terminology)
