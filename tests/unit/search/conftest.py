"""Fixtures for the search unit tests: an Indexer with real keys (INS-NIR blind-indexed)."""

from __future__ import annotations

import pytest

from fhir_server.crypto import FieldCipher, KeyMaterial
from fhir_server.engine.indexing import Indexer

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
NIR = "180017512345678"


@pytest.fixture(scope="session")
def cipher() -> FieldCipher:
    return FieldCipher(KeyMaterial.from_data_key(bytes(range(32))))


@pytest.fixture(scope="session")
def indexer(cipher: FieldCipher) -> Indexer:
    return Indexer(blind_index=cipher.blind_index, is_sensitive=cipher.is_sensitive_identifier)
