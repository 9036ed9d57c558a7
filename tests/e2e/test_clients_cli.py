"""``fhir-server clients add|list|revoke`` as operators run it, on a temporary data dir."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from fhir_server.auth.client_secrets import verify_secret
from fhir_server.auth.model import Client, IssuedToken, token_hash, utc_now
from fhir_server.auth.sqlite_auth import SqliteAuthStore

pytestmark = pytest.mark.e2e

COMMAND = str(Path(sys.executable).parent / "fhir-server")
JWKS = {"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "use": "sig",
                  "x": "mJd0rb4bgq9ZXyJbmQ9gkBRyBXX7s3XIhaC7CQFz3OgnmkVBqXZfSDbUZ5Lr8UcF",
                  "y": "ASkvQkWWMNX0p9P8wvu5ibcHd4QUWq56qWJUcCpRtAQiFk1Z-jljS7SG1MsIp4AH"}]}


def _run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, "clients", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60, check=False)


def _field(output: str, name: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(f"{name}: ")]
    assert len(lines) == 1, output
    return lines[0].removeprefix(f"{name}: ")


def _database_bytes(data_dir: Path) -> bytes:
    """The auth database as it is on disk, its WAL included."""
    return b"".join(path.read_bytes() for path in sorted(data_dir.glob("auth.sqlite3*")))


@asynccontextmanager
async def _auth_store(data_dir: Path) -> AsyncIterator[SqliteAuthStore]:
    store = SqliteAuthStore(data_dir / "auth.sqlite3")
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def _stored_client(data_dir: Path, client_id: str) -> Client | None:
    async def get() -> Client | None:
        async with _auth_store(data_dir) as store:
            return await store.get_client(client_id)

    return asyncio.run(get())


def _save_token(data_dir: Path, token: str, client_id: str) -> None:
    async def save() -> None:
        now = utc_now()
        async with _auth_store(data_dir) as store:
            await store.save_token(IssuedToken(
                token_hash=token_hash(token), kind="access", client_id=client_id,
                scope="system/Patient.rs", issued_at=now, expires_at=now + timedelta(minutes=5)))

    asyncio.run(save())


def _live_token(data_dir: Path, token: str) -> IssuedToken | None:
    async def find() -> IssuedToken | None:
        async with _auth_store(data_dir) as store:
            return await store.find_token(token)

    return asyncio.run(find())


def test_a_secret_is_printed_once_and_never_stored_in_clear(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    added = _run(data_dir, "add", "--name", "Derm app", "--scope", "launch openid patient/*.rs",
                 "--secret", "--redirect-uri", "https://app.example/callback")
    assert added.returncode == 0, added.stderr
    client_id, secret = _field(added.stdout, "client_id"), _field(added.stdout, "client_secret")
    assert len(secret) >= 43 and added.stdout.count(secret) == 1

    stored = _stored_client(data_dir, client_id)
    assert isinstance(stored, Client) and stored.kind == "confidential"
    assert stored.secret_hash is not None and verify_secret(secret, stored.secret_hash)
    access_token = "an-access-token-that-must-not-be-on-disk"
    _save_token(data_dir, access_token, client_id)
    assert _live_token(data_dir, access_token) is not None
    on_disk = _database_bytes(data_dir)
    assert client_id.encode() in on_disk  # the file holds the registration…
    assert token_hash(access_token).encode() in on_disk  # …and the token's hash
    assert secret.encode() not in on_disk
    assert access_token.encode() not in on_disk

    listed = _run(data_dir, "list")
    assert listed.returncode == 0
    assert client_id in listed.stdout and "Derm app" in listed.stdout
    assert secret not in listed.stdout and stored.secret_hash not in listed.stdout
    assert "scrypt" not in listed.stdout


def test_revoke_stops_the_client_and_its_tokens(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(JWKS))
    added = _run(data_dir, "add", "--name", "Pharmacie du Port", "--scope",
                 "system/Patient.rs system/ServiceRequest.cruds", "--jwks-file", str(jwks_file),
                 "--organization", "ph-17")
    assert added.returncode == 0, added.stderr
    client_id = _field(added.stdout, "client_id")
    assert "client_secret" not in added.stdout
    stored = _stored_client(data_dir, client_id)
    assert isinstance(stored, Client)
    assert (stored.kind, stored.jwks, stored.organization) == ("backend", JWKS,
                                                               "Organization/ph-17")
    _save_token(data_dir, "backend-token", client_id)
    assert _live_token(data_dir, "backend-token") is not None

    revoked = _run(data_dir, "revoke", client_id)
    assert revoked.returncode == 0, revoked.stderr
    assert "1 token" in revoked.stdout
    assert _live_token(data_dir, "backend-token") is None
    row = next(line for line in _run(data_dir, "list").stdout.splitlines()
               if line.startswith(client_id))
    assert "\trevoked\t" in row
    unknown = _run(data_dir, "revoke", "no-such-client")
    assert unknown.returncode == 1 and "no-such-client" in unknown.stderr


@pytest.mark.parametrize(("options", "message"), [
    (["--scope", "system/Patient.rx", "--jwks-url", "https://p.example/jwks"], "--scope"),
    (["--scope", "system/Patient.rs", "--jwks-url", "http://p.example/jwks"], "https"),
    (["--scope", "system/Patient.rs", "--jwks-file", "{jwks}"], "\"keys\""),
    (["--scope", "system/Patient.rs", "--secret"], "--jwks-url"),
    (["--scope", "patient/*.rs", "--public"], "--redirect-uri"),
])
def test_invalid_registrations_exit_2_with_a_reason(tmp_path: Path, options: list[str],
                                                    message: str) -> None:
    not_a_jwks = tmp_path / "not-a-jwks.json"
    not_a_jwks.write_text(json.dumps({"kty": "EC"}))
    filled = [str(not_a_jwks) if option == "{jwks}" else option for option in options]
    data_dir = tmp_path / "data"
    result = _run(data_dir, "add", "--name", "X", *filled)
    assert result.returncode == 2
    assert message in result.stderr
    assert "client_id" not in result.stdout
    listed = _run(data_dir, "list")
    assert listed.stdout.strip() == "no clients registered"
