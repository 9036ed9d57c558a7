"""Verifying the OpenID Connect ID token of an app launch against the server's JWKS.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html#scopes-for-requesting-identity-data
and OpenID Connect Core 1.0 section 3.1.3.7. The token must be an RS256 JWS signed by a key of
the server's JWKS (found by ``kid``, or the only key when it names none), with ``iss`` the
advertised issuer, ``aud`` the app's client_id, ``exp`` still ahead, ``iat``, ``sub`` and a
``fhirUser`` naming a Practitioner or PractitionerRole (this server's users are professionals).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import RSAKey

from conformance.client import CheckFailure
from conformance.smart.jwt_parts import unverified_header

ID_TOKEN_ALGORITHM = "RS256"
FHIR_USER = re.compile(r"(^|/)(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}$")
"""A ``fhirUser`` reference: relative, or an absolute URL ending in the same ``Type/id``."""
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "fhirUser")


def verify_id_token(id_token: str, jwks: Mapping[str, Any], *, issuer: str, client_id: str,
                    now: float | None = None) -> dict[str, Any]:
    """The claims of a valid ID token; CheckFailure saying what is wrong otherwise."""
    header = unverified_header(id_token)
    if header.get("alg") != ID_TOKEN_ALGORITHM:
        raise CheckFailure(f"the id_token is signed with {header.get('alg')!r}, expected "
                           f"{ID_TOKEN_ALGORITHM}")
    key = signing_key_for(jwks, header.get("kid"))
    try:
        claims = dict(jwt.decode(id_token, key, algorithms=[ID_TOKEN_ALGORITHM]).claims)
    except BadSignatureError as error:
        raise CheckFailure("the id_token signature does not verify with the JWKS key "
                           f"{header.get('kid')!r}") from error
    except (JoseError, ValueError) as error:
        raise CheckFailure(f"the id_token cannot be decoded ({type(error).__name__})") from error
    check_id_token_claims(claims, issuer=issuer, client_id=client_id,
                          now=time.time() if now is None else now)
    return claims


def signing_key_for(jwks: Mapping[str, Any], kid: object) -> RSAKey:
    """The RSA key of ``jwks`` named ``kid`` (or its only key when ``kid`` is absent)."""
    keys = [key for key in jwks.get("keys", []) if isinstance(key, dict)]
    if kid is not None:
        keys = [key for key in keys if key.get("kid") == kid]
    if len(keys) != 1:
        raise CheckFailure(f"the JWKS has {len(keys)} keys matching the id_token kid {kid!r}, "
                           "expected one")
    try:
        return RSAKey.import_key(keys[0])
    except (JoseError, ValueError) as error:
        raise CheckFailure(f"the JWKS key {kid!r} is not a usable RSA key") from error


def check_id_token_claims(claims: Mapping[str, Any], *, issuer: str, client_id: str,
                          now: float) -> None:
    """CheckFailure naming the first claim of ``claims`` that is missing or wrong."""
    missing = [name for name in REQUIRED_CLAIMS if name not in claims]
    if missing:
        raise CheckFailure(f"the id_token lacks {', '.join(missing)}")
    if claims["iss"] != issuer:
        raise CheckFailure(f"the id_token iss is {claims['iss']!r}, expected the issuer {issuer}")
    audience = claims["aud"]
    if audience != client_id and not (isinstance(audience, list) and client_id in audience):
        raise CheckFailure(f"the id_token aud is {audience!r}, expected the client_id "
                           f"{client_id!r}")
    if not _is_time(claims["exp"]) or claims["exp"] <= now:
        raise CheckFailure(f"the id_token exp {claims['exp']!r} is not a time ahead")
    if not _is_time(claims["iat"]):
        raise CheckFailure(f"the id_token iat {claims['iat']!r} is not a time")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise CheckFailure("the id_token sub is not a non-empty string")
    if not isinstance(claims["fhirUser"], str) or not FHIR_USER.search(claims["fhirUser"]):
        raise CheckFailure(f"the id_token fhirUser {claims['fhirUser']!r} does not name a "
                           "Practitioner or PractitionerRole")


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
