"""The one place where sqlite3 exceptions become the Store protocol's errors."""

from __future__ import annotations

import sqlite3

from fhir_server.storage.protocol import StoreError, StoreUnavailable

_REJECTIONS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError,
               sqlite3.NotSupportedError, sqlite3.DataError)
"""Errors that mean SQLite refused this statement; anything else means it cannot work now."""


def store_error(error: sqlite3.Error | OSError) -> StoreError:
    """The protocol error for a sqlite3 exception (raise it ``from`` the original).

    Operational failures (locked or busy database, unreadable or corrupt file, I/O errors, a
    directory that cannot be created) become ``StoreUnavailable``; a statement SQLite rejected
    (a constraint, a misuse) becomes a plain ``StoreError``.
    """
    if isinstance(error, OSError):
        return StoreUnavailable(f"SQLite file unavailable: {error}")
    name = getattr(error, "sqlite_errorname", None) or type(error).__name__
    if isinstance(error, _REJECTIONS):
        return StoreError(f"SQLite rejected the statement ({name}): {error}")
    return StoreUnavailable(f"SQLite database unavailable ({name}): {error}")
