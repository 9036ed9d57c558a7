"""The AccountStore contract, on SQLite and on MongoDB (live, or mongomock without MONGODB_URL)."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_server.accounts.model import Account, AccountToken, TokenPurpose
from fhir_server.accounts.sqlite_accounts import COMPONENT, SCHEMA_VERSION, SqliteAccountStore
from fhir_server.accounts.store import (
    AccountConflict,
    AccountExists,
    AccountStore,
    open_account_store,
)
from fhir_server.auth.model import token_hash, utc_now
from fhir_server.auth.sqlite_auth import SqliteAuthStore
from fhir_server.settings import Settings
from fhir_server.storage.protocol import StoreUnavailable

CREATED = utc_now()


def _account(account_id: str = "a1", email: str = "claire@pharmacie.example",
             **changes: Any) -> Account:
    base = Account(account_id=account_id, email=email, role="pharmacist", status="active",
                   password_hash="$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA",
                   created=CREATED, practitioner="Practitioner/p1",
                   practitioner_role="PractitionerRole/r1", organization="Organization/o1")
    return replace(base, **changes)


def _token(token: str, now: datetime, *, account_id: str = "a1",
           lifetime: timedelta = timedelta(hours=1),
           purpose: TokenPurpose = "reset-password") -> AccountToken:
    return AccountToken.of(token, account_id=account_id, purpose=purpose, created=now,
                           expires_at=now + lifetime)


async def test_an_account_reads_back_by_id_email_and_practitioner(
        account_store: AccountStore) -> None:
    account = _account(suspended_until=utc_now() + timedelta(days=2), warnings=2,
                       last_warning_at=utc_now(), last_warning_reason="late answers",
                       tier="tier-2", email_verified_at=utc_now())
    await account_store.add(account)
    assert await account_store.get("a1") == account
    assert await account_store.by_email("claire@pharmacie.example") == account
    assert await account_store.by_practitioner("Practitioner/p1") == account
    assert await account_store.get("nobody") is None
    assert await account_store.by_email("nobody@example.org") is None
    assert await account_store.by_practitioner("Practitioner/other") is None


async def test_an_email_belongs_to_one_account(account_store: AccountStore) -> None:
    await account_store.add(_account())
    with pytest.raises(AccountExists):
        await account_store.add(_account("a2"))
    await account_store.add(_account("a2", email="other@pharmacie.example"))
    with pytest.raises(AccountExists):
        await account_store.replace(_account("a2", version=2))


async def test_replace_is_a_compare_and_set_on_the_version(account_store: AccountStore) -> None:
    await account_store.add(_account())
    await account_store.replace(_account(status="suspended", version=2))
    assert (await account_store.get("a1")) == _account(status="suspended", version=2)
    with pytest.raises(AccountConflict):
        await account_store.replace(_account(status="terminated", version=2))
    with pytest.raises(AccountConflict):
        await account_store.replace(_account("unknown", email="x@example.org", version=2))
    stored = await account_store.get("a1")
    assert stored is not None and stored.status == "suspended"


async def test_remove_deletes_the_account_and_its_tokens(account_store: AccountStore) -> None:
    now = utc_now()
    await account_store.add(_account())
    await account_store.save_token(_token("tok-1", now))
    assert await account_store.remove("a1") is True
    assert await account_store.get("a1") is None
    assert await account_store.use_token("tok-1", "reset-password", now=now) is None
    assert await account_store.remove("a1") is False


async def test_has_role(account_store: AccountStore) -> None:
    assert await account_store.has_role("admin") is False
    await account_store.add(_account(role="admin", practitioner=None))
    assert await account_store.has_role("admin") is True
    assert await account_store.has_role("support") is False


async def test_a_token_is_used_once_and_only_for_its_purpose(
        account_store: AccountStore) -> None:
    now = utc_now()
    await account_store.save_token(_token("tok-1", now))
    assert await account_store.use_token("tok-1", "verify-email", now=now) is None
    assert await account_store.token_account("tok-1", "reset-password", now=now) == "a1"
    assert await account_store.use_token("tok-1", "reset-password", now=now) == "a1"
    assert await account_store.use_token("tok-1", "reset-password", now=now) is None
    assert await account_store.token_account("tok-1", "reset-password", now=now) is None
    assert await account_store.use_token("unknown", "reset-password", now=now) is None


async def test_concurrent_uses_of_a_token_give_the_account_once(
        account_store: AccountStore) -> None:
    now = utc_now()
    await account_store.save_token(_token("tok-1", now))
    answers = await asyncio.gather(*(account_store.use_token("tok-1", "reset-password", now=now)
                                     for _ in range(8)))
    assert answers.count("a1") == 1
    assert answers.count(None) == 7


async def test_an_expired_token_is_refused(account_store: AccountStore) -> None:
    now = utc_now()
    await account_store.save_token(_token("tok-1", now, lifetime=timedelta(minutes=10)))
    later = now + timedelta(minutes=10)
    assert await account_store.token_account("tok-1", "reset-password", now=later) is None
    assert await account_store.use_token("tok-1", "reset-password", now=later) is None
    assert await account_store.use_token("tok-1", "reset-password",
                                         now=now + timedelta(minutes=9)) == "a1"


async def test_a_new_token_drops_the_unused_older_ones_of_its_purpose(
        account_store: AccountStore) -> None:
    now = utc_now()
    await account_store.save_token(_token("old", now))
    await account_store.save_token(_token("verify", now, purpose="verify-email"))
    await account_store.save_token(_token("new", now))
    assert await account_store.use_token("old", "reset-password", now=now) is None
    assert await account_store.use_token("new", "reset-password", now=now) == "a1"
    assert await account_store.use_token("verify", "verify-email", now=now) == "a1"


async def test_failures_are_counted_by_key_and_cleared(account_store: AccountStore) -> None:
    now = utc_now()
    keep = now + timedelta(hours=1)
    for seconds in (1, 2, 3):
        await account_store.record_failure("account:a", now + timedelta(seconds=seconds),
                                           keep_until=keep)
    await account_store.record_failure("address:b", now, keep_until=keep)
    found = await account_store.failures("account:a", since=now + timedelta(seconds=1))
    assert found == (now + timedelta(seconds=2), now + timedelta(seconds=3))
    await account_store.clear_failures("account:a")
    assert await account_store.failures("account:a", since=now - timedelta(hours=1)) == ()
    assert len(await account_store.failures("address:b", since=now - timedelta(hours=1))) == 1


async def test_purge_drops_expired_tokens_and_forgettable_failures(
        account_store: AccountStore) -> None:
    now = utc_now()
    await account_store.save_token(_token("short", now, lifetime=timedelta(minutes=1)))
    await account_store.save_token(_token("long", now, account_id="a2",
                                          lifetime=timedelta(days=1)))
    await account_store.record_failure("k", now, keep_until=now + timedelta(minutes=1))
    await account_store.record_failure("k", now, keep_until=now + timedelta(days=1))
    assert await account_store.purge_expired(now + timedelta(minutes=2)) == 2
    assert await account_store.use_token("long", "reset-password", now=now) == "a2"
    assert len(await account_store.failures("k", since=now - timedelta(days=1))) == 1


async def test_the_sqlite_tables_share_the_auth_file_with_their_own_version(
        tmp_path: Path) -> None:
    path = tmp_path / "auth.sqlite3"
    auth = SqliteAuthStore(path)
    await auth.start()
    accounts = SqliteAccountStore(path)
    await accounts.start()
    await accounts.add(_account())
    await accounts.close()
    await auth.close()
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = connection.execute("SELECT version FROM schema_versions WHERE component = ?",
                                     (COMPONENT,)).fetchone()[0]
    connection.close()
    assert {"accounts", "account_tokens", "sign_in_failures", "clients", "tokens"} <= tables
    assert version == SCHEMA_VERSION
    reopened = SqliteAccountStore(path)
    await reopened.start()
    assert (await reopened.get("a1")) == _account()
    await reopened.close()


async def test_a_newer_accounts_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "auth.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE schema_versions (component TEXT PRIMARY KEY, "
                           "version INTEGER NOT NULL)")
        connection.execute("INSERT INTO schema_versions VALUES (?, ?)",
                           (COMPONENT, SCHEMA_VERSION + 1))
    connection.close()
    store = SqliteAccountStore(path)
    with pytest.raises(StoreUnavailable, match="newer"):
        await store.start()
    await store.close()


async def test_the_factory_puts_accounts_in_the_auth_file(tmp_path: Path) -> None:
    store = open_account_store(Settings(data_dir=tmp_path / "data"))
    assert isinstance(store, SqliteAccountStore)
    await store.start()
    await store.close()
    assert (tmp_path / "data" / "auth.sqlite3").exists()


async def test_a_token_is_stored_by_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "auth.sqlite3"
    store = SqliteAccountStore(path)
    await store.start()
    await store.save_token(_token("the-secret-token", utc_now()))
    await store.close()
    with sqlite3.connect(path) as connection:
        keys = [row[0] for row in connection.execute("SELECT token_hash FROM account_tokens")]
    connection.close()
    assert keys == [token_hash("the-secret-token")]
