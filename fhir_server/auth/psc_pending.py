"""The pending Pro Santé Connect sign-in kept by the browser between the redirect to PSC and
the callback: sealed with AES-256-GCM under a key derived from the server's secret, so the
browser can neither read the PKCE verifier and nonce nor change anything, and expiring."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fhir_server.auth.pro_sante_connect import PendingSignIn, session_expired
from fhir_server.crypto.base64url import b64url_decode, b64url_encode

MIN_PENDING_KEY_BYTES: Final = 32
_PENDING_FORMAT: Final = "v1."
_PENDING_INFO: Final = b"pictaderm/psc-pending-sign-in/v1"


def seal_pending(pending: PendingSignIn, *, key: bytes) -> str:
    """The pending sign-in as a cookie value: AES-256-GCM under a key derived from ``key``
    (at least 32 bytes of the server's secret), so the browser can neither read the PKCE
    verifier nor change anything. Opened by ``open_pending``."""
    nonce = secrets.token_bytes(12)
    plaintext = json.dumps(asdict(pending), separators=(",", ":")).encode()
    sealed = AESGCM(_pending_key(key)).encrypt(nonce, plaintext, _PENDING_INFO)
    return _PENDING_FORMAT + b64url_encode(nonce + sealed)


def open_pending(value: str, *, key: bytes, now: float | None = None) -> PendingSignIn:
    """The pending sign-in sealed in ``value``; ``PscSignInRefused`` (``psc-session-expired``)
    when it was not sealed with ``key``, was altered, or has expired."""
    if not value.startswith(_PENDING_FORMAT):
        raise session_expired("the pending sign-in cookie has an unknown format")
    try:
        raw = b64url_decode(value[len(_PENDING_FORMAT):])
        plaintext = AESGCM(_pending_key(key)).decrypt(raw[:12], raw[12:], _PENDING_INFO)
        pending = PendingSignIn(**json.loads(plaintext))
    except (InvalidTag, ValueError, TypeError, UnicodeError) as error:
        raise session_expired("the pending sign-in cookie does not open") from error
    if (time.time() if now is None else now) > pending.expires_at:
        raise session_expired("the pending sign-in expired before the callback")
    return pending


def _pending_key(key: bytes) -> bytes:
    if len(key) < MIN_PENDING_KEY_BYTES:
        raise ValueError(f"the pending sign-in key needs at least {MIN_PENDING_KEY_BYTES} bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PENDING_INFO).derive(key)
