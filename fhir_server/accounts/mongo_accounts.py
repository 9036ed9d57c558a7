"""``MongoAccountStore``: accounts in the FHIR store's MongoDB database, through motor.

Collections: ``accounts`` (``_id`` = account id, a unique index on ``email``, indexes by
practitioner and role), ``account_tokens`` (``_id`` = the token's SHA-256, TTL on
``expires_at``) and ``sign_in_failures`` (by key and time, TTL on ``keep_until``). The TTL
monitor runs about once a minute, so every query checks expiry itself. Each change that must be
atomic is one operation: a compare-and-set ``update_one`` on (id, version), and a token's use a
``find_one_and_update`` on (hash, unused, unexpired). Every pymongo exception leaves as a
Store protocol error (``storage.mongo.errors``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, cast

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo.errors import DuplicateKeyError

from fhir_server.access.principal import Role
from fhir_server.accounts.model import Account, AccountStatus, AccountToken, TokenPurpose
from fhir_server.accounts.store import AccountConflict, AccountExists
from fhir_server.auth.model import token_hash, utc_millis
from fhir_server.storage.mongo.errors import driver_errors

ACCOUNTS: Final = "accounts"
TOKENS: Final = "account_tokens"
FAILURES: Final = "sign_in_failures"


class MongoAccountStore:
    """The account store on ``database``; ``close()`` closes ``client`` when one is given."""

    def __init__(self, database: AsyncIOMotorDatabase[Any], *,
                 client: AsyncIOMotorClient[Any] | None = None) -> None:
        self._database = database
        self._client = client

    @classmethod
    def from_url(cls, url: str, database: str) -> MongoAccountStore:
        """A store on ``database`` of the deployment at ``url``, owning its client."""
        with driver_errors():
            client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(url)
        return cls(client[database], client=client)

    async def start(self) -> None:
        with driver_errors():
            accounts = self._database[ACCOUNTS]
            await accounts.create_index([("email", 1)], name="email", unique=True)
            await accounts.create_index([("practitioner", 1)], name="practitioner")
            await accounts.create_index([("role", 1)], name="role")
            tokens = self._database[TOKENS]
            await tokens.create_index([("account_id", 1), ("purpose", 1)], name="account")
            await tokens.create_index([("expires_at", 1)], name="expiry_ttl",
                                      expireAfterSeconds=0)
            failures = self._database[FAILURES]
            await failures.create_index([("key", 1), ("at", 1)], name="key_at")
            await failures.create_index([("keep_until", 1)], name="expiry_ttl",
                                        expireAfterSeconds=0)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def add(self, account: Account) -> None:
        with driver_errors():
            try:
                await self._database[ACCOUNTS].insert_one(_document(account))
            except DuplicateKeyError as exc:
                raise AccountExists("an account with this email exists already") from exc

    async def get(self, account_id: str) -> Account | None:
        return await self._one({"_id": account_id})

    async def by_email(self, email: str) -> Account | None:
        return await self._one({"email": email})

    async def by_practitioner(self, practitioner: str) -> Account | None:
        return await self._one({"practitioner": practitioner})

    async def replace(self, account: Account) -> None:
        document = _document(account)
        del document["_id"]
        with driver_errors():
            try:
                result = await self._database[ACCOUNTS].update_one(
                    {"_id": account.account_id, "version": account.version - 1},
                    {"$set": document})
            except DuplicateKeyError as exc:
                raise AccountExists("an account with this email exists already") from exc
        if result.matched_count == 0:
            raise AccountConflict(f"account {account.account_id} is not at version "
                                  f"{account.version - 1}")

    async def remove(self, account_id: str) -> bool:
        with driver_errors():
            await self._database[TOKENS].delete_many({"account_id": account_id})
            result = await self._database[ACCOUNTS].delete_one({"_id": account_id})
        return int(result.deleted_count) > 0

    async def has_role(self, role: Role) -> bool:
        with driver_errors():
            found = await self._database[ACCOUNTS].find_one({"role": role}, {"_id": 1})
        return found is not None

    async def save_token(self, token: AccountToken) -> None:
        with driver_errors():
            await self._database[TOKENS].delete_many(
                {"account_id": token.account_id, "purpose": token.purpose, "used_at": None})
            await self._database[TOKENS].insert_one(
                {"_id": token.token_hash, "account_id": token.account_id,
                 "purpose": token.purpose, "created": utc_millis(token.created),
                 "expires_at": utc_millis(token.expires_at),
                 "used_at": None if token.used_at is None else utc_millis(token.used_at)})

    async def token_account(self, token: str, purpose: TokenPurpose, *,
                            now: datetime) -> str | None:
        with driver_errors():
            found = await self._database[TOKENS].find_one(
                {"_id": token_hash(token), "purpose": purpose, "used_at": None,
                 "expires_at": {"$gt": utc_millis(now)}}, {"account_id": 1})
        return None if found is None else str(found["account_id"])

    async def use_token(self, token: str, purpose: TokenPurpose, *,
                        now: datetime) -> str | None:
        at = utc_millis(now)
        with driver_errors():
            found = await self._database[TOKENS].find_one_and_update(
                {"_id": token_hash(token), "purpose": purpose, "used_at": None,
                 "expires_at": {"$gt": at}},
                {"$set": {"used_at": at}}, projection={"account_id": 1})
        return None if found is None else str(found["account_id"])

    async def record_failure(self, key: str, at: datetime, *, keep_until: datetime) -> None:
        with driver_errors():
            await self._database[FAILURES].insert_one(
                {"key": key, "at": utc_millis(at), "keep_until": utc_millis(keep_until)})

    async def failures(self, key: str, *, since: datetime) -> tuple[datetime, ...]:
        with driver_errors():
            found = await self._database[FAILURES].find(
                {"key": key, "at": {"$gt": utc_millis(since)}}, {"at": 1}).sort(
                [("at", 1)]).to_list(None)
        return tuple(utc_millis(document["at"]) for document in found)

    async def clear_failures(self, key: str) -> None:
        with driver_errors():
            await self._database[FAILURES].delete_many({"key": key})

    async def purge_expired(self, now: datetime) -> int:
        at = utc_millis(now)
        with driver_errors():
            tokens = await self._database[TOKENS].delete_many({"expires_at": {"$lte": at}})
            failures = await self._database[FAILURES].delete_many({"keep_until": {"$lte": at}})
        return int(tokens.deleted_count) + int(failures.deleted_count)

    async def _one(self, query: dict[str, Any]) -> Account | None:
        with driver_errors():
            found = await self._database[ACCOUNTS].find_one(query)
        return None if found is None else _account(found)


def _document(account: Account) -> dict[str, Any]:
    return {"_id": account.account_id, "email": account.email, "role": account.role,
            "status": account.status, "password_hash": account.password_hash,
            "created": utc_millis(account.created), "practitioner": account.practitioner,
            "practitioner_role": account.practitioner_role,
            "organization": account.organization, "tier": account.tier,
            "email_verified_at": _optional(account.email_verified_at),
            "suspended_until": _optional(account.suspended_until),
            "warnings": account.warnings, "last_warning_at": _optional(account.last_warning_at),
            "last_warning_reason": account.last_warning_reason, "version": account.version}


def _account(document: dict[str, Any]) -> Account:
    return Account(account_id=document["_id"], email=document["email"],
                   role=cast(Role, document["role"]),
                   status=cast(AccountStatus, document["status"]),
                   password_hash=document["password_hash"],
                   created=utc_millis(document["created"]),
                   practitioner=document["practitioner"],
                   practitioner_role=document["practitioner_role"],
                   organization=document["organization"], tier=document["tier"],
                   email_verified_at=_optional(document["email_verified_at"]),
                   suspended_until=_optional(document["suspended_until"]),
                   warnings=int(document["warnings"]),
                   last_warning_at=_optional(document["last_warning_at"]),
                   last_warning_reason=document["last_warning_reason"],
                   version=int(document["version"]))


def _optional(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc_millis(moment)
