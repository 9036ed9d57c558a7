"""PKCE S256: the RFC 7636 example, and fresh verifiers in the allowed alphabet and length."""

from __future__ import annotations

import re

from conformance.smart.pkce import new_pkce, s256_challenge

UNRESERVED = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def test_the_challenge_of_the_rfc_7636_example() -> None:
    # RFC 7636 appendix B
    assert s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_fresh_pair_is_s256_with_an_unreserved_verifier() -> None:
    pair = new_pkce()
    assert UNRESERVED.match(pair.verifier)
    assert pair.challenge == s256_challenge(pair.verifier)
    assert pair.method == "S256"
    assert "=" not in pair.challenge and len(pair.challenge) == 43


def test_each_pair_is_new() -> None:
    assert len({new_pkce().verifier for _ in range(20)}) == 20
