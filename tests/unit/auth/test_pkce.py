"""PKCE: S256 only, the verifier's alphabet and length, and every way a verifier is refused."""

from __future__ import annotations

import pytest

from fhir_server.auth.pkce import (
    InvalidChallenge,
    check_challenge,
    s256_challenge,
    verify_code_verifier,
)
from fhir_server.auth.token_endpoint import OAuthError

# RFC 7636 appendix B
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_the_s256_challenge_is_the_rfc_example() -> None:
    assert s256_challenge(RFC_VERIFIER) == RFC_CHALLENGE


def test_the_right_verifier_is_accepted_at_both_length_limits() -> None:
    verify_code_verifier(RFC_VERIFIER, RFC_CHALLENGE)
    for verifier in ("a" * 43, "Az09-._~" * 16):
        verify_code_verifier(verifier, s256_challenge(verifier))


@pytest.mark.parametrize(("verifier", "reason"), [
    (None, "required"),
    ("", "required"),
    ("   ", "required"),
    ("a" * 42, "43 to 128"),
    ("a" * 129, "43 to 128"),
    ("a" * 42 + "+", "43 to 128"),
    ("é" * 43, "43 to 128"),
    ("b" * 43, "does not match"),
    (RFC_CHALLENGE, "plain"),
])
def test_a_bad_verifier_is_invalid_grant(verifier: str | None, reason: str) -> None:
    with pytest.raises(OAuthError) as refused:
        verify_code_verifier(verifier, RFC_CHALLENGE)
    assert refused.value.error == "invalid_grant" and refused.value.status == 400
    assert reason in refused.value.description


def test_an_s256_challenge_is_accepted() -> None:
    assert check_challenge(RFC_CHALLENGE, "S256") == RFC_CHALLENGE


@pytest.mark.parametrize(("challenge", "method", "reason"), [
    (None, "S256", "required"),
    ("", "S256", "required"),
    (RFC_CHALLENGE, None, "missing"),
    (RFC_CHALLENGE, "plain", "plain is not supported"),
    (RFC_CHALLENGE, "s256", "must be S256"),
    (RFC_VERIFIER + "=", "S256", "43 characters"),
    (RFC_CHALLENGE[:-1], "S256", "43 characters"),
    (RFC_CHALLENGE[:-1] + "+", "S256", "43 characters"),
])
def test_an_unusable_challenge_is_refused(challenge: str | None, method: str | None,
                                          reason: str) -> None:
    with pytest.raises(InvalidChallenge, match=reason):
        check_challenge(challenge, method)
