"""The SQLite file: connection settings (WAL, synchronous, busy timeout) and the schema, versioned.

The schema version lives in ``PRAGMA user_version``. ``prepare_database`` creates every table and
index of a new file in one transaction, accepts a file at the current version as it is, and
refuses a file written by a newer schema. An older file is brought up to date the same way: every
statement is ``CREATE … IF NOT EXISTS``, so only what is missing gets created (version 2 added
the lookup indexes on token text, exact strings and number highs; version 3 the index of the
search order, ``resources_live_by_type_id``; version 4 drops the lookup indexes that others
serve, listed in ``index_tables.RETIRED_INDEXES``, and makes two partial).

The new file also gets fixed planner statistics (``sqlite_stat1``) describing a large database,
so SQLite picks the same index-driven plans on a file of ten rows as on one of ten million
(SQLite documents hand-written statistics as the way to pin query plans). Without them, a
token search on a fresh file would walk every resource of the type and probe the token index.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fhir_server.storage.protocol import StoreUnavailable
from fhir_server.storage.sqlite.index_tables import INDEX_TABLES, RETIRED_INDEXES

SCHEMA_VERSION = 4
SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
BUSY_TIMEOUT_SECONDS = 5.0
CACHED_STATEMENTS = 256

_CORE_STATEMENTS = (
    # The current version of each resource; body NULL when the latest version is a deletion.
    """CREATE TABLE IF NOT EXISTS resources (
        rid INTEGER PRIMARY KEY,
        resource_type TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        last_updated TEXT NOT NULL,
        method TEXT NOT NULL,
        body BLOB)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS resources_key ON resources (resource_type, id)",
    "CREATE INDEX IF NOT EXISTS resources_id ON resources (id)",
    # The search order, (type, id): fields an update never changes, so paging stays stable.
    """CREATE INDEX IF NOT EXISTS resources_live_by_type_id
        ON resources (resource_type, id) WHERE body IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS resources_live_by_time
        ON resources (last_updated, resource_type, id) WHERE body IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS resources_live_by_type_time
        ON resources (resource_type, last_updated, id) WHERE body IS NOT NULL""",
    # Every version. A version is current from its last_updated (its "valid_from") until
    # valid_to, the next version's last_updated (NULL while it is the latest).
    """CREATE TABLE IF NOT EXISTS history (
        resource_type TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        last_updated TEXT NOT NULL,
        method TEXT NOT NULL,
        body BLOB,
        valid_to TEXT)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS history_key ON history (resource_type, id, version)",
    """CREATE INDEX IF NOT EXISTS history_by_time
        ON history (last_updated, resource_type, id, version)""",
    """CREATE INDEX IF NOT EXISTS history_by_type_time
        ON history (resource_type, last_updated, id, version)""",
    # Events written with the changes that cause them; seq keeps insertion order.
    """CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        delivered_at TEXT)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS outbox_key ON outbox (id)",
    """CREATE INDEX IF NOT EXISTS outbox_pending
        ON outbox (created, seq) WHERE delivered_at IS NULL""",
    """CREATE TABLE IF NOT EXISTS consumed (
        consumer TEXT NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (consumer, event_id)) WITHOUT ROWID""",
)

PLANNER_STATISTICS: tuple[tuple[str, str, str], ...] = (
    # (table, index, "rows, then rows per distinct value of each leading prefix of the index")
    ("resources", "resources_key", "1000000 20000 1"),
    ("resources", "resources_id", "1000000 2"),
    ("resources", "resources_live_by_type_id", "1000000 20000 1"),
    ("resources", "resources_live_by_time", "1000000 2 1 1"),
    ("resources", "resources_live_by_type_time", "1000000 20000 2 1"),
    ("history", "history_key", "3000000 60000 3 1"),
    ("history", "history_by_time", "3000000 2 1 1 1"),
    ("history", "history_by_type_time", "3000000 60000 2 1 1"),
    ("outbox", "outbox_key", "100000 1"),
    ("outbox", "outbox_pending", "1000 1 1"),
    *(row for table in INDEX_TABLES for row in table.planner_statistics()),
)

SCHEMA_STATEMENTS: tuple[str, ...] = (
    *(f"DROP INDEX IF EXISTS {index}" for index in RETIRED_INDEXES),
    *_CORE_STATEMENTS,
    *(statement for table in INDEX_TABLES for statement in table.create_statements()),
)


CACHE_KIB = 65_536
"""Page cache per connection (64 MiB): hot b-tree pages stay in memory as the file grows."""
MMAP_BYTES = 256 * 1024 * 1024
"""Reads through a memory map up to 256 MiB of the file, sparing a copy per page read."""


def open_connection(path: Path, *, synchronous: str, read_only: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), with the store's pragmas.

    ``synchronous`` must be one of ``SYNCHRONOUS_MODES`` (pragmas take no bound parameters, so
    the caller validates it). Connections may be closed from another thread than their own.
    """
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                 check_same_thread=False, cached_statements=CACHED_STATEMENTS)
    try:
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA temp_store = MEMORY")
        connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        connection.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        if read_only:
            connection.execute("PRAGMA query_only = ON")
    except BaseException:
        connection.close()
        raise
    return connection


def prepare_database(connection: sqlite3.Connection) -> None:
    """Switch the file to WAL and create the schema if the file is new."""
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreUnavailable(f"SQLite refused WAL mode (journal_mode is {mode})")
    if _schema_version(connection) == SCHEMA_VERSION:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _schema_version(connection)
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(f"SQLite schema version {version} is newer than this server's "
                                   f"{SCHEMA_VERSION}")
        for statement in SCHEMA_STATEMENTS:
            connection.execute(statement)
        _pin_planner_statistics(connection)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("ANALYZE sqlite_master")  # reloads the statistics on this connection


def _pin_planner_statistics(connection: sqlite3.Connection) -> None:
    connection.execute("ANALYZE sqlite_master")  # creates sqlite_stat1 if missing
    connection.execute("DELETE FROM sqlite_stat1")
    connection.executemany("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)",
                           PLANNER_STATISTICS)


def _schema_version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA user_version").fetchone()[0])
