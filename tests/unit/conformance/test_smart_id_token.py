"""Verifying an app launch's ID token: signature by the JWKS key, RS256, and each claim."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from conformance.client import CheckFailure
from conformance.smart.id_token import verify_id_token

ISSUER = "https://fhir.example/fhir"
CLIENT_ID = "derm-app"
NOW = 1_800_000_000


@pytest.fixture(scope="module")
def server_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "id-1"})


@pytest.fixture(scope="module")
def jwks(server_key: RSAKey) -> dict[str, Any]:
    other = RSAKey.generate_key(2048, parameters={"kid": "id-0"})
    return {"keys": [other.as_dict(private=False), server_key.as_dict(private=False)]}


def claims(**changes: Any) -> dict[str, Any]:
    base = {"iss": ISSUER, "sub": "user-7", "aud": CLIENT_ID, "iat": NOW - 10, "exp": NOW + 300,
            "fhirUser": f"{ISSUER}/PractitionerRole/role-3"}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def signed(key: RSAKey, payload: dict[str, Any], kid: str | None = "id-1") -> str:
    header = {"alg": "RS256", **({"kid": kid} if kid else {})}
    return jwt.encode(header, payload, key)


def verify(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    return verify_id_token(token, jwks, issuer=ISSUER, client_id=CLIENT_ID, now=NOW)


def test_a_valid_id_token_gives_its_claims(server_key: RSAKey, jwks: dict[str, Any]) -> None:
    assert verify(signed(server_key, claims()), jwks)["sub"] == "user-7"
    assert verify(signed(server_key, claims(aud=["other", CLIENT_ID],
                                            fhirUser="Practitioner/p-1")), jwks)


def test_without_kid_the_only_key_is_used(server_key: RSAKey) -> None:
    only = {"keys": [server_key.as_dict(private=False)]}
    assert verify(signed(server_key, claims(), kid=None), only)["iss"] == ISSUER


@pytest.mark.parametrize(("changes", "message"), [
    ({"iss": "https://other.example/fhir"}, "iss"),
    ({"aud": "another-app"}, "aud"),
    ({"exp": NOW - 1}, "exp"),
    ({"iat": "yesterday"}, "iat"),
    ({"sub": ""}, "sub"),
    ({"fhirUser": "Patient/p-1"}, "fhirUser"),
    ({"fhirUser": None}, "lacks fhirUser"),
])
def test_a_wrong_or_missing_claim_is_named(changes: dict[str, Any], message: str,
                                           server_key: RSAKey, jwks: dict[str, Any]) -> None:
    with pytest.raises(CheckFailure, match=message):
        verify(signed(server_key, claims(**changes)), jwks)


def test_a_token_signed_by_another_key_does_not_verify(jwks: dict[str, Any]) -> None:
    impostor = RSAKey.generate_key(2048)
    with pytest.raises(CheckFailure, match="signature does not verify"):
        verify(signed(impostor, claims()), jwks)


def test_a_kid_the_jwks_lacks_is_refused(server_key: RSAKey, jwks: dict[str, Any]) -> None:
    with pytest.raises(CheckFailure, match="0 keys matching"):
        verify(signed(server_key, claims(), kid="id-9"), jwks)


def test_another_algorithm_is_refused(jwks: dict[str, Any]) -> None:
    secret = OctKey.generate_key(256)
    token = jwt.encode({"alg": "HS256", "kid": "id-1"}, claims(), secret)
    with pytest.raises(CheckFailure, match="HS256"):
        verify(token, jwks)


def test_what_is_not_a_jwt_is_refused(jwks: dict[str, Any]) -> None:
    with pytest.raises(CheckFailure, match="compact JWS"):
        verify("not-a-jwt", jwks)
