"""The ``AccountStore`` protocol (accounts, one-time tokens, failed sign-ins), its errors, and
the choice of adapter beside the auth store: ``auth.sqlite3`` or the same MongoDB database.

Accounts change by compare-and-set on their ``version``, so an administrator's suspension and a
sign-in's password rehash cannot overwrite each other. A one-time token is used by one atomic
statement: of two concurrent uses, one only gets the account. Failed sign-ins are kept in the
store (not in memory), so a lock-out holds across processes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

from fhir_server.access.principal import Role
from fhir_server.accounts.model import Account, AccountToken, TokenPurpose
from fhir_server.auth.factory import auth_file
from fhir_server.settings import Settings
from fhir_server.storage.factory import MONGO_PREFIXES, SQLITE_PREFIX
from fhir_server.storage.protocol import StoreError


class AccountExists(StoreError):
    """Another account has that email already."""


class AccountConflict(StoreError):
    """The account changed since it was read (its version moved on), or it is gone."""


class AccountStore(Protocol):
    """Where accounts live. Every method is safe to call concurrently."""

    async def start(self) -> None:
        """Open the database; create the schema and indexes if missing."""

    async def close(self) -> None:
        """Release the connections (idempotent)."""

    async def add(self, account: Account) -> None:
        """Store a new account; raises AccountExists when its email is taken."""

    async def get(self, account_id: str) -> Account | None:
        """The account, or None."""

    async def by_email(self, email: str) -> Account | None:
        """The account of a normalised email, or None."""

    async def by_practitioner(self, practitioner: str) -> Account | None:
        """The account acting through a Practitioner (``Practitioner/12``), or None."""

    async def replace(self, account: Account) -> None:
        """Store ``account`` over the version before it (``account.version - 1``); raises
        AccountConflict when the stored version is another one or the account is gone, and
        AccountExists when its email is now another account's."""

    async def remove(self, account_id: str) -> bool:
        """Delete the account and its tokens; False when there was none."""

    async def has_role(self, role: Role) -> bool:
        """Whether at least one account (of any status) has this role."""

    async def save_token(self, token: AccountToken) -> None:
        """Record a one-time token; the account's unused tokens of the same purpose are
        dropped in the same write, so only the newest link works."""

    async def token_account(self, token: str, purpose: TokenPurpose, *,
                            now: datetime) -> str | None:
        """The account id of ``token`` (hashed here) while it is usable, without using it."""

    async def use_token(self, token: str, purpose: TokenPurpose, *,
                        now: datetime) -> str | None:
        """Mark ``token`` (hashed here) used and return its account id, in one atomic step;
        None when unknown, of another purpose, expired or already used."""

    async def record_failure(self, key: str, at: datetime, *, keep_until: datetime) -> None:
        """Count a failed sign-in under ``key`` at ``at``; it may be forgotten after
        ``keep_until``."""

    async def failures(self, key: str, *, since: datetime) -> tuple[datetime, ...]:
        """The failures counted under ``key`` after ``since``, oldest first."""

    async def clear_failures(self, key: str) -> None:
        """Forget every failure counted under ``key``."""

    async def purge_expired(self, now: datetime) -> int:
        """Delete the tokens expired and the failures forgettable at ``now``; how many."""


def open_account_store(settings: Settings) -> AccountStore:
    """The account store beside the auth store (not yet started: call ``start()``): tables in
    ``auth.sqlite3`` next to the SQLite FHIR store, or collections in its MongoDB database.

    Raises ValueError for a storage URL that names neither.
    """
    url = settings.resolved_store_url()
    if url.startswith(SQLITE_PREFIX):
        from fhir_server.accounts.sqlite_accounts import SqliteAccountStore

        synchronous = settings.sqlite_synchronous.upper()
        return SqliteAccountStore(
            auth_file(Path(url.removeprefix(SQLITE_PREFIX))),
            synchronous=synchronous if synchronous in ("FULL", "EXTRA") else "NORMAL")
    if url.startswith(MONGO_PREFIXES):
        from fhir_server.accounts.mongo_accounts import MongoAccountStore

        return MongoAccountStore.from_url(url, settings.mongo_database)
    raise ValueError("unsupported storage URL in FHIR_SERVER_STORE: use sqlite:///path or "
                     "mongodb://host/?replicaSet=name")
