"""A started SQLite store on a temp file for each outbox test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fhir_server.storage.sqlite import SqliteStore


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite3"


@pytest.fixture
async def store(store_path: Path) -> AsyncIterator[SqliteStore]:
    instance = SqliteStore(store_path)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()
