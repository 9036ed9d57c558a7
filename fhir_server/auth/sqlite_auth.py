"""``SqliteAuthStore``: the AuthStore on its own SQLite file (``auth.sqlite3``), in WAL mode.

The work per call is a statement or two, so one connection on one dedicated thread serves every
call in turn (no locks to share: ``storage/sqlite/dedicated.py``). The schema is versioned with
``PRAGMA user_version`` and an older file is upgraded in place, step by step
(``SCHEMA_UPGRADES``), when the store starts; times are fixed-width UTC text
(``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``), so string order is time order. Every sqlite3 exception
leaves as a Store protocol error (``storage.sqlite.errors``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar, cast

from fhir_server.auth.model import (
    AuthorizationCode,
    Client,
    ClientExists,
    ClientKind,
    ClientStatus,
    EhrLaunch,
    IssuedToken,
    TokenKind,
    token_hash,
    utc_millis,
    utc_now,
)
from fhir_server.storage.protocol import StoreUnavailable
from fhir_server.storage.sqlite.dedicated import DedicatedConnection, write_transaction

T = TypeVar("T")

SCHEMA_UPGRADES: Final[tuple[tuple[str, ...], ...]] = (
    # 0 -> 1: clients, tokens, assertion ids
    ("""CREATE TABLE IF NOT EXISTS clients (
        client_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        scope TEXT NOT NULL,
        redirect_uris TEXT NOT NULL,
        jwks_url TEXT,
        jwks TEXT,
        secret_hash TEXT,
        organization TEXT,
        status TEXT NOT NULL,
        created TEXT NOT NULL) WITHOUT ROWID""",
     """CREATE TABLE IF NOT EXISTS tokens (
        token_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        client_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        subject TEXT,
        context TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT) WITHOUT ROWID""",
     "CREATE INDEX IF NOT EXISTS tokens_by_client ON tokens (client_id)",
     "CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens (expires_at)",
     """CREATE TABLE IF NOT EXISTS jtis (
        client_id TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (client_id, jti)) WITHOUT ROWID""",
     "CREATE INDEX IF NOT EXISTS jtis_by_expiry ON jtis (expires_at)"),
    # 1 -> 2: token families, authorization codes, EHR launches
    ("ALTER TABLE tokens ADD COLUMN grant_id TEXT",
     "CREATE INDEX IF NOT EXISTS tokens_by_grant ON tokens (grant_id) "
     "WHERE grant_id IS NOT NULL",
     "CREATE INDEX IF NOT EXISTS tokens_by_subject ON tokens (subject) "
     "WHERE subject IS NOT NULL",
     """CREATE TABLE IF NOT EXISTS codes (
        code_hash TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        scope TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        subject TEXT NOT NULL,
        grant_id TEXT NOT NULL,
        context TEXT NOT NULL,
        nonce TEXT,
        auth_time TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        consumed_at TEXT) WITHOUT ROWID""",
     "CREATE INDEX IF NOT EXISTS codes_by_expiry ON codes (expires_at)",
     """CREATE TABLE IF NOT EXISTS launches (
        launch_hash TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        patient TEXT NOT NULL,
        encounter TEXT,
        fhir_context TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        consumed_at TEXT) WITHOUT ROWID""",
     "CREATE INDEX IF NOT EXISTS launches_by_expiry ON launches (expires_at)"),
)
"""The statements bringing the schema from version ``i`` to ``i + 1`` (index ``i``)."""
SCHEMA_VERSION: Final = len(SCHEMA_UPGRADES)
_CLIENT_COLUMNS: Final = ("client_id, name, kind, scope, redirect_uris, jwks_url, jwks, "
                          "secret_hash, organization, status, created")
_TOKEN_COLUMNS: Final = ("token_hash, kind, client_id, scope, subject, context, issued_at, "
                         "expires_at, revoked_at, grant_id")
_CODE_COLUMNS: Final = ("code_hash, client_id, redirect_uri, scope, code_challenge, subject, "
                        "grant_id, context, nonce, auth_time, issued_at, expires_at, consumed_at")
_LAUNCH_COLUMNS: Final = ("launch_hash, subject, patient, encounter, fhir_context, issued_at, "
                          "expires_at, consumed_at")


class SqliteAuthStore:
    """``SqliteAuthStore(data_dir / "auth.sqlite3")``, then ``await start()``."""

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        self._sqlite = DedicatedConnection(path, prepare=_prepare, name="auth",
                                           synchronous=synchronous)

    async def start(self) -> None:
        await self._sqlite.start()

    async def close(self) -> None:
        await self._sqlite.close()

    async def add_client(self, client: Client) -> None:
        def insert(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(f"INSERT INTO clients ({_CLIENT_COLUMNS}) "
                                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _client_row(client))
            except sqlite3.IntegrityError as exc:
                raise ClientExists(f"client_id {client.client_id!r} is already registered"
                                   ) from exc

        await self._call(insert)

    async def get_client(self, client_id: str) -> Client | None:
        def select(connection: sqlite3.Connection) -> Client | None:
            row = connection.execute(f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE client_id = ?",
                                     (client_id,)).fetchone()
            return None if row is None else _client(row)

        return await self._call(select)

    async def list_clients(self) -> tuple[Client, ...]:
        def select(connection: sqlite3.Connection) -> tuple[Client, ...]:
            rows = connection.execute(f"SELECT {_CLIENT_COLUMNS} FROM clients "
                                      "ORDER BY created, client_id").fetchall()
            return tuple(_client(row) for row in rows)

        return await self._call(select)

    async def revoke_client(self, client_id: str, *, now: datetime | None = None) -> int | None:
        at = _text(now or utc_now())

        def revoke(connection: sqlite3.Connection) -> int | None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                found = connection.execute("UPDATE clients SET status = 'revoked' "
                                           "WHERE client_id = ?", (client_id,)).rowcount
                revoked = _revoke_tokens(connection, client_id, at) if found else None
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return revoked

        return await self._call(revoke)

    async def save_token(self, token: IssuedToken) -> None:
        row = (token.token_hash, token.kind, token.client_id, token.scope, token.subject,
               _json(token.context), _text(token.issued_at), _text(token.expires_at),
               _optional_text(token.revoked_at), token.grant_id)
        await self._call(lambda connection: connection.execute(
            f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row))

    async def find_token(self, token: str, *, now: datetime | None = None
                         ) -> IssuedToken | None:
        key, at = token_hash(token), _text(now or utc_now())

        def select(connection: sqlite3.Connection) -> IssuedToken | None:
            row = connection.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_hash = ? "
                "AND revoked_at IS NULL AND expires_at > ?", (key, at)).fetchone()
            return None if row is None else _issued_token(row)

        return await self._call(select)

    async def revoke_token(self, token: str, *, now: datetime | None = None) -> bool:
        key, at = token_hash(token), _text(now or utc_now())
        changed = await self._call(lambda connection: connection.execute(
            "UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
            (at, key)).rowcount)
        return changed > 0

    async def revoke_tokens_of_client(self, client_id: str, *,
                                      now: datetime | None = None) -> int:
        at = _text(now or utc_now())
        return await self._call(lambda connection: _revoke_tokens(connection, client_id, at))

    async def revoke_grant(self, grant_id: str, *, now: datetime | None = None) -> int:
        at = _text(now or utc_now())
        return await self._call(lambda connection: int(connection.execute(
            "UPDATE tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL",
            (at, grant_id)).rowcount))

    async def revoke_tokens_of_subject(self, subject: str, *,
                                       now: datetime | None = None) -> int:
        at = _text(now or utc_now())
        return await self._call(lambda connection: int(connection.execute(
            "UPDATE tokens SET revoked_at = ? WHERE subject = ? AND revoked_at IS NULL",
            (at, subject)).rowcount))

    async def use_refresh_token(self, token: str, *, client_id: str,
                                now: datetime | None = None) -> IssuedToken | None:
        key, at = token_hash(token), _text(now or utc_now())

        def spend(connection: sqlite3.Connection) -> IssuedToken | None:
            row = connection.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_hash = ? AND kind = 'refresh' "
                "AND client_id = ? AND expires_at > ?", (key, client_id, at)).fetchone()
            if row is None:
                return None
            connection.execute("UPDATE tokens SET revoked_at = ? WHERE token_hash = ? "
                               "AND revoked_at IS NULL", (at, key))
            return _issued_token(row)

        return await self._call(lambda connection: _in_transaction(connection, spend))

    async def save_code(self, code: AuthorizationCode) -> None:
        row = (code.code_hash, code.client_id, code.redirect_uri, code.scope,
               code.code_challenge, code.subject, code.grant_id, _json(code.context), code.nonce,
               _text(code.auth_time), _text(code.issued_at), _text(code.expires_at),
               _optional_text(code.consumed_at))
        await self._call(lambda connection: connection.execute(
            f"INSERT INTO codes ({_CODE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row))

    async def consume_code(self, code: str, *, now: datetime | None = None
                           ) -> AuthorizationCode | None:
        key, at = token_hash(code), _text(now or utc_now())

        def consume(connection: sqlite3.Connection) -> AuthorizationCode | None:
            row = connection.execute(f"SELECT {_CODE_COLUMNS} FROM codes WHERE code_hash = ?",
                                     (key,)).fetchone()
            if row is None:
                return None
            found = _authorization_code(row)
            if found.consumed_at is None:
                if _text(found.expires_at) <= at:
                    return None
                connection.execute("UPDATE codes SET consumed_at = ? WHERE code_hash = ?",
                                   (at, key))
            return found

        return await self._call(lambda connection: _in_transaction(connection, consume))

    async def save_launch(self, launch: EhrLaunch) -> None:
        row = (launch.launch_hash, launch.subject, launch.patient, launch.encounter,
               _json(list(launch.fhir_context)), _text(launch.issued_at),
               _text(launch.expires_at), _optional_text(launch.consumed_at))
        await self._call(lambda connection: connection.execute(
            f"INSERT INTO launches ({_LAUNCH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row))

    async def find_launch(self, launch: str, *, now: datetime | None = None
                          ) -> EhrLaunch | None:
        key, at = token_hash(launch), _text(now or utc_now())

        def select(connection: sqlite3.Connection) -> EhrLaunch | None:
            row = connection.execute(
                f"SELECT {_LAUNCH_COLUMNS} FROM launches WHERE launch_hash = ? "
                "AND consumed_at IS NULL AND expires_at > ?", (key, at)).fetchone()
            return None if row is None else _ehr_launch(row)

        return await self._call(select)

    async def consume_launch(self, launch: str, *, now: datetime | None = None
                             ) -> EhrLaunch | None:
        key, at = token_hash(launch), _text(now or utc_now())

        def consume(connection: sqlite3.Connection) -> EhrLaunch | None:
            rows = connection.execute(
                f"UPDATE launches SET consumed_at = ? WHERE launch_hash = ? "
                f"AND consumed_at IS NULL AND expires_at > ? RETURNING {_LAUNCH_COLUMNS}",
                (at, key, at)).fetchall()
            return _ehr_launch(rows[0]) if rows else None

        return await self._call(consume)

    async def remember_jti(self, client_id: str, jti: str, expires_at: datetime, *,
                           now: datetime | None = None) -> bool:
        row = (client_id, jti, _text(expires_at), _text(now or utc_now()))
        changed = await self._call(lambda connection: connection.execute(
            "INSERT INTO jtis (client_id, jti, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at "
            "WHERE jtis.expires_at <= ?", row).rowcount)
        return changed > 0

    async def purge_expired(self, now: datetime | None = None) -> int:
        at = _text(now or utc_now())

        def purge(connection: sqlite3.Connection) -> int:
            connection.execute("BEGIN IMMEDIATE")
            try:
                tokens = connection.execute("DELETE FROM tokens WHERE expires_at <= ?",
                                            (at,)).rowcount
                jtis = connection.execute("DELETE FROM jtis WHERE expires_at <= ?",
                                          (at,)).rowcount
                codes = connection.execute("DELETE FROM codes WHERE expires_at <= ?",
                                           (at,)).rowcount
                launches = connection.execute("DELETE FROM launches WHERE expires_at <= ?",
                                              (at,)).rowcount
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return int(tokens) + int(jtis) + int(codes) + int(launches)

        return await self._call(purge)

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._sqlite.call(work)



def _in_transaction(connection: sqlite3.Connection,
                    work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` in one write transaction (BEGIN IMMEDIATE: no other writer in between)."""
    with write_transaction(connection):
        return work(connection)


