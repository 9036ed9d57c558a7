"""Chooses and builds the store adapter named by the settings' storage URL (not yet started)."""

from __future__ import annotations

from pathlib import Path

from fhir_server.settings import Settings
from fhir_server.storage.protocol import Store

SQLITE_PREFIX = "sqlite:///"
MONGO_PREFIXES = ("mongodb://", "mongodb+srv://")


def open_store(settings: Settings) -> Store:
    """The store for ``settings.resolved_store_url()``; call ``start()`` on it before use.

    ``sqlite:///path`` (relative) or ``sqlite:////abs/path`` gives the embedded SQLite store,
    its directory created if missing, with ``sqlite_synchronous`` and ``sqlite_readers``;
    ``mongodb://`` and ``mongodb+srv://`` give MongoDB with
    ``settings.mongo_database``. Raises ValueError for anything else.
    """
    url = settings.resolved_store_url()
    if url.startswith(SQLITE_PREFIX):
        return _sqlite_store(Path(url.removeprefix(SQLITE_PREFIX)), settings)
    if url.startswith(MONGO_PREFIXES):
        from fhir_server.storage.mongo import MongoStore

        return MongoStore.from_url(url, settings.mongo_database)
    raise ValueError(f"unsupported storage URL scheme {_scheme(url)!r} in FHIR_SERVER_STORE: "
                     "use sqlite:///path/to/file.sqlite3 or mongodb://host/?replicaSet=name")


def _sqlite_store(path: Path, settings: Settings) -> Store:
    from fhir_server.storage.sqlite import SqliteStore

    if not path.name:
        raise ValueError("the sqlite:/// storage URL names no file")
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteStore(path, synchronous=settings.sqlite_synchronous,
                       readers=settings.sqlite_readers)


def _scheme(url: str) -> str:
    """Only the scheme of a URL, so that no credentials in it reach an error message."""
    scheme, separator, _ = url.partition("://")
    return scheme if separator else "(none)"
