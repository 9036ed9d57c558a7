"""Key loading for encryption at rest: the AES-256 data key and the HMAC key derived from it.

The data key comes from ``FHIR_SERVER_ENCRYPTION_KEY`` (base64 of 32 bytes). Production refuses
to start without it. Development without it reads, or creates once,
``<data_dir>/keys/encryption.key``, so that a restarted dev server still reads what it stored.
Error messages never echo a key.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fhir_server.crypto.secret_files import create_secret_file
from fhir_server.settings import Mode, Settings

KEY_BYTES = 32
BLIND_INDEX_INFO = b"pictaderm blind index v1"
DEVELOPMENT_KEY_FILE = Path("keys") / "encryption.key"

_ENV_NAME = "FHIR_SERVER_ENCRYPTION_KEY"
_NEW_KEY_HINT = ("generate one with: python -c \"import base64, os; "
                 "print(base64.b64encode(os.urandom(32)).decode())\"")


class ConfigurationError(Exception):
    """The server cannot start as configured; the message says what to change."""


@dataclass(frozen=True)
class KeyMaterial:
    """The data key (AES-256-GCM) and the blind-index key (HMAC-SHA256), never shown in repr."""

    data_key: bytes = field(repr=False)
    blind_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.data_key) != KEY_BYTES or len(self.blind_key) != KEY_BYTES:
            raise ValueError(f"both keys must be {KEY_BYTES} bytes long")

    @classmethod
    def from_data_key(cls, data_key: bytes) -> KeyMaterial:
        """Key material whose blind-index key is derived from ``data_key`` by HKDF-SHA256."""
        return cls(data_key=data_key, blind_key=derive_blind_key(data_key))


def derive_blind_key(data_key: bytes) -> bytes:
    """The HMAC key for blind indexes, bound to the data key and to the index's version."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=BLIND_INDEX_INFO)
    return hkdf.derive(data_key)


def load_keys(settings: Settings) -> KeyMaterial:
    """The key material the server runs with, from the environment or the development key file."""
    configured = _configured_key(settings)
    if configured is not None:
        return KeyMaterial.from_data_key(decode_key(configured, source=_ENV_NAME))
    if settings.mode == Mode.PRODUCTION:
        raise ConfigurationError(
            f"{_ENV_NAME} is required in production: set it to the base64 of 32 random bytes "
            f"and keep it safe, as stored data cannot be read without it ({_NEW_KEY_HINT}).")
    return KeyMaterial.from_data_key(_development_key(settings.data_dir / DEVELOPMENT_KEY_FILE))


def decode_key(encoded: str, *, source: str) -> bytes:
    """The 32 bytes of a base64 key (standard or URL-safe); ``source`` names it in errors."""
    text = encoded.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"{source} is not valid base64: expected the base64 of {KEY_BYTES} random bytes "
            f"({_NEW_KEY_HINT}).") from None
    if len(raw) != KEY_BYTES:
        raise ConfigurationError(
            f"{source} must decode to exactly {KEY_BYTES} bytes for AES-256, "
            f"not {len(raw)} ({_NEW_KEY_HINT}).")
    return raw


def _configured_key(settings: Settings) -> str | None:
    if settings.encryption_key is None:
        return None
    value = settings.encryption_key.get_secret_value()
    return value if value.strip() else None


def _development_key(path: Path) -> bytes:
    if not path.exists():
        _create_key_file(path)
    return decode_key(path.read_text(encoding="ascii", errors="replace"),
                      source=f"the development key file {path}")


def _create_key_file(path: Path) -> None:
    """Write a new random key with mode 0600; if another process won the race, keep its key."""
    create_secret_file(path, base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")
