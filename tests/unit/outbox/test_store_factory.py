"""open_store: the storage URL picks the adapter (tests for fhir_server/storage/factory.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_server.settings import Settings
from fhir_server.storage.factory import open_store
from fhir_server.storage.mongo import MongoStore
from fhir_server.storage.sqlite import SqliteStore
from tests.unit.outbox.builders import patient


async def test_sqlite_url_creates_the_directory_and_a_working_store(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "fhir.sqlite3"
    store = open_store(Settings(store=f"sqlite:///{path}"))
    assert isinstance(store, SqliteStore)
    await store.start()
    try:
        await store.commit([patient("p1")])
        assert await store.read("Patient", "p1") is not None
    finally:
        await store.close()
    assert path.is_file()


def test_no_url_means_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path / "data"))
    assert isinstance(store, SqliteStore)
    assert (tmp_path / "data").is_dir()


def test_mongodb_urls_give_a_mongo_store() -> None:
    for url in ("mongodb://127.0.0.1:1/?replicaSet=rs0", "mongodb://h1:1,h2:1/"):
        assert isinstance(open_store(Settings(store=url, mongo_database="fhir")), MongoStore)


@pytest.mark.parametrize("url", ["postgres://user:hunter2@db/fhir", "fhir.sqlite3",
                                 "sqlite://relative.db", "sqlite:///"])
def test_other_urls_are_refused_without_echoing_credentials(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        open_store(Settings(store=url))
    assert "hunter2" not in str(refused.value)
