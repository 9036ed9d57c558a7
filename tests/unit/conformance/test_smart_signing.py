"""Client assertions the kit signs: the keys it accepts, and assertions the server's own verifier
(``fhir_server.auth.client_assertion``) accepts, or refuses for the rule each variant breaks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from joserfc.jwk import ECKey, RSAKey

from conformance.smart.jwt_parts import unverified_header
from conformance.smart.signing import (
    ASSERTION_LIFETIME,
    AssertionClaims,
    SigningKey,
    UnusableKey,
    assertion_claims,
    load_signing_key,
    sign_assertion,
)
from fhir_server.auth.client_assertion import InvalidClientAssertion, verify_client_assertion
from fhir_server.auth.jwks import JwksSource

TOKEN_URL = "https://fhir.example/auth/token"
CLIENT_ID = "pharmacy-system"


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    return RSAKey.generate_key(2048).as_pem(private=True)


@pytest.fixture(scope="module")
def ec_pem() -> bytes:
    return ECKey.generate_key("P-384").as_pem(private=True)


class Jtis:
    """The server's jti memory, as the token endpoint gives it to the verifier."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    async def remember(self, client_id: str, jti: str, forget_after: float) -> bool:
        if (client_id, jti) in self.seen:
            return False
        self.seen.add((client_id, jti))
        return True


def registered_keys(key: SigningKey, kid: str) -> JwksSource:
    public = {**key.key.as_dict(private=False), "kid": kid}
    return JwksSource.inline({"keys": [public]})


async def verified(key: SigningKey, claims: AssertionClaims, jtis: Jtis, kid: str = "k1") -> str:
    result = await verify_client_assertion(
        sign_assertion(key, claims), client_id=CLIENT_ID, token_url=TOKEN_URL,
        keys=registered_keys(key, kid), remember_jti=jtis.remember)
    return result.jti


def test_rsa_signs_rs384_and_p384_signs_es384(rsa_pem: bytes, ec_pem: bytes) -> None:
    assert load_signing_key(rsa_pem).algorithm == "RS384"
    assert load_signing_key(ec_pem).algorithm == "ES384"


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")
@pytest.mark.parametrize(("pem", "reason"), [
    (lambda: ECKey.generate_key("P-256").as_pem(private=True), "P-256"),
    (lambda: RSAKey.generate_key(1024).as_pem(private=True), "1024 bits"),
    (lambda: RSAKey.generate_key(2048).as_pem(private=False), "public key"),
    (lambda: b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", "not a PEM"),
])
def test_keys_that_cannot_sign_smart_assertions_are_refused(pem: Callable[[], bytes],
                                                           reason: str) -> None:
    with pytest.raises(UnusableKey, match=reason):
        load_signing_key(pem())


def test_an_assertion_has_the_smart_header_and_claims(rsa_pem: bytes) -> None:
    key = load_signing_key(rsa_pem)
    claims = assertion_claims(client_id=CLIENT_ID, audience=TOKEN_URL, kid="k1", now=1000)
    assertion = sign_assertion(key, claims)
    assert unverified_header(assertion) == {"alg": "RS384", "kid": "k1", "typ": "JWT"}
    assert claims.claims() == {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": TOKEN_URL,
                               "jti": claims.jti, "iat": 1000,
                               "exp": 1000 + ASSERTION_LIFETIME}
    assert ASSERTION_LIFETIME <= 300
    assert claims.jti != assertion_claims(client_id=CLIENT_ID, audience=TOKEN_URL,
                                          kid="k1").jti


@pytest.mark.parametrize("which", ["rsa", "ec"])
async def test_the_server_accepts_a_fresh_assertion(which: str, rsa_pem: bytes,
                                                    ec_pem: bytes) -> None:
    key = load_signing_key(rsa_pem if which == "rsa" else ec_pem)
    claims = assertion_claims(client_id=CLIENT_ID, audience=TOKEN_URL, kid="k1")
    assert await verified(key, claims, Jtis()) == claims.jti


@pytest.mark.parametrize(("change", "reason"), [
    ({"issued_at": -1200, "expires_at": -600}, "expired"),
    ({"expires_at": 600}, "5 minutes"),
    ({"audience": "https://fhir.example/fhir"}, "aud"),
    ({"kid": "unknown"}, "no key with kid"),
])
async def test_the_variants_the_kit_sends_are_refused_for_their_rule(
        change: dict[str, object], reason: str, rsa_pem: bytes) -> None:
    key = load_signing_key(rsa_pem)
    now = int(time.time())
    fresh = assertion_claims(client_id=CLIENT_ID, audience=TOKEN_URL, kid="k1", now=now)
    shifted = {name: now + value if isinstance(value, int) else value
               for name, value in change.items()}
    with pytest.raises(InvalidClientAssertion, match=reason):
        await verified(key, replace(fresh, **shifted), Jtis())  # type: ignore[arg-type]


async def test_a_reused_jti_is_refused_by_the_server(rsa_pem: bytes) -> None:
    key, jtis = load_signing_key(rsa_pem), Jtis()
    first = assertion_claims(client_id=CLIENT_ID, audience=TOKEN_URL, kid="k1")
    await verified(key, first, jtis)
    again = replace(assertion_claims(client_id=CLIENT_ID, audience=TOKEN_URL, kid="k1"),
                    jti=first.jti)
    with pytest.raises(InvalidClientAssertion, match="jti"):
        await verified(key, again, jtis)
