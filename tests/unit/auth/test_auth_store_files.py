"""Where the auth store lives (factory), and the SQLite file's mode, schema version and
in-place upgrade."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from fhir_server.auth.factory import open_auth_store
from fhir_server.auth.model import EhrLaunch, IssuedToken, token_hash, utc_now
from fhir_server.auth.mongo_auth import MongoAuthStore
from fhir_server.auth.sqlite_auth import SCHEMA_UPGRADES, SCHEMA_VERSION, SqliteAuthStore
from fhir_server.settings import Settings
from fhir_server.storage.protocol import StoreError, StoreUnavailable


async def test_the_sqlite_auth_store_is_its_own_file_in_the_data_dir(tmp_path: Path) -> None:
    store = open_auth_store(Settings(data_dir=tmp_path / "data"))
    assert isinstance(store, SqliteAuthStore)
    await store.start()
    await store.close()
    assert (tmp_path / "data" / "auth.sqlite3").exists()
    assert not (tmp_path / "data" / "fhir.sqlite3").exists()


async def test_a_custom_sqlite_store_url_puts_the_auth_file_beside_it(tmp_path: Path) -> None:
    fhir_file = tmp_path / "elsewhere" / "main.db"
    store = open_auth_store(Settings(data_dir=tmp_path / "data", store=f"sqlite:///{fhir_file}"))
    await store.start()
    await store.close()
    assert (tmp_path / "elsewhere" / "auth.sqlite3").exists()


async def test_a_mongodb_url_gives_the_mongo_auth_store() -> None:
    store = open_auth_store(Settings(store="mongodb://127.0.0.1:1/?replicaSet=rs0"))
    assert isinstance(store, MongoAuthStore)
    await store.close()


def test_an_unknown_store_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported storage URL"):
        open_auth_store(Settings(store="postgres://secret@host/db"))


async def test_the_file_is_in_wal_mode_at_the_current_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "auth.sqlite3"
    store = SqliteAuthStore(path)
    await store.start()
    await store.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()


async def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "auth.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    store = SqliteAuthStore(path)
    with pytest.raises(StoreUnavailable, match="newer"):
        await store.start()
    await store.close()


async def test_a_version_1_file_is_upgraded_in_place_keeping_its_tokens(
        tmp_path: Path) -> None:
    path = tmp_path / "auth.sqlite3"
    now = utc_now()
    with sqlite3.connect(path) as connection:
        for statement in SCHEMA_UPGRADES[0]:
            connection.execute(statement)
        connection.execute("PRAGMA user_version = 1")
        connection.execute(
            "INSERT INTO tokens (token_hash, kind, client_id, scope, subject, context, "
            "issued_at, expires_at, revoked_at) VALUES (?, 'access', 'pharmacy-1', "
            "'system/Patient.rs', NULL, '{}', ?, ?, NULL)",
            (token_hash("old-token"), now.isoformat(timespec="microseconds"),
             (now + timedelta(minutes=5)).isoformat(timespec="microseconds")))
    connection.close()
    store = SqliteAuthStore(path)
    await store.start()
    try:
        kept = await store.find_token("old-token", now=now)
        assert kept is not None and kept.client_id == "pharmacy-1" and kept.grant_id is None
        await store.save_token(IssuedToken(
            token_hash=token_hash("new-token"), kind="refresh", client_id="app-1",
            scope="openid", issued_at=now, expires_at=now + timedelta(days=1),
            subject="account-1", grant_id="g1"))
        assert await store.revoke_grant("g1", now=now) == 1
        await store.save_launch(EhrLaunch(launch_hash=token_hash("l1"), subject="account-1",
                                          patient="p1", issued_at=now,
                                          expires_at=now + timedelta(minutes=5)))
        assert await store.consume_launch("l1", now=now) is not None
    finally:
        await store.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    connection.close()


async def test_a_failed_upgrade_leaves_the_file_at_its_version(tmp_path: Path) -> None:
    path = tmp_path / "auth.sqlite3"
    with sqlite3.connect(path) as connection:
        for statement in SCHEMA_UPGRADES[0]:
            connection.execute(statement)
        # a column the upgrade adds is already there: its ALTER TABLE fails
        connection.execute("ALTER TABLE tokens ADD COLUMN grant_id TEXT")
        connection.execute("PRAGMA user_version = 1")
    connection.close()
    store = SqliteAuthStore(path)
    with pytest.raises(StoreError):
        await store.start()
    await store.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    connection.close()
    assert "codes" not in tables
