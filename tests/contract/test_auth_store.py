"""The AuthStore contract, on SQLite and on MongoDB (live, or mongomock without MONGODB_URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_server.auth.model import (
    AuthStore,
    Client,
    ClientExists,
    IssuedToken,
    token_hash,
    utc_now,
)
from tests.support.backends import BACKENDS, mongo_is_live

JWKS = {"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "x": "AAAA", "y": "BBBB"}]}


def _auth_store(backend: str, tmp_path: Path) -> tuple[AuthStore, Any]:
    """The store, and what to drop afterwards (a live test database) or None."""
    if backend == "sqlite":
        from fhir_server.auth.sqlite_auth import SqliteAuthStore

        return SqliteAuthStore(tmp_path / "auth.sqlite3"), None
    from fhir_server.auth.mongo_auth import MongoAuthStore

    name = f"test_auth_{uuid.uuid4().hex[:12]}"
    if mongo_is_live():
        from motor.motor_asyncio import AsyncIOMotorClient

        client: Any = AsyncIOMotorClient(os.environ["MONGODB_URL"])
        return MongoAuthStore(client[name], client=client), (client, name)
    from tests.support.mongomock_sessions import session_capable_mongomock_client

    return MongoAuthStore(session_capable_mongomock_client()[name]), None


@pytest.fixture
def now() -> datetime:
    """The current time: a MongoDB TTL index (and mongomock's) deletes what expired by the
    real clock, so the tests' times are near it."""
    return utc_now()


@pytest.fixture(params=BACKENDS)
async def auth_store(request: pytest.FixtureRequest, tmp_path: Path
                     ) -> AsyncIterator[AuthStore]:
    store, live = _auth_store(request.param, tmp_path)
    await store.start()
    try:
        yield store
    finally:
        if live is not None:
            client, name = live
            await client.drop_database(name)
        await store.close()


def _client(now: datetime, client_id: str = "pharmacy-1", **changes: Any) -> Client:
    base = Client(client_id=client_id, name="Pharmacie du Port", kind="backend",
                  scope="system/Patient.rs system/ServiceRequest.cruds",
                  created=now, jwks_url="https://pharmacy.example/jwks.json",
                  organization="Organization/ph1")
    return replace(base, **changes)


def _token(token: str, now: datetime, *, client_id: str = "pharmacy-1",
           lifetime: timedelta = timedelta(minutes=5), **changes: Any) -> IssuedToken:
    base = IssuedToken(token_hash=token_hash(token), kind="access", client_id=client_id,
                       scope="system/Patient.rs", issued_at=now, expires_at=now + lifetime)
    return replace(base, **changes)


async def test_clients_round_trip_every_field(
        auth_store: AuthStore, now: datetime) -> None:
    backend = _client(now)
    app = _client(now, "app-1", name="Derm app", kind="confidential", scope="launch openid "
                  "fhirUser patient/*.rs", created=now + timedelta(seconds=1),
                  redirect_uris=("https://app.example/cb", "http://127.0.0.1:8000/cb"),
                  jwks_url=None, jwks=JWKS, secret_hash="scrypt$16384$8$1$c2FsdA$a2V5",
                  organization=None)
    await auth_store.add_client(app)
    await auth_store.add_client(backend)
    assert await auth_store.get_client("pharmacy-1") == backend
    assert await auth_store.get_client("app-1") == app
    assert await auth_store.get_client("nobody") is None
    assert await auth_store.list_clients() == (backend, app)  # oldest first


async def test_a_client_id_is_registered_once(
        auth_store: AuthStore, now: datetime) -> None:
    await auth_store.add_client(_client(now))
    with pytest.raises(ClientExists):
        await auth_store.add_client(_client(now, name="Another"))
    assert (await auth_store.list_clients())[0].name == "Pharmacie du Port"


async def test_revoking_a_client_revokes_its_tokens_only(
        auth_store: AuthStore, now: datetime) -> None:
    await auth_store.add_client(_client(now))
    await auth_store.add_client(_client(now, "other"))
    await auth_store.save_token(_token("t-mine-1", now))
    await auth_store.save_token(_token("t-mine-2", now, kind="refresh"))
    await auth_store.save_token(_token("t-other", now, client_id="other"))
    assert await auth_store.revoke_client("pharmacy-1", now=now) == 2
    revoked = await auth_store.get_client("pharmacy-1")
    assert revoked is not None and revoked.status == "revoked" and not revoked.active
    assert await auth_store.find_token("t-mine-1", now=now) is None
    assert await auth_store.find_token("t-mine-2", now=now) is None
    assert await auth_store.find_token("t-other", now=now) is not None
    assert await auth_store.revoke_client("nobody", now=now) is None


async def test_tokens_are_found_by_the_token_not_by_its_hash(
        auth_store: AuthStore, now: datetime) -> None:
    issued = _token("secret-access-token", now, subject="Practitioner/d1",
                    context={"patient": "p1", "fhirContext": [{"reference": "Encounter/e1"}]})
    await auth_store.save_token(issued)
    assert await auth_store.find_token("secret-access-token", now=now) == issued
    assert await auth_store.find_token(token_hash("secret-access-token"), now=now) is None
    assert await auth_store.find_token("another-token", now=now) is None


async def test_an_expired_token_is_not_found(
        auth_store: AuthStore, now: datetime) -> None:
    await auth_store.save_token(_token("short", now, lifetime=timedelta(minutes=5)))
    assert await auth_store.find_token("short", now=now + timedelta(minutes=4, seconds=59))
    assert await auth_store.find_token("short", now=now + timedelta(minutes=5)) is None
    await auth_store.save_token(_token("long-gone", now, lifetime=timedelta(minutes=5),
                                       issued_at=now - timedelta(days=2),
                                       expires_at=now - timedelta(days=1)))
    assert await auth_store.find_token("long-gone") is None  # the real clock


async def test_a_revoked_token_is_not_found_and_revokes_once(
        auth_store: AuthStore, now: datetime) -> None:
    await auth_store.save_token(_token("to-revoke", now))
    assert await auth_store.revoke_token("to-revoke", now=now) is True
    assert await auth_store.find_token("to-revoke", now=now) is None
    assert await auth_store.revoke_token("to-revoke", now=now) is False
    assert await auth_store.revoke_token("never-issued", now=now) is False


async def test_revoke_tokens_of_client_counts_the_live_ones(
        auth_store: AuthStore, now: datetime) -> None:
    for name in ("a", "b", "c"):
        await auth_store.save_token(_token(name, now))
    await auth_store.revoke_token("a", now=now)
    assert await auth_store.revoke_tokens_of_client("pharmacy-1", now=now) == 2
    assert await auth_store.revoke_tokens_of_client("pharmacy-1", now=now) == 0
    assert await auth_store.find_token("b", now=now) is None


async def test_a_jti_replay_is_refused_within_its_lifetime(
        auth_store: AuthStore, now: datetime) -> None:
    expires = now + timedelta(minutes=5)
    assert await auth_store.remember_jti("pharmacy-1", "jti-1", expires, now=now) is True
    assert await auth_store.remember_jti("pharmacy-1", "jti-1", expires,
                                         now=now + timedelta(minutes=4)) is False
    # Another client may use the same jti.
    assert await auth_store.remember_jti("other", "jti-1", expires, now=now) is True


async def test_a_jti_is_accepted_again_after_it_expired(
        auth_store: AuthStore, now: datetime) -> None:
    first_expiry = now + timedelta(minutes=5)
    assert await auth_store.remember_jti("pharmacy-1", "jti-2", first_expiry, now=now)
    later = first_expiry + timedelta(seconds=1)
    assert await auth_store.remember_jti("pharmacy-1", "jti-2", later + timedelta(minutes=5),
                                         now=later) is True
    # and it is remembered with its new lifetime
    assert await auth_store.remember_jti("pharmacy-1", "jti-2", later + timedelta(minutes=5),
                                         now=later + timedelta(minutes=1)) is False


async def test_purge_removes_only_what_expired(
        auth_store: AuthStore, now: datetime) -> None:
    await auth_store.save_token(_token("old", now, lifetime=timedelta(minutes=1)))
    await auth_store.save_token(_token("fresh", now, lifetime=timedelta(hours=1)))
    await auth_store.remember_jti("pharmacy-1", "old-jti", now + timedelta(minutes=1), now=now)
    await auth_store.remember_jti("pharmacy-1", "new-jti", now + timedelta(hours=1), now=now)
    purge_time = now + timedelta(minutes=2)
    assert await auth_store.purge_expired(purge_time) == 2
    assert await auth_store.purge_expired(purge_time) == 0
    assert await auth_store.find_token("fresh", now=purge_time) is not None
    assert await auth_store.remember_jti("pharmacy-1", "new-jti", now + timedelta(hours=2),
                                         now=purge_time) is False
