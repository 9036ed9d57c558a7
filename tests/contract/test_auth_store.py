"""The AuthStore contract, on SQLite and on MongoDB (live, or mongomock without MONGODB_URL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_server.auth.model import (
    AuthorizationCode,
    AuthStore,
    Client,
    ClientExists,
    EhrLaunch,
    IssuedToken,
    token_hash,
    utc_now,
)
from tests.support.backends import BACKENDS, fresh_mongo_database

JWKS = {"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "x": "AAAA", "y": "BBBB"}]}


def _auth_store(backend: str, tmp_path: Path) -> tuple[AuthStore, Any]:
    """The store, and what to drop afterwards (a live test database) or None."""
    if backend == "sqlite":
        from fhir_server.auth.sqlite_auth import SqliteAuthStore

        return SqliteAuthStore(tmp_path / "auth.sqlite3"), None
    from fhir_server.auth.mongo_auth import MongoAuthStore

    database, client, to_drop = fresh_mongo_database("test_auth")
    return MongoAuthStore(database, client=client), to_drop


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


def _code(code: str, now: datetime, **changes: Any) -> AuthorizationCode:
    base = AuthorizationCode(
        code_hash=token_hash(code), client_id="app-1", redirect_uri="https://app.example/cb",
        scope="openid fhirUser launch/patient patient/*.rs", code_challenge="c" * 43,
        subject="account-1", grant_id="grant-1", auth_time=now - timedelta(seconds=5),
        issued_at=now, expires_at=now + timedelta(minutes=1),
        context={"patient": "p1", "fhirUser": "https://x/fhir/PractitionerRole/r1"},
        nonce="n-1")
    return replace(base, **changes)


def _launch(launch: str, now: datetime, **changes: Any) -> EhrLaunch:
    base = EhrLaunch(launch_hash=token_hash(launch), subject="account-1", patient="p1",
                     encounter="e1", fhir_context=("ServiceRequest/sr1", "Task/t1"),
                     issued_at=now, expires_at=now + timedelta(minutes=10))
    return replace(base, **changes)


async def test_revoke_grant_revokes_the_whole_family_and_nothing_else(
        auth_store: AuthStore, now: datetime) -> None:
    await auth_store.save_token(_token("g1-access", now, grant_id="g1", subject="account-1"))
    await auth_store.save_token(_token("g1-refresh", now, kind="refresh", grant_id="g1",
                                       subject="account-1", lifetime=timedelta(days=30)))
    await auth_store.save_token(_token("g2-access", now, grant_id="g2", subject="account-1"))
    await auth_store.save_token(_token("backend", now))
    found = await auth_store.find_token("g1-refresh", now=now)
    assert found is not None and found.grant_id == "g1"
    assert await auth_store.revoke_grant("g1", now=now) == 2
    assert await auth_store.find_token("g1-access", now=now) is None
    assert await auth_store.find_token("g1-refresh", now=now) is None
    assert await auth_store.find_token("g2-access", now=now) is not None
    assert await auth_store.find_token("backend", now=now) is not None
    assert await auth_store.revoke_grant("g1", now=now) == 0
    assert await auth_store.revoke_grant("unknown", now=now) == 0


async def test_revoke_tokens_of_subject_revokes_every_grant_of_the_user(
        auth_store: AuthStore, now: datetime) -> None:
    await auth_store.save_token(_token("a1", now, grant_id="g1", subject="account-1"))
    await auth_store.save_token(_token("a2", now, grant_id="g2", subject="account-1",
                                       kind="refresh"))
    await auth_store.save_token(_token("b1", now, grant_id="g3", subject="account-2"))
    await auth_store.revoke_token("a1", now=now)
    assert await auth_store.revoke_tokens_of_subject("account-1", now=now) == 1
    assert await auth_store.find_token("a2", now=now) is None
    assert await auth_store.find_token("b1", now=now) is not None
    assert await auth_store.revoke_tokens_of_subject("account-1", now=now) == 0


async def test_a_refresh_token_is_spent_once_and_a_replay_is_told_apart(
        auth_store: AuthStore, now: datetime) -> None:
    issued = _token("refresh-1", now, kind="refresh", client_id="app-1", grant_id="g1",
                    subject="account-1", lifetime=timedelta(days=1))
    await auth_store.save_token(issued)
    first = await auth_store.use_refresh_token("refresh-1", client_id="app-1", now=now)
    assert first == issued  # as it was: not yet revoked
    assert await auth_store.find_token("refresh-1", now=now) is None
    later = now + timedelta(seconds=1)
    replay = await auth_store.use_refresh_token("refresh-1", client_id="app-1", now=later)
    assert replay is not None and replay.grant_id == "g1"
    assert replay.revoked_at == now  # the first use's time, unchanged by the replay


async def test_a_refresh_token_is_not_spent_by_another_client_or_as_another_kind(
        auth_store: AuthStore, now: datetime) -> None:
    await auth_store.save_token(_token("refresh-2", now, kind="refresh", client_id="app-1",
                                       grant_id="g1", lifetime=timedelta(days=1)))
    await auth_store.save_token(_token("access-2", now, client_id="app-1", grant_id="g1"))
    assert await auth_store.use_refresh_token("refresh-2", client_id="other", now=now) is None
    assert await auth_store.find_token("refresh-2", now=now) is not None  # left alone
    assert await auth_store.use_refresh_token("access-2", client_id="app-1", now=now) is None
    assert await auth_store.find_token("access-2", now=now) is not None
    assert await auth_store.use_refresh_token("unknown", client_id="app-1", now=now) is None
    expired = now + timedelta(days=1)
    assert await auth_store.use_refresh_token("refresh-2", client_id="app-1",
                                              now=expired) is None


async def test_an_authorization_code_is_consumed_once_and_a_replay_is_told_apart(
        auth_store: AuthStore, now: datetime) -> None:
    issued = _code("code-1", now)
    await auth_store.save_code(issued)
    first = await auth_store.consume_code("code-1", now=now)
    assert first == issued  # every field round-trips; not consumed before this call
    at = now + timedelta(seconds=2)
    replay = await auth_store.consume_code("code-1", now=at)
    assert replay is not None and replay.consumed_at == now and replay.grant_id == "grant-1"
    # still told apart after the code's expiry, as long as its record is kept
    assert await auth_store.consume_code("code-1", now=now + timedelta(minutes=2)) == replay
    assert await auth_store.consume_code(token_hash("code-1"), now=now) is None
    assert await auth_store.consume_code("unknown", now=now) is None


async def test_an_expired_code_that_was_never_used_is_refused(
        auth_store: AuthStore, now: datetime) -> None:
    await auth_store.save_code(_code("code-2", now, nonce=None, context={}))
    assert await auth_store.consume_code("code-2", now=now + timedelta(minutes=1)) is None
    fresh = await auth_store.consume_code("code-2", now=now + timedelta(seconds=59))
    assert fresh is not None and fresh.nonce is None and fresh.context == {}


async def test_concurrent_exchanges_of_one_code_let_exactly_one_through(
        auth_store: AuthStore, now: datetime) -> None:
    await auth_store.save_code(_code("code-3", now))
    results = await asyncio.gather(*(auth_store.consume_code("code-3", now=now)
                                     for _ in range(6)))
    assert all(result is not None for result in results)
    assert sum(result.consumed_at is None for result in results if result is not None) == 1


async def test_an_ehr_launch_is_found_until_consumed_once(
        auth_store: AuthStore, now: datetime) -> None:
    stored = _launch("launch-1", now)
    await auth_store.save_launch(stored)
    await auth_store.save_launch(_launch("launch-2", now, encounter=None, fhir_context=()))
    assert await auth_store.find_launch("launch-1", now=now) == stored
    assert await auth_store.find_launch(token_hash("launch-1"), now=now) is None
    consumed = await auth_store.consume_launch("launch-1", now=now)
    assert consumed == replace(stored, consumed_at=now)
    assert await auth_store.consume_launch("launch-1", now=now) is None
    assert await auth_store.find_launch("launch-1", now=now) is None
    other = await auth_store.find_launch("launch-2", now=now)
    assert other is not None and other.encounter is None and other.fhir_context == ()
    expired = now + timedelta(minutes=10)
    assert await auth_store.find_launch("launch-2", now=expired) is None
    assert await auth_store.consume_launch("launch-2", now=expired) is None


async def test_purge_removes_expired_codes_and_launches(
        auth_store: AuthStore, now: datetime) -> None:
    await auth_store.save_code(_code("old-code", now))
    await auth_store.save_code(_code("new-code", now, expires_at=now + timedelta(hours=1)))
    await auth_store.save_launch(_launch("old-launch", now))
    purge_time = now + timedelta(minutes=11)
    assert await auth_store.purge_expired(purge_time) == 2
    assert await auth_store.consume_code("new-code", now=purge_time) is not None
