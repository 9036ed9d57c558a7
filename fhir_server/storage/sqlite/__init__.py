"""The embedded SQLite adapter of the Store protocol (WAL mode, one file).

``SqliteStore`` is imported on first use, so the writer process (``writer_child.py``), which
imports modules of this package, starts without the store's asyncio and reader machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fhir_server.storage.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]


def __getattr__(name: str) -> Any:
    if name == "SqliteStore":
        from fhir_server.storage.sqlite.store import SqliteStore

        return SqliteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
