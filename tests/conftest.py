"""Fixtures shared across the test folders: the ID-token signing key and the prepared data
directory of the app-launch tests (made once per module, each test serving a copy)."""

from __future__ import annotations

import pytest

from tests.support.app_launch import Prepared, prepare_data_dir, rsa_signing_key, signing_pem


@pytest.fixture(scope="module")
def key_pem() -> str:
    """The PEM of an RSA key that signs ID tokens (made once per module: key generation is
    what a test would otherwise spend most time on)."""
    return signing_pem(rsa_signing_key())


@pytest.fixture(scope="module")
def prepared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             key_pem: str) -> Prepared:
    """A data directory with the app-launch accounts, clients and patients, for this module."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    return prepare_data_dir(tmp_path_factory.mktemp(name) / "data", key_pem)
