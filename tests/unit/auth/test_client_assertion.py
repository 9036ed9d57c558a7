"""verify_client_assertion: SMART Backend Services assertions accepted and every refusal it owes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from fhir_server.auth.client_assertion import (
    CLOCK_LEEWAY,
    AssertionClaims,
    InvalidClientAssertion,
    verify_client_assertion,
)
from fhir_server.auth.jwks import JwksSource
from tests.support.jwks_server import JwksServer, public_jwk, running_jwks_server, signing_key

CLIENT = "pharmacie-du-port"
TOKEN_URL = "https://pictaderm.example.fr/auth/token"
NOW = 1_800_000_000.0


class JtiMemory:
    """The replay store the token endpoint gives: remembers (client, jti) until it may forget."""

    def __init__(self) -> None:
        self.now = NOW
        self.seen: dict[tuple[str, str], float] = {}

    async def remember(self, client_id: str, jti: str, forget_after: float) -> bool:
        self.seen = {pair: until for pair, until in self.seen.items() if until >= self.now}
        if (client_id, jti) in self.seen:
            return False
        self.seen[(client_id, jti)] = forget_after
        return True


@pytest.fixture
def keys(rsa_key: RSAKey, ec_key: ECKey) -> JwksSource:
    return JwksSource.inline({"keys": [public_jwk(rsa_key), public_jwk(ec_key)]})


@pytest.fixture
def jtis() -> JtiMemory:
    return JtiMemory()


@pytest.fixture
def server(rsa_key: RSAKey, ec_key: ECKey) -> Iterator[JwksServer]:
    with running_jwks_server(public_jwk(rsa_key), public_jwk(ec_key),
                             cache_control="max-age=300") as running:
        yield running


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid assertion claims; an override of None removes the claim."""
    base: dict[str, Any] = {"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": NOW + 240,
                            "iat": NOW, "jti": str(uuid.uuid4())}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(key: RSAKey | ECKey, payload: dict[str, Any], **header: Any) -> str:
    """An assertion signed by ``key``; header overrides of None remove the member."""
    algorithm = "RS384" if key.key_type == "RSA" else "ES384"
    full = {"alg": algorithm, "typ": "JWT", "kid": key.kid, **header}
    full = {name: value for name, value in full.items() if value is not None}
    return jws.serialize_compact(full, json.dumps(payload), key, algorithms=[full["alg"]])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A JWS built by hand: unsigned (``none``) or HMAC-SHA256 with ``secret``."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


async def verify(assertion: str, keys: JwksSource, jtis: JtiMemory,
                 now: float = NOW) -> AssertionClaims:
    return await verify_client_assertion(assertion, client_id=CLIENT, token_url=TOKEN_URL,
                                         keys=keys, remember_jti=jtis.remember, now=now)


async def refused(assertion: str, keys: JwksSource, jtis: JtiMemory, now: float = NOW) -> str:
    with pytest.raises(InvalidClientAssertion) as raised:
        await verify(assertion, keys, jtis, now)
    assert not jtis.seen, "a refused assertion must not consume its jti"
    return raised.value.reason


# --- accepted --------------------------------------------------------------------------------

@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
async def test_inline_jwks_assertion_is_accepted(kid: str, rsa_key: RSAKey, ec_key: ECKey,
                                                 keys: JwksSource, jtis: JtiMemory) -> None:
    key = rsa_key if kid == "rsa-1" else ec_key
    payload = claims()
    result = await verify(sign(key, payload), keys, jtis)
    assert result == AssertionClaims(client_id=CLIENT, jti=payload["jti"], kid=kid,
                                     algorithm="RS384" if kid == "rsa-1" else "ES384",
                                     expires_at=NOW + 240, issued_at=NOW)
    assert jtis.seen == {(CLIENT, payload["jti"]): NOW + 240 + CLOCK_LEEWAY}


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
async def test_loopback_jwks_url_assertion_is_accepted_and_keys_cached(
        kid: str, rsa_key: RSAKey, ec_key: ECKey, server: JwksServer, jtis: JtiMemory) -> None:
    key = rsa_key if kid == "rsa-1" else ec_key
    source = JwksSource.remote(server.url)
    first = await verify(sign(key, claims()), source, jtis)
    second = await verify(sign(key, claims()), source, jtis)
    assert first.kid == second.kid == kid
    assert server.requests == 1, "the second verification uses the cached JWKS"


