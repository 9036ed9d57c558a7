"""Builds a started Store for tests: SQLite on a temp file, MongoDB live or through mongomock."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from fhir_server.storage.protocol import Store

BACKENDS = ("sqlite", "mongo")


def mongo_is_live() -> bool:
    """True when MONGODB_URL points the suite at a real MongoDB replica set."""
    return bool(os.environ.get("MONGODB_URL"))


def make_store(backend: str, tmp_path: Path) -> Store:
    """A not-yet-started store of the given backend, isolated for one test."""
    if backend == "sqlite":
        from fhir_server.storage.sqlite import SqliteStore

        return SqliteStore(tmp_path / "test.sqlite3")
    if backend == "mongo":
        from fhir_server.storage.mongo import MongoStore

        database = f"test_{uuid.uuid4().hex[:12]}"
        if mongo_is_live():
            from motor.motor_asyncio import AsyncIOMotorClient

            client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(os.environ["MONGODB_URL"])
            return MongoStore(client, database, drop_on_close=True)
        from tests.support.mongomock_sessions import session_capable_mongomock_client

        return MongoStore(session_capable_mongomock_client(), database)
    raise ValueError(f"unknown backend {backend}")


def fresh_mongo_database(prefix: str) -> tuple[Any, Any, tuple[Any, str] | None]:
    """A fresh MongoDB database for one test — live (``MONGODB_URL``) or mongomock —, its
    client when live (to close), and what to drop afterwards: ``(client, name)`` when live,
    else None."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    if mongo_is_live():
        from motor.motor_asyncio import AsyncIOMotorClient

        client: Any = AsyncIOMotorClient(os.environ["MONGODB_URL"])
        return client[name], client, (client, name)
    from tests.support.mongomock_sessions import session_capable_mongomock_client

    return session_capable_mongomock_client()[name], None, None
