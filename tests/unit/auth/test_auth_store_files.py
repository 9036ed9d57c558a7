"""Where the auth store lives (factory) and the SQLite file's mode and schema version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fhir_server.auth.factory import open_auth_store
from fhir_server.auth.mongo_auth import MongoAuthStore
from fhir_server.auth.sqlite_auth import SCHEMA_VERSION, SqliteAuthStore
from fhir_server.settings import Settings
from fhir_server.storage.protocol import StoreUnavailable


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