def _prepare(connection: sqlite3.Connection) -> None:
    """WAL mode, and the schema created or brought up to ``SCHEMA_VERSION`` (each upgrade step
    in order, all in one transaction: a failed upgrade leaves the file as it was)."""
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreUnavailable(f"SQLite refused WAL mode (journal_mode is {mode})")
    with write_transaction(connection):
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(f"auth database schema version {version} is newer than this "
                                   f"server's {SCHEMA_VERSION}")
        if version < SCHEMA_VERSION:
            for step in SCHEMA_UPGRADES[version:]:
                for statement in step:
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _revoke_tokens(connection: sqlite3.Connection, client_id: str, at: str) -> int:
    return int(connection.execute(
        "UPDATE tokens SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL",
        (at, client_id)).rowcount)


def _client_row(client: Client) -> tuple[Any, ...]:
    return (client.client_id, client.name, client.kind, client.scope,
            json.dumps(list(client.redirect_uris)), client.jwks_url,
            None if client.jwks is None else json.dumps(client.jwks, separators=(",", ":")),
            client.secret_hash, client.organization, client.status, _text(client.created))


def _client(row: tuple[Any, ...]) -> Client:
    (client_id, name, kind, scope, redirect_uris, jwks_url, jwks, secret_hash, organization,
     status, created) = row
    return Client(client_id=client_id, name=name, kind=cast(ClientKind, kind), scope=scope,
                  created=datetime.fromisoformat(created),
                  redirect_uris=tuple(json.loads(redirect_uris)), jwks_url=jwks_url,
                  jwks=None if jwks is None else json.loads(jwks), secret_hash=secret_hash,
                  organization=organization, status=cast(ClientStatus, status))


