"""Client secrets: generated at random, shown once, stored only as salted scrypt hashes.

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt, base64url>$<key, base64url>``: the cost
parameters travel with it, so they can be raised later without breaking older secrets.
Verification derives the key again and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from fhir_server.crypto.base64url import b64url_decode, b64url_encode

SCHEME: Final = "scrypt"
COST_N: Final = 2**14
BLOCK_SIZE_R: Final = 8
PARALLELISM_P: Final = 1
SALT_BYTES: Final = 16
KEY_BYTES: Final = 32
SECRET_BYTES: Final = 32
MAX_MEMORY: Final = 64 * 1024 * 1024
"""Ceiling for scrypt's memory (it needs 128·n·r bytes: 16 MiB at the default cost)."""


@dataclass(frozen=True, slots=True)
class ScryptHash:
    """A parsed stored hash."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def render(self) -> str:
        return "$".join((SCHEME, str(self.n), str(self.r), str(self.p),
                         _encode(self.salt), _encode(self.key)))


def new_client_secret() -> str:
    """A fresh random secret (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """The text to store for ``secret``, with a new random salt."""
    if not secret:
        raise ValueError("a client secret cannot be empty")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(secret, salt=salt, n=COST_N, r=BLOCK_SIZE_R, p=PARALLELISM_P)
    return ScryptHash(COST_N, BLOCK_SIZE_R, PARALLELISM_P, salt, key).render()


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` is the one ``stored`` was made from (False for a malformed hash)."""
    parsed = _parse(stored)
    if parsed is None or not secret:
        return False
    key = _derive(secret, salt=parsed.salt, n=parsed.n, r=parsed.r, p=parsed.p)
    return hmac.compare_digest(key, parsed.key)


def _derive(secret: str, *, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=MAX_MEMORY, dklen=KEY_BYTES)


def _parse(stored: str) -> ScryptHash | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt, key = _decode(parts[4]), _decode(parts[5])
    except ValueError:
        return None
    if not _acceptable_cost(n, r, p) or not salt or len(key) != KEY_BYTES:
        return None
    return ScryptHash(n, r, p, salt, key)


def _acceptable_cost(n: int, r: int, p: int) -> bool:
    """Parameters scrypt accepts within ``MAX_MEMORY`` (a tampered hash must not exhaust it)."""
    power_of_two = n > 1 and n & (n - 1) == 0
    return power_of_two and 0 < r <= 32 and 0 < p <= 16 and 128 * n * r <= MAX_MEMORY // 2


def _encode(raw: bytes) -> str:
    return b64url_encode(raw)


def _decode(text: str) -> bytes:
    try:
        return b64url_decode(text)
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc
