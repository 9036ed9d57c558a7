"""Opaque, signed paging cursors: a client can hand them back but cannot forge or alter them."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from fhir_server.crypto.base64url import b64url_decode, b64url_encode
from fhir_server.errors import ErrorCode, FhirError


def _b64(raw: bytes) -> str:
    return b64url_encode(raw)


def _unb64(text: str) -> bytes:
    return b64url_decode(text)


class CursorSigner:
    """Encodes a small JSON payload as ``<data>.<mac>`` with a keyed HMAC-SHA256 (truncated)."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"pictaderm paging cursor v1" + key).digest()

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()[:16]

    def encode(self, payload: dict[str, Any]) -> str:
        data = orjson.dumps(payload)
        return f"{_b64(data)}.{_b64(self._mac(data))}"

    def decode(self, token: str) -> dict[str, Any]:
        """The payload of a cursor; a tampered or malformed one is a 400."""
        try:
            data_part, mac_part = token.split(".", 1)
            data = _unb64(data_part)
            valid = hmac.compare_digest(_unb64(mac_part), self._mac(data))
            payload = orjson.loads(data) if valid else None
        except (ValueError, orjson.JSONDecodeError):
            payload = None
        if not isinstance(payload, dict):
            raise FhirError(ErrorCode.BAD_PARAMETER,
                            "The paging cursor is invalid or was altered: restart from the first "
                            "page", expression=("_cursor",))
        return payload
