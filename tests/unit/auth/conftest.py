"""Signing keys shared by the client-assertion and JWKS tests."""

from __future__ import annotations

import pytest
from joserfc.jwk import ECKey, RSAKey

from tests.support.jwks_server import signing_key


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey | ECKey:
    return signing_key("RS384", "rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> RSAKey | ECKey:
    return signing_key("ES384", "ec-1")
