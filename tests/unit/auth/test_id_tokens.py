"""ID tokens: RS256, verified with the published JWKS; the signing key from the setting or the
development key file; keys derived from it."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey, RSAKey
from pydantic import SecretStr

from fhir_server.auth.id_tokens import (
    KEY_FILE,
    IdTokenSigner,
    id_token_signer,
    load_signing_key,
    signing_key_file,
)
from fhir_server.crypto.keys import ConfigurationError
from fhir_server.settings import Mode, Settings
from tests.support.app_launch import published_keys, rsa_signing_key

ISSUER = "https://pictaderm.example/fhir"
PRACTITIONER_ROLE = f"{ISSUER}/PractitionerRole/r1"


@pytest.fixture(scope="module")
def key() -> RSAKey:
    return rsa_signing_key()


@pytest.fixture(scope="module")
def signer(key: RSAKey) -> IdTokenSigner:
    return IdTokenSigner(key)


def test_an_id_token_verifies_with_the_published_jwks(signer: IdTokenSigner) -> None:
    signed_in = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    token = signer.id_token(issuer=ISSUER, subject="account-1", audience="derm-viewer",
                            auth_time=signed_in, lifetime=300, nonce="n-1",
                            fhir_user=PRACTITIONER_ROLE, now=1_900_000_000)
    published = published_keys(json.loads(json.dumps(signer.jwks())))
    decoded = jwt.decode(token, published, algorithms=["RS256"])
    assert decoded.header == {"alg": "RS256", "typ": "JWT", "kid": signer.kid}
    assert decoded.claims == {
        "iss": ISSUER, "sub": "account-1", "aud": "derm-viewer", "iat": 1_900_000_000,
        "exp": 1_900_000_300, "auth_time": int(signed_in.timestamp()), "nonce": "n-1",
        "fhirUser": PRACTITIONER_ROLE}


def test_nonce_and_fhir_user_are_left_out_when_not_given(signer: IdTokenSigner) -> None:
    token = signer.id_token(issuer=ISSUER, subject="s", audience="a",
                            auth_time=datetime.now(UTC), lifetime=60)
    claims = jwt.decode(token, published_keys(signer.jwks())).claims
    assert "nonce" not in claims and "fhirUser" not in claims


def test_another_key_does_not_verify(signer: IdTokenSigner) -> None:
    token = signer.id_token(issuer=ISSUER, subject="s", audience="a",
                            auth_time=datetime.now(UTC), lifetime=60)
    other = RSAKey.import_key(IdTokenSigner(rsa_signing_key()).jwks()["keys"][0])
    with pytest.raises(BadSignatureError):
        jwt.decode(token, other, algorithms=["RS256"])


def test_the_jwks_holds_the_public_key_only_named_by_its_thumbprint(
        signer: IdTokenSigner, key: RSAKey) -> None:
    (published,) = signer.jwks()["keys"]
    assert set(published) == {"kty", "n", "e", "kid", "alg", "use"}
    assert published["kty"] == "RSA" and published["alg"] == "RS256"
    assert published["use"] == "sig"
    assert published["kid"] == signer.kid == RSAKey.import_key(
        {"kty": "RSA", "n": published["n"], "e": published["e"]}).thumbprint()
    assert signer.kid == key.thumbprint()


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")
def test_a_public_or_small_key_cannot_sign(key: RSAKey) -> None:
    with pytest.raises(ValueError, match="private"):
        IdTokenSigner(RSAKey.import_key(key.as_dict(private=False)))
    with pytest.raises(ValueError, match="2048"):
        IdTokenSigner(RSAKey.generate_key(1024, private=True))


def test_derived_keys_are_stable_per_label_and_differ_between_labels(
        signer: IdTokenSigner, key: RSAKey) -> None:
    first = signer.derived_key("authorize form v1")
    assert len(first) == 32
    assert IdTokenSigner(key).derived_key("authorize form v1") == first
    assert signer.derived_key("another use") != first
    assert IdTokenSigner(rsa_signing_key()).derived_key("authorize form v1") != first


def test_the_configured_key_is_used(tmp_path: Path, key: RSAKey) -> None:
    pem = key.as_pem(private=True).decode()
    settings = Settings(data_dir=tmp_path, oidc_signing_key=SecretStr(pem),
                        mode=Mode.PRODUCTION)
    assert load_signing_key(settings).thumbprint() == key.thumbprint()
    assert id_token_signer(settings).kid == key.thumbprint()
    assert signing_key_file(settings) is None
    assert not (tmp_path / KEY_FILE).exists()


def _pem(kind: str) -> str:
    if kind == "garbage":
        return "not a pem"
    if kind == "ec":
        return ECKey.generate_key("P-256", private=True).as_pem(private=True).decode()
    return RSAKey.generate_key(1024, private=True).as_pem(private=True).decode()


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")
@pytest.mark.parametrize(("kind", "reason"), [
    ("garbage", "not the PEM of an RSA private key"),
    ("ec", "not the PEM of an RSA private key"),
    ("small RSA", "1024-bit"),
])
def test_an_unusable_configured_key_stops_the_server(tmp_path: Path, kind: str,
                                                     reason: str) -> None:
    pem = _pem(kind)
    with pytest.raises(ConfigurationError, match=reason) as refused:
        load_signing_key(Settings(data_dir=tmp_path, oidc_signing_key=SecretStr(pem)))
    assert "PRIVATE KEY-----" not in str(refused.value)


def test_production_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="FHIR_SERVER_OIDC_SIGNING_KEY"):
        load_signing_key(Settings(data_dir=tmp_path, mode=Mode.PRODUCTION))
    assert not (tmp_path / KEY_FILE).exists()


def test_development_creates_a_private_key_file_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    path = signing_key_file(settings)
    assert path == tmp_path / "data" / KEY_FILE
    first = load_signing_key(settings)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    assert load_signing_key(settings).thumbprint() == first.thumbprint()
    assert list(path.parent.glob(".*.tmp")) == []
