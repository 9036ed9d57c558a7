"""Signing keys for the XDS tests: RSA 2048 with self-signed certificates, made once per
session (key generation is what a test would otherwise spend most time on)."""

from __future__ import annotations

import pytest

from fhir_server.dmp.xds.signing import SigningMaterial, load_signing_material
from tests.support.xds_repository import self_signed


@pytest.fixture(scope="session")
def signing_pem() -> tuple[str, str]:
    """The structure's key and certificate (PEM) that the repository trusts."""
    return self_signed("Pictaderm test structure")


@pytest.fixture(scope="session")
def other_signing_pem() -> tuple[str, str]:
    """Another key and certificate, which the repository does not trust."""
    return self_signed("Someone else")


@pytest.fixture(scope="session")
def material(signing_pem: tuple[str, str]) -> SigningMaterial:
    return load_signing_material(*signing_pem)


@pytest.fixture(scope="session")
def other_material(other_signing_pem: tuple[str, str]) -> SigningMaterial:
    return load_signing_material(*other_signing_pem)