def _issued_token(row: tuple[Any, ...]) -> IssuedToken:
    (key, kind, client_id, scope, subject, context, issued_at, expires_at, revoked_at,
     grant_id) = row
    return IssuedToken(token_hash=key, kind=cast(TokenKind, kind), client_id=client_id,
                       scope=scope, subject=subject, context=json.loads(context),
                       issued_at=datetime.fromisoformat(issued_at),
                       expires_at=datetime.fromisoformat(expires_at),
                       revoked_at=_optional_time(revoked_at), grant_id=grant_id)


def _authorization_code(row: tuple[Any, ...]) -> AuthorizationCode:
    (key, client_id, redirect_uri, scope, code_challenge, subject, grant_id, context, nonce,
     auth_time, issued_at, expires_at, consumed_at) = row
    return AuthorizationCode(
        code_hash=key, client_id=client_id, redirect_uri=redirect_uri, scope=scope,
        code_challenge=code_challenge, subject=subject, grant_id=grant_id,
        context=json.loads(context), nonce=nonce, auth_time=datetime.fromisoformat(auth_time),
        issued_at=datetime.fromisoformat(issued_at),
        expires_at=datetime.fromisoformat(expires_at), consumed_at=_optional_time(consumed_at))


def _ehr_launch(row: tuple[Any, ...]) -> EhrLaunch:
    key, subject, patient, encounter, fhir_context, issued_at, expires_at, consumed_at = row
    return EhrLaunch(launch_hash=key, subject=subject, patient=patient, encounter=encounter,
                     fhir_context=tuple(json.loads(fhir_context)),
                     issued_at=datetime.fromisoformat(issued_at),
                     expires_at=datetime.fromisoformat(expires_at),
                     consumed_at=_optional_time(consumed_at))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _optional_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _text(moment: datetime) -> str:
    return utc_millis(moment).isoformat(timespec="microseconds")


def _optional_text(moment: datetime | None) -> str | None:
    return None if moment is None else _text(moment)