async def test_rotated_key_is_accepted_after_one_refetch(rsa_key: RSAKey, server: JwksServer,
                                                         jtis: JtiMemory) -> None:
    clock = [100.0]
    source = JwksSource.remote(server.url, clock=lambda: clock[0])
    await verify(sign(rsa_key, claims()), source, jtis)
    new_key = signing_key("ES384", "ec-2026")
    server.publish(public_jwk(new_key), cache_control="max-age=300")
    clock[0] += 30
    result = await verify(sign(new_key, claims()), source, jtis)
    assert result.kid == "ec-2026"
    assert server.requests == 2


async def test_audience_list_holding_the_token_url_is_accepted(
        rsa_key: RSAKey, keys: JwksSource, jtis: JtiMemory) -> None:
    payload = claims(aud=["https://other.example.fr/token", TOKEN_URL])
    assert (await verify(sign(rsa_key, payload), keys, jtis)).client_id == CLIENT


async def test_small_clock_skew_is_tolerated(rsa_key: RSAKey, keys: JwksSource,
                                             jtis: JtiMemory) -> None:
    payload = claims(exp=NOW - 10, iat=NOW - 200, nbf=NOW + 10)
    assert (await verify(sign(rsa_key, payload), keys, jtis)).expires_at == NOW - 10


# --- header refusals -------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS256", "RS512", "PS384", "ES256"])
async def test_other_asymmetric_algorithms_are_refused(alg: str, rsa_key: RSAKey,
                                                       keys: JwksSource, jtis: JtiMemory) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": "rsa-1"}
    forged = handmade(header, claims(), secret=b"irrelevant")
    assert f"alg '{alg}' is not accepted" in await refused(forged, keys, jtis)


async def test_rs256_signed_with_the_registered_key_is_refused(
        rsa_key: RSAKey, keys: JwksSource, jtis: JtiMemory) -> None:
    unbound = RSAKey.import_key({**rsa_key.as_dict(private=True), "alg": "RS256"})
    assertion = sign(unbound, claims(), alg="RS256")
    assert "alg 'RS256' is not accepted" in await refused(assertion, keys, jtis)


