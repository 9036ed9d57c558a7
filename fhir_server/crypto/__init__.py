"""Encryption at rest: key loading, the field cipher (AES-256-GCM), blind indexes (HMAC-SHA256)."""

from fhir_server.crypto.fields import (
    DEFAULT_POLICY,
    INS_IDENTIFIER_SYSTEMS,
    SEALED_PREFIX,
    FieldCipher,
    ReservedValueError,
    SealedValueError,
    SensitivePolicy,
    sealed_paths,
)
from fhir_server.crypto.keys import ConfigurationError, KeyMaterial, load_keys

__all__ = [
    "DEFAULT_POLICY",
    "INS_IDENTIFIER_SYSTEMS",
    "SEALED_PREFIX",
    "ConfigurationError",
    "FieldCipher",
    "KeyMaterial",
    "ReservedValueError",
    "SealedValueError",
    "SensitivePolicy",
    "load_keys",
    "sealed_paths",
]
