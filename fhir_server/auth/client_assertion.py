"""Verifies a SMART Backend Services client assertion (``private_key_jwt``, RFC 7523).

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-asymmetric.html and RFC 7523
section 3 (notes and choices: ``docs/implementation/backend-services.md``).

Header: ``alg`` RS384 or ES384 (never ``none``, HMAC or anything else), ``typ`` = ``JWT``, a
``kid`` found in the client's keys, no ``crit``; a ``jku``, if sent, must be the registered JWKS
URL. Claims: ``iss`` = ``sub`` = client_id, ``aud`` = the token URL (or a list holding it), ``exp``
not past and at most five minutes ahead, ``iat``/``nbf`` not in the future, and a ``jti`` the
caller has not seen within its lifetime. Every failure raises ``InvalidClientAssertion`` whose
``reason`` is meant for the OAuth ``invalid_client`` ``error_description``: it says what is wrong
with the assertion and never carries key material.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError

from fhir_server.auth.jwks import JwksSource, JwksUnavailable, PublicKey
from fhir_server.crypto.base64url import b64url_decode

ACCEPTED_ALGORITHMS = frozenset({"RS384", "ES384"})
MAX_LIFETIME = 300.0
"""``exp`` may be at most this many seconds after the server's clock (SMART: five minutes)."""
CLOCK_LEEWAY = 30.0
"""Tolerated clock difference with the client, in seconds, for ``exp``, ``iat`` and ``nbf``."""
MAX_ASSERTION_LENGTH = 16 * 1024
MAX_JTI_LENGTH = 256

RememberJti = Callable[[str, str, float], Awaitable[bool]]
"""``(client_id, jti, forget_after)`` → True the first time, False when already seen (a replay).

The store keeps the pair until ``forget_after`` (epoch seconds), after which the assertion is
refused as expired anyway.
"""

_KEY_TYPE_FOR_ALGORITHM = {"RS384": "RSA", "ES384": "EC"}


class InvalidClientAssertion(Exception):
    """The assertion does not authenticate the client; ``reason`` is safe to show to it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class AssertionClaims:
    """What a verified assertion established: who signed it, with which key, until when."""

    client_id: str
    jti: str
    kid: str
    algorithm: str
    expires_at: float
    issued_at: float | None


async def verify_client_assertion(
    assertion: str, *, client_id: str, token_url: str, keys: JwksSource,
    remember_jti: RememberJti, now: float | None = None,
) -> AssertionClaims:
    """The checked claims of ``assertion``; ``InvalidClientAssertion`` on any failure."""
    current = time.time() if now is None else now
    header = _header_of(assertion)
    algorithm, kid = _check_header(header, keys)
    key = await _key_for(keys, kid, algorithm)
    claims = _verified_claims(assertion, key, algorithm)
    expires_at, issued_at = _check_claims(claims, client_id=client_id, token_url=token_url,
                                          now=current)
    jti = _check_jti(claims)
    if not await remember_jti(client_id, jti, expires_at + CLOCK_LEEWAY):
        raise InvalidClientAssertion("this jti was already used: an assertion is single-use")
    return AssertionClaims(client_id=client_id, jti=jti, kid=kid, algorithm=algorithm,
                           expires_at=expires_at, issued_at=issued_at)


def _header_of(assertion: str) -> Mapping[str, Any]:
    """The protected header of a compact JWS (three base64url parts), before any key is used."""
    if len(assertion) > MAX_ASSERTION_LENGTH:
        raise InvalidClientAssertion("client_assertion is too long")
    parts = assertion.split(".")
    if len(parts) != 3 or not parts[0]:
        raise InvalidClientAssertion("client_assertion is not a compact JWS (JWT)")
    try:
        segment = parts[0].encode("ascii")
        header = json.loads(b64url_decode(segment))
    except (ValueError, UnicodeError, RecursionError) as error:
        raise InvalidClientAssertion("the client_assertion header is not base64url JSON") from error
    if not isinstance(header, dict):
        raise InvalidClientAssertion("the client_assertion header is not a JSON object")
    return header


def _check_header(header: Mapping[str, Any], keys: JwksSource) -> tuple[str, str]:
    """The ``alg`` and ``kid`` of an acceptable header."""
    algorithm = header.get("alg")
    if not isinstance(algorithm, str):
        raise InvalidClientAssertion("the JWT header has no alg")
    if algorithm not in ACCEPTED_ALGORITHMS:
        raise InvalidClientAssertion(
            f"alg {_quoted(algorithm)} is not accepted: use RS384 or ES384")
    if header.get("typ") != "JWT":
        raise InvalidClientAssertion("the JWT header typ must be 'JWT'")
    if "crit" in header:
        raise InvalidClientAssertion("the JWT header must not carry crit extensions")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidClientAssertion("the JWT header has no kid")
    jku = header.get("jku")
    if jku is not None and jku != keys.url:
        raise InvalidClientAssertion("the JWT header jku is not the client's registered JWKS URL")
    return algorithm, kid


async def _key_for(keys: JwksSource, kid: str, algorithm: str) -> PublicKey:
    """The client's key named ``kid``, when it can verify ``algorithm``."""
    try:
        key = await keys.key_for(kid)
    except JwksUnavailable as error:
        raise InvalidClientAssertion(error.reason) from error
    if key is None:
        raise InvalidClientAssertion(f"no key with kid {_quoted(kid)} in the client's JWKS")
    declared = key.get("alg")
    if key.key_type != _KEY_TYPE_FOR_ALGORITHM[algorithm] or declared not in (None, algorithm):
        raise InvalidClientAssertion(f"the key {_quoted(kid)} is not a {algorithm} key")
    return key


