"""No password and no one-time token in clear, in any database file or in the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fhir_server.auth.users import SignInRefused
from tests.unit.accounts.conftest import PASSWORD, Harness, pharmacist, token_in

NEW_PASSWORD = "an entirely new passphrase"
WRONG_PASSWORD = "a mistyped passphrase"


def database_bytes(directory: Path) -> bytes:
    """Every SQLite file of the test (main files, WAL and shared memory)."""
    files = sorted(directory.glob("*.sqlite3*"))
    assert any(path.name == "auth.sqlite3" for path in files)
    assert any(path.name == "fhir.sqlite3" for path in files)
    return b"".join(path.read_bytes() for path in files)


async def test_no_secret_is_stored_or_logged_in_clear(
        harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await harness.service.register(pharmacist())
    verification = token_in(await harness.last_email())
    await harness.service.verify_email(verification)
    await harness.service.request_password_reset("claire@pharmacie.example",
                                                 address="203.0.113.9")
    reset = token_in(await harness.last_email())
    await harness.service.reset_password(reset, NEW_PASSWORD)
    with pytest.raises(SignInRefused):
        await harness.service.sign_in("claire@pharmacie.example", WRONG_PASSWORD,
                                      address="203.0.113.9")
    await harness.service.sign_in("claire@pharmacie.example", NEW_PASSWORD,
                                  address="203.0.113.9")
    secrets = [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, verification, reset]
    stored = database_bytes(tmp_path)
    assert b"$argon2id$" in stored
    for secret in secrets:
        assert secret.encode() not in stored
        assert secret not in caplog.text
    assert "203.0.113.9" not in stored.decode("latin-1")