async def test_hs256_with_the_public_key_as_secret_is_refused(
        rsa_key: RSAKey, keys: JwksSource, jtis: JtiMemory) -> None:
    public_pem = rsa_key.as_pem(private=False)
    forged = handmade({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(), public_pem)
    assert "alg 'HS256' is not accepted" in await refused(forged, keys, jtis)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_unsigned_assertion_is_refused(alg: str, keys: JwksSource, jtis: JtiMemory) -> None:
    forged = handmade({"alg": alg, "typ": "JWT", "kid": "rsa-1"}, claims(), secret=None)
    assert "is not accepted" in await refused(forged, keys, jtis)


async def test_missing_alg_is_refused(keys: JwksSource, jtis: JtiMemory) -> None:
    forged = handmade({"typ": "JWT", "kid": "rsa-1"}, claims(), secret=b"x")
    assert await refused(forged, keys, jtis) == "the JWT header has no alg"


@pytest.mark.parametrize("typ", [None, "JWS", "at+jwt", "dpop+jwt"])
async def test_missing_or_other_typ_is_refused(typ: str | None, rsa_key: RSAKey,
                                               keys: JwksSource, jtis: JtiMemory) -> None:
    assertion = sign(rsa_key, claims(), typ=typ)
    assert await refused(assertion, keys, jtis) == "the JWT header typ must be 'JWT'"


@pytest.mark.parametrize("kid", [None, ""])
async def test_missing_kid_is_refused(kid: str | None, rsa_key: RSAKey, keys: JwksSource,
                                      jtis: JtiMemory) -> None:
    assertion = sign(rsa_key, claims(), kid=kid)
    assert await refused(assertion, keys, jtis) == "the JWT header has no kid"


async def test_unknown_kid_is_refused(rsa_key: RSAKey, keys: JwksSource,
                                      jtis: JtiMemory) -> None:
    assertion = sign(rsa_key, claims(), kid="not-registered")
    reason = await refused(assertion, keys, jtis)
    assert reason == "no key with kid 'not-registered' in the client's JWKS"


async def test_kid_of_a_key_of_the_wrong_type_is_refused(rsa_key: RSAKey, keys: JwksSource,
                                                         jtis: JtiMemory) -> None:
    assertion = sign(rsa_key, claims(), kid="ec-1")
    assert await refused(assertion, keys, jtis) == "the key 'ec-1' is not a RS384 key"


async def test_bad_signature_is_refused(rsa_key: RSAKey, keys: JwksSource,
                                        jtis: JtiMemory) -> None:
    impostor = signing_key("RS384", "rsa-1")
    reason = await refused(sign(impostor, claims()), keys, jtis)
    assert reason == "the JWT signature does not verify"


async def test_ec_key_on_another_curve_is_refused(jtis: JtiMemory) -> None:
    p256 = ECKey.generate_key("P-256", parameters={"kid": "p256"})
    keys = JwksSource.inline({"keys": [public_jwk(p256)]})
    forged = handmade({"alg": "ES384", "typ": "JWT", "kid": "p256"}, claims(), secret=b"x")
    reason = await refused(forged, keys, jtis)
    assert reason == "the JWT is malformed or its key cannot verify ES384"


async def test_tampered_payload_is_refused(rsa_key: RSAKey, keys: JwksSource,
                                           jtis: JtiMemory) -> None:
    header, _, signature = sign(rsa_key, claims()).split(".")
    other_payload = b64(json.dumps(claims(sub="someone-else")).encode())
    tampered = f"{header}.{other_payload}.{signature}"
    assert await refused(tampered, keys, jtis) == "the JWT signature does not verify"


async def test_jku_other_than_the_registered_url_is_refused(
        rsa_key: RSAKey, keys: JwksSource, server: JwksServer, jtis: JtiMemory) -> None:
    attacker = "https://attacker.example/jwks.json"
    assert "jku" in await refused(sign(rsa_key, claims(), jku=attacker), keys, jtis)
    registered = JwksSource.remote(server.url)
    assert "jku" in await refused(sign(rsa_key, claims(), jku=attacker), registered, jtis)
    accepted = await verify(sign(rsa_key, claims(), jku=server.url), registered, jtis)
    assert accepted.kid == "rsa-1"


async def test_crit_header_is_refused(rsa_key: RSAKey, keys: JwksSource,
                                      jtis: JtiMemory) -> None:
    forged = handmade({"alg": "RS384", "typ": "JWT", "kid": "rsa-1", "crit": ["exp"]},
                      claims(), secret=b"x")
    assert "crit" in await refused(forged, keys, jtis)


@pytest.mark.parametrize("garbage", [
    "", "abc", "a.b", "a.b.c.d.e", "é.é.é", "x" * 20_000, ".e30.sig",
    f"{b64(b'[' * 5000)}.e30.sig", f"{b64(b'[1]')}.e30.sig",
])
async def test_malformed_assertion_is_refused(garbage: str, keys: JwksSource,
                                              jtis: JtiMemory) -> None:
    assert "client_assertion" in await refused(garbage, keys, jtis)


async def test_unreachable_jwks_url_is_an_invalid_assertion(rsa_key: RSAKey,
                                                            jtis: JtiMemory) -> None:
    with running_jwks_server(public_jwk(rsa_key)) as stopped_soon:
        url = stopped_soon.url
    reason = await refused(sign(rsa_key, claims()), JwksSource.remote(url), jtis)
    assert reason == "the client's JWKS URL could not be reached"


# --- claim refusals --------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "reason"), [
    ({"iss": "another-client"}, "iss must be the client_id"),
    ({"iss": None}, "iss must be the client_id"),
    ({"sub": "another-client"}, "sub must be the client_id"),
    ({"sub": None}, "sub must be the client_id"),
    ({"aud": "https://pictaderm.example.fr/fhir"}, "aud must be the token endpoint URL"),
    ({"aud": ["https://other.example.fr/token"]}, "aud must be the token endpoint URL"),
    ({"aud": TOKEN_URL + "/"}, "aud must be the token endpoint URL"),
    ({"aud": None}, "aud must be the token endpoint URL"),
    ({"exp": None}, "exp is missing"),
    ({"exp": NOW - CLOCK_LEEWAY - 1}, "the assertion has expired (exp is past)"),
    ({"exp": NOW + 400}, "exp is more than 5 minutes in the future"),
    ({"exp": NOW + 301}, "exp is more than 5 minutes in the future"),
    ({"exp": NOW + 3600}, "exp is more than 5 minutes in the future"),
    ({"exp": "1800000240"}, "exp must be a number of seconds since the epoch"),
    ({"exp": True}, "exp must be a number of seconds since the epoch"),
    ({"iat": NOW + 120}, "iat is in the future"),
    ({"iat": "yesterday"}, "iat must be a number of seconds since the epoch"),
    ({"nbf": NOW + 120}, "nbf is in the future: the assertion is not valid yet"),
    ({"jti": None}, "jti is missing"),
    ({"jti": ""}, "jti is missing"),
    ({"jti": 42}, "jti is missing"),
    ({"jti": "j" * 300}, "jti is longer than 256 characters"),
])
async def test_bad_claims_are_refused(overrides: dict[str, Any], reason: str, rsa_key: RSAKey,
                                      keys: JwksSource, jtis: JtiMemory) -> None:
    assert await refused(sign(rsa_key, claims(**overrides)), keys, jtis) == reason


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
async def test_non_finite_exp_is_refused(value: float, rsa_key: RSAKey, keys: JwksSource,
                                         jtis: JtiMemory) -> None:
    assertion = sign(rsa_key, claims(exp=value))
    assert await refused(assertion, keys, jtis) == (
        "exp must be a number of seconds since the epoch")