def _verified_claims(assertion: str, key: PublicKey, algorithm: str) -> Mapping[str, Any]:
    """The claims of an assertion whose signature ``key`` verifies with ``algorithm``."""
    try:
        compact = jws.deserialize_compact(assertion, key, algorithms=[algorithm])
    except BadSignatureError as error:
        raise InvalidClientAssertion("the JWT signature does not verify") from error
    except (JoseError, ValueError) as error:
        raise InvalidClientAssertion("the JWT is malformed or its key cannot verify "
                                     f"{algorithm}") from error
    try:
        claims = json.loads(compact.payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise InvalidClientAssertion("the JWT payload is not JSON") from error
    if not isinstance(claims, dict):
        raise InvalidClientAssertion("the JWT payload is not a JSON object")
    return claims


def _check_claims(claims: Mapping[str, Any], *, client_id: str, token_url: str,
                  now: float) -> tuple[float, float | None]:
    """``exp`` and ``iat`` of claims that name the client and the token URL and are current."""
    if claims.get("iss") != client_id:
        raise InvalidClientAssertion("iss must be the client_id")
    if claims.get("sub") != client_id:
        raise InvalidClientAssertion("sub must be the client_id")
    if not _audience_includes(claims.get("aud"), token_url):
        raise InvalidClientAssertion("aud must be the token endpoint URL")
    expires_at = _check_expiry(claims, now)
    issued_at = _optional_time(claims, "iat")
    if issued_at is not None and issued_at > now + CLOCK_LEEWAY:
        raise InvalidClientAssertion("iat is in the future")
    not_before = _optional_time(claims, "nbf")
    if not_before is not None and not_before > now + CLOCK_LEEWAY:
        raise InvalidClientAssertion("nbf is in the future: the assertion is not valid yet")
    if issued_at is not None and issued_at > expires_at:
        raise InvalidClientAssertion("iat is after exp")
    return expires_at, issued_at


def _check_expiry(claims: Mapping[str, Any], now: float) -> float:
    expires_at = _optional_time(claims, "exp")
    if expires_at is None:
        raise InvalidClientAssertion("exp is missing")
    if expires_at < now - CLOCK_LEEWAY:
        raise InvalidClientAssertion("the assertion has expired (exp is past)")
    # no leeway here: SMART says exp SHALL be no more than five minutes ahead, and testers
    # probe just past it
    if expires_at > now + MAX_LIFETIME:
        raise InvalidClientAssertion("exp is more than 5 minutes in the future")
    return expires_at


def _check_jti(claims: Mapping[str, Any]) -> str:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidClientAssertion("jti is missing")
    if len(jti) > MAX_JTI_LENGTH:
        raise InvalidClientAssertion(f"jti is longer than {MAX_JTI_LENGTH} characters")
    return jti


def _audience_includes(audience: object, token_url: str) -> bool:
    if isinstance(audience, str):
        return audience == token_url
    return isinstance(audience, list) and token_url in audience


def _optional_time(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim as a float, None when absent; a claim of another type is refused."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidClientAssertion(f"{name} must be a number of seconds since the epoch")
    return float(value)


def _quoted(value: str) -> str:
    """A client-supplied value echoed in a reason: quoted and cut short."""
    return repr(value if len(value) <= 64 else value[:64] + "…")
