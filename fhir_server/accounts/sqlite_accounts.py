"""``SqliteAccountStore``: accounts in the auth store's SQLite file (``auth.sqlite3``), WAL mode.

The tables (``accounts``, ``account_tokens``, ``sign_in_failures``) sit beside the auth store's
but are versioned on their own, in ``schema_versions(component, version)`` under the component
``accounts``: the auth store keeps ``PRAGMA user_version`` for itself, and neither touches the
other's tables. As in the auth store, one connection on one dedicated thread runs every call in
turn; times are fixed-width UTC text, so string order is time order; every sqlite3 exception
leaves as a Store protocol error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar, cast

from fhir_server.access.principal import Role
from fhir_server.accounts.model import Account, AccountStatus, AccountToken, TokenPurpose
from fhir_server.accounts.store import AccountConflict, AccountExists
from fhir_server.auth.model import token_hash, utc_millis
from fhir_server.storage.protocol import StoreUnavailable
from fhir_server.storage.sqlite.dedicated import DedicatedConnection, write_transaction

T = TypeVar("T")

COMPONENT: Final = "accounts"
SCHEMA_VERSION: Final = 1
SCHEMA_UPGRADES: Final[tuple[tuple[str, ...], ...]] = (
    ("""CREATE TABLE IF NOT EXISTS accounts (
        account_id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        status TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created TEXT NOT NULL,
        practitioner TEXT,
        practitioner_role TEXT,
        organization TEXT,
        tier TEXT,
        email_verified_at TEXT,
        suspended_until TEXT,
        warnings INTEGER NOT NULL,
        last_warning_at TEXT,
        last_warning_reason TEXT,
        version INTEGER NOT NULL) WITHOUT ROWID""",
     "CREATE INDEX IF NOT EXISTS accounts_by_practitioner ON accounts (practitioner)",
     "CREATE INDEX IF NOT EXISTS accounts_by_role ON accounts (role)",
     """CREATE TABLE IF NOT EXISTS account_tokens (
        token_hash TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        purpose TEXT NOT NULL,
        created TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT) WITHOUT ROWID""",
     "CREATE INDEX IF NOT EXISTS account_tokens_by_account ON account_tokens "
     "(account_id, purpose)",
     "CREATE INDEX IF NOT EXISTS account_tokens_by_expiry ON account_tokens (expires_at)",
     """CREATE TABLE IF NOT EXISTS sign_in_failures (
        key TEXT NOT NULL,
        at TEXT NOT NULL,
        keep_until TEXT NOT NULL)""",
     "CREATE INDEX IF NOT EXISTS sign_in_failures_by_key ON sign_in_failures (key, at)",
     "CREATE INDEX IF NOT EXISTS sign_in_failures_by_expiry ON sign_in_failures (keep_until)"),
)
"""The statements bringing the accounts schema from version ``i`` to ``i + 1`` (index ``i``)."""

_COLUMNS: Final = ("account_id, email, role, status, password_hash, created, practitioner, "
                   "practitioner_role, organization, tier, email_verified_at, suspended_until, "
                   "warnings, last_warning_at, last_warning_reason, version")
_UPDATED_COLUMNS: Final = ", ".join(f"{name.strip()} = ?" for name in _COLUMNS.split(",")[1:])


class SqliteAccountStore:
    """``SqliteAccountStore(data_dir / "auth.sqlite3")``, then ``await start()``."""

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        self._sqlite = DedicatedConnection(path, prepare=_prepare, name="account",
                                           synchronous=synchronous)

    async def start(self) -> None:
        await self._sqlite.start()

    async def close(self) -> None:
        await self._sqlite.close()

    async def add(self, account: Account) -> None:
        def insert(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(f"INSERT INTO accounts ({_COLUMNS}) VALUES "
                                   f"({', '.join('?' * 16)})", _row(account))
            except sqlite3.IntegrityError as exc:
                raise AccountExists("an account with this email exists already") from exc

        await self._call(insert)

    async def get(self, account_id: str) -> Account | None:
        return await self._one("account_id = ?", account_id)

    async def by_email(self, email: str) -> Account | None:
        return await self._one("email = ?", email)

    async def by_practitioner(self, practitioner: str) -> Account | None:
        return await self._one("practitioner = ?", practitioner)

    async def replace(self, account: Account) -> None:
        row = _row(account)

        def update(connection: sqlite3.Connection) -> None:
            try:
                changed = connection.execute(
                    f"UPDATE accounts SET {_UPDATED_COLUMNS} "
                    "WHERE account_id = ? AND version = ?",
                    (*row[1:], account.account_id, account.version - 1)).rowcount
            except sqlite3.IntegrityError as exc:
                raise AccountExists("an account with this email exists already") from exc
            if changed == 0:
                raise AccountConflict(f"account {account.account_id} is not at version "
                                      f"{account.version - 1}")

        await self._call(update)

    async def remove(self, account_id: str) -> bool:
        def delete(connection: sqlite3.Connection) -> bool:
            with write_transaction(connection):
                connection.execute("DELETE FROM account_tokens WHERE account_id = ?",
                                   (account_id,))
                return connection.execute("DELETE FROM accounts WHERE account_id = ?",
                                          (account_id,)).rowcount > 0

        return await self._call(delete)

    async def has_role(self, role: Role) -> bool:
        return await self._call(lambda connection: connection.execute(
            "SELECT 1 FROM accounts WHERE role = ? LIMIT 1", (role,)).fetchone() is not None)

    async def save_token(self, token: AccountToken) -> None:
        row = (token.token_hash, token.account_id, token.purpose, _text(token.created),
               _text(token.expires_at), _optional_text(token.used_at))

        def insert(connection: sqlite3.Connection) -> None:
            with write_transaction(connection):
                connection.execute("DELETE FROM account_tokens WHERE account_id = ? AND "
                                   "purpose = ? AND used_at IS NULL",
                                   (token.account_id, token.purpose))
                connection.execute("INSERT INTO account_tokens (token_hash, account_id, purpose, "
                                   "created, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?)", row)

        await self._call(insert)

    async def token_account(self, token: str, purpose: TokenPurpose, *,
                            now: datetime) -> str | None:
        row = await self._call(lambda connection: connection.execute(
            "SELECT account_id FROM account_tokens WHERE token_hash = ? AND purpose = ? "
            "AND used_at IS NULL AND expires_at > ?",
            (token_hash(token), purpose, _text(now))).fetchone())
        return None if row is None else str(row[0])

    async def use_token(self, token: str, purpose: TokenPurpose, *,
                        now: datetime) -> str | None:
        at = _text(now)
        row = await self._call(lambda connection: connection.execute(
            "UPDATE account_tokens SET used_at = ? WHERE token_hash = ? AND purpose = ? "
            "AND used_at IS NULL AND expires_at > ? RETURNING account_id",
            (at, token_hash(token), purpose, at)).fetchone())
        return None if row is None else str(row[0])

    async def record_failure(self, key: str, at: datetime, *, keep_until: datetime) -> None:
        moment = _text(at)

        def insert(connection: sqlite3.Connection) -> None:
            with write_transaction(connection):
                connection.execute("DELETE FROM sign_in_failures WHERE key = ? AND "
                                   "keep_until <= ?", (key, moment))
                connection.execute("INSERT INTO sign_in_failures (key, at, keep_until) "
                                   "VALUES (?, ?, ?)", (key, moment, _text(keep_until)))

        await self._call(insert)

    async def failures(self, key: str, *, since: datetime) -> tuple[datetime, ...]:
        rows = await self._call(lambda connection: connection.execute(
            "SELECT at FROM sign_in_failures WHERE key = ? AND at > ? ORDER BY at",
            (key, _text(since))).fetchall())
        return tuple(datetime.fromisoformat(row[0]) for row in rows)

    async def clear_failures(self, key: str) -> None:
        await self._call(lambda connection: connection.execute(
            "DELETE FROM sign_in_failures WHERE key = ?", (key,)))

    async def purge_expired(self, now: datetime) -> int:
        at = _text(now)

        def purge(connection: sqlite3.Connection) -> int:
            with write_transaction(connection):
                tokens = connection.execute("DELETE FROM account_tokens WHERE expires_at <= ?",
                                            (at,)).rowcount
                failures = connection.execute("DELETE FROM sign_in_failures WHERE "
                                              "keep_until <= ?", (at,)).rowcount
            return int(tokens) + int(failures)

        return await self._call(purge)

    async def _one(self, where: str, value: str) -> Account | None:
        row = await self._call(lambda connection: connection.execute(
            f"SELECT {_COLUMNS} FROM accounts WHERE {where}", (value,)).fetchone())
        return None if row is None else _account(row)

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._sqlite.call(work)




def _prepare(connection: sqlite3.Connection) -> None:
    """WAL mode, and the accounts schema created or brought up to ``SCHEMA_VERSION``."""
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreUnavailable(f"SQLite refused WAL mode (journal_mode is {mode})")
    with write_transaction(connection):
        connection.execute("CREATE TABLE IF NOT EXISTS schema_versions ("
                           "component TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID")
        found = connection.execute("SELECT version FROM schema_versions WHERE component = ?",
                                   (COMPONENT,)).fetchone()
        version = 0 if found is None else int(found[0])
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(f"accounts schema version {version} is newer than this "
                                   f"server's {SCHEMA_VERSION}")
        for step in SCHEMA_UPGRADES[version:]:
            for statement in step:
                connection.execute(statement)
        connection.execute("INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                           "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                           (COMPONENT, SCHEMA_VERSION))


def _row(account: Account) -> tuple[Any, ...]:
    return (account.account_id, account.email, account.role, account.status,
            account.password_hash, _text(account.created), account.practitioner,
            account.practitioner_role, account.organization, account.tier,
            _optional_text(account.email_verified_at), _optional_text(account.suspended_until),
            account.warnings, _optional_text(account.last_warning_at),
            account.last_warning_reason, account.version)


def _account(row: tuple[Any, ...]) -> Account:
    (account_id, email, role, status, password_hash, created, practitioner, practitioner_role,
     organization, tier, email_verified_at, suspended_until, warnings, last_warning_at,
     last_warning_reason, version) = row
    return Account(account_id=account_id, email=email, role=cast(Role, role),
                   status=cast(AccountStatus, status), password_hash=password_hash,
                   created=datetime.fromisoformat(created), practitioner=practitioner,
                   practitioner_role=practitioner_role, organization=organization, tier=tier,
                   email_verified_at=_optional_time(email_verified_at),
                   suspended_until=_optional_time(suspended_until), warnings=int(warnings),
                   last_warning_at=_optional_time(last_warning_at),
                   last_warning_reason=last_warning_reason, version=int(version))


def _text(moment: datetime) -> str:
    return utc_millis(moment).isoformat(timespec="microseconds")


def _optional_text(moment: datetime | None) -> str | None:
    return None if moment is None else _text(moment)


def _optional_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