async def test_exp_exactly_five_minutes_ahead_is_accepted(rsa_key: RSAKey, keys: JwksSource,
                                                          jtis: JtiMemory) -> None:
    result = await verify(sign(rsa_key, claims(exp=NOW + 300)), keys, jtis)
    assert result.expires_at == NOW + 300


# --- replay ----------------------------------------------------------------------------------

async def test_reused_jti_is_refused(rsa_key: RSAKey, keys: JwksSource,
                                     jtis: JtiMemory) -> None:
    payload = claims()
    await verify(sign(rsa_key, payload), keys, jtis)
    with pytest.raises(InvalidClientAssertion, match="jti was already used"):
        await verify(sign(rsa_key, payload), keys, jtis, now=NOW + 5)


async def test_same_jti_of_another_client_is_not_a_replay(rsa_key: RSAKey, keys: JwksSource,
                                                          jtis: JtiMemory) -> None:
    payload = claims()
    await verify(sign(rsa_key, payload), keys, jtis)
    other = {**payload, "iss": "other-client", "sub": "other-client"}
    result = await verify_client_assertion(sign(rsa_key, other), client_id="other-client",
                                           token_url=TOKEN_URL, keys=keys,
                                           remember_jti=jtis.remember, now=NOW)
    assert result.jti == payload["jti"]


async def test_jti_is_accepted_again_after_its_assertion_expired(
        rsa_key: RSAKey, keys: JwksSource, jtis: JtiMemory) -> None:
    first = claims(exp=NOW + 60)
    await verify(sign(rsa_key, first), keys, jtis)
    later = NOW + 60 + CLOCK_LEEWAY + 1
    jtis.now = later
    again = claims(jti=first["jti"], exp=later + 60, iat=later)
    assert (await verify(sign(rsa_key, again), keys, jtis, now=later)).jti == first["jti"]
