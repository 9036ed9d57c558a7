"""The embedded SQLite adapter of the Store protocol (WAL mode, one file)."""

from fhir_server.storage.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
