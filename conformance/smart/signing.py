"""Client assertions of a SMART backend client (``private_key_jwt``, RFC 7523 section 2.2).

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-asymmetric.html. The key
is the client's private key in PEM: RSA signs RS384, EC P-384 signs ES384. The header carries
``alg``, ``kid`` and ``typ: JWT``; the claims ``iss = sub = client_id``, ``aud`` (the token URL),
``exp`` (at most five minutes ahead), ``iat`` and a fresh ``jti``. The kit also signs assertions
that break one rule (``dataclasses.replace`` on ``AssertionClaims``) to check they are refused.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

ASSERTION_LIFETIME = 240
"""Seconds an assertion the kit signs is valid (SMART allows at most 300)."""
MIN_RSA_BITS = 2048
EC_CURVE = "P-384"


class UnusableKey(ValueError):
    """The PEM is not a private key the kit can sign assertions with; the message says why."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A backend client's private key and the algorithm it signs with (RS384 or ES384)."""

    key: RSAKey | ECKey
    algorithm: str


@dataclass(frozen=True, slots=True)
class AssertionClaims:
    """What one assertion says; ``replace`` a field to make an assertion break a rule."""

    client_id: str
    audience: str
    kid: str
    jti: str
    issued_at: int
    expires_at: int

    def header(self, algorithm: str) -> dict[str, Any]:
        return {"alg": algorithm, "kid": self.kid, "typ": "JWT"}

    def claims(self) -> dict[str, Any]:
        return {"iss": self.client_id, "sub": self.client_id, "aud": self.audience,
                "jti": self.jti, "iat": self.issued_at, "exp": self.expires_at}


def load_signing_key(pem: bytes) -> SigningKey:
    """The signing key in a PEM private key: RSA (at least 2048 bits) or EC P-384."""
    key = _imported(pem)
    if isinstance(key, RSAKey):
        bits = key.private_key.key_size if key.private_key is not None else 0
        if bits < MIN_RSA_BITS:
            raise UnusableKey(f"the RSA key has {bits} bits; SMART needs at least {MIN_RSA_BITS}")
        return SigningKey(key=key, algorithm="RS384")
    if key.curve_name != EC_CURVE:
        raise UnusableKey(f"the EC key is on {key.curve_name}; ES384 needs {EC_CURVE}")
    return SigningKey(key=key, algorithm="ES384")


def _imported(pem: bytes) -> RSAKey | ECKey:
    """The private key in ``pem``, RSA or EC; UnusableKey for anything else."""
    for key_type in (RSAKey, ECKey):
        try:
            key = key_type.import_key(pem)
        except (JoseError, ValueError, TypeError):
            continue
        if not key.is_private:
            raise UnusableKey("the PEM holds a public key; the kit needs the private key")
        return key
    raise UnusableKey("the file is not a PEM RSA or EC private key (without a passphrase)")


def assertion_claims(*, client_id: str, audience: str, kid: str, now: float | None = None,
                     lifetime: int = ASSERTION_LIFETIME) -> AssertionClaims:
    """The claims of a valid assertion, with a fresh random ``jti``."""
    issued_at = int(time.time() if now is None else now)
    return AssertionClaims(client_id=client_id, audience=audience, kid=kid,
                           jti=secrets.token_urlsafe(24), issued_at=issued_at,
                           expires_at=issued_at + lifetime)


def sign_assertion(key: SigningKey, claims: AssertionClaims) -> str:
    """The compact JWT of ``claims``, signed with ``key``."""
    return jwt.encode(claims.header(key.algorithm), claims.claims(), key.key,
                      algorithms=[key.algorithm])
