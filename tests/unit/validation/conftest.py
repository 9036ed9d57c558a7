"""Shared fixtures for the validation tests: one validator over the core R4 definitions."""

from __future__ import annotations

import pytest

from fhir_server.validation import StructureValidator
from fhir_server.validation.structure import shared_validator


@pytest.fixture(scope="session")
def validator() -> StructureValidator:
    return shared_validator()
