"""Chooses the auth store beside the FHIR store: ``auth.sqlite3`` next to its SQLite file, or
the same MongoDB database."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fhir_server.auth.model import AuthStore
from fhir_server.settings import Settings
from fhir_server.storage.factory import MONGO_PREFIXES, SQLITE_PREFIX

AUTH_FILE_NAME: Final = "auth.sqlite3"


def open_auth_store(settings: Settings) -> AuthStore:
    """The auth store for the settings' storage URL (not yet started: call ``start()``).

    Raises ValueError for a storage URL that names neither SQLite nor MongoDB.
    """
    url = settings.resolved_store_url()
    if url.startswith(SQLITE_PREFIX):
        from fhir_server.auth.sqlite_auth import SqliteAuthStore

        return SqliteAuthStore(auth_file(Path(url.removeprefix(SQLITE_PREFIX))),
                               synchronous=_auth_synchronous(settings.sqlite_synchronous))
    if url.startswith(MONGO_PREFIXES):
        from fhir_server.auth.mongo_auth import MongoAuthStore

        return MongoAuthStore.from_url(url, settings.mongo_database)
    raise ValueError("unsupported storage URL in FHIR_SERVER_STORE: use sqlite:///path or "
                     "mongodb://host/?replicaSet=name")


def auth_file(fhir_file: Path) -> Path:
    """Where the auth database lives: beside the FHIR store's file."""
    return fhir_file.parent / AUTH_FILE_NAME


def _auth_synchronous(fhir_synchronous: str) -> str:
    """The FHIR store's durability, but never below NORMAL: a revocation must not be lost."""
    mode = fhir_synchronous.upper()
    return mode if mode in ("FULL", "EXTRA") else "NORMAL"
