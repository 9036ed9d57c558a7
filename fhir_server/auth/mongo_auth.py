"""``MongoAuthStore``: the AuthStore in the FHIR store's MongoDB database, through motor.

Collections: ``auth_clients`` (``_id`` = client_id), ``auth_tokens`` (``_id`` = token hash,
indexes by client, grant family and subject, a TTL index on ``expires_at``), ``auth_codes`` and
``auth_launches`` (``_id`` = hash, TTL on ``expires_at``) and ``auth_jtis`` (unique on
(client_id, jti), TTL on ``expires_at``). The TTL monitor runs about once a minute, so every
query still checks expiry itself; the TTL indexes only keep the collections from growing.
Token documents written before token families existed have no ``grant_id``: read as None.
Single use (codes, launches, refresh tokens) is one conditional ``find_one_and_update``.
Every pymongo exception leaves as a Store protocol error (``storage.mongo.errors``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, cast

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

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
from fhir_server.storage.mongo.errors import driver_errors

CLIENTS: Final = "auth_clients"
TOKENS: Final = "auth_tokens"
JTIS: Final = "auth_jtis"
CODES: Final = "auth_codes"
LAUNCHES: Final = "auth_launches"


class MongoAuthStore:
    """The auth store on ``database``; ``close()`` closes ``client`` when one is given."""

    def __init__(self, database: AsyncIOMotorDatabase[Any], *,
                 client: AsyncIOMotorClient[Any] | None = None) -> None:
        self._database = database
        self._client = client

    @classmethod
    def from_url(cls, url: str, database: str) -> MongoAuthStore:
        """A store on ``database`` of the deployment at ``url``, owning its client."""
        with driver_errors():
            client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(url)
        return cls(client[database], client=client)

    async def start(self) -> None:
        with driver_errors():
            await self._database[TOKENS].create_index([("client_id", 1)], name="client")
            await self._database[TOKENS].create_index([("expires_at", 1)], name="expiry_ttl",
                                                      expireAfterSeconds=0)
            await self._database[TOKENS].create_index([("grant_id", 1)], name="grant",
                                                      sparse=True)
            await self._database[TOKENS].create_index([("subject", 1)], name="subject",
                                                      sparse=True)
            for collection in (CODES, LAUNCHES):
                await self._database[collection].create_index(
                    [("expires_at", 1)], name="expiry_ttl", expireAfterSeconds=0)
            await self._database[JTIS].create_index([("client_id", 1), ("jti", 1)],
                                                    name="client_jti", unique=True)
            await self._database[JTIS].create_index([("expires_at", 1)], name="expiry_ttl",
                                                    expireAfterSeconds=0)
            await self._database[CLIENTS].create_index([("created", 1), ("_id", 1)],
                                                       name="created")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def add_client(self, client: Client) -> None:
        with driver_errors():
            try:
                await self._database[CLIENTS].insert_one(_client_document(client))
            except DuplicateKeyError as exc:
                raise ClientExists(f"client_id {client.client_id!r} is already registered"
                                   ) from exc

    async def get_client(self, client_id: str) -> Client | None:
        with driver_errors():
            found = await self._database[CLIENTS].find_one({"_id": client_id})
        return None if found is None else _client(found)

    async def list_clients(self) -> tuple[Client, ...]:
        with driver_errors():
            found = await self._database[CLIENTS].find().sort(
                [("created", 1), ("_id", 1)]).to_list(None)
        return tuple(_client(document) for document in found)

    async def revoke_client(self, client_id: str, *, now: datetime | None = None) -> int | None:
        with driver_errors():
            result = await self._database[CLIENTS].update_one(
                {"_id": client_id}, {"$set": {"status": "revoked"}})
        if result.matched_count == 0:
            return None
        return await self.revoke_tokens_of_client(client_id, now=now)

    async def save_token(self, token: IssuedToken) -> None:
        with driver_errors():
            await self._database[TOKENS].insert_one(_token_document(token))

    async def find_token(self, token: str, *, now: datetime | None = None
                         ) -> IssuedToken | None:
        with driver_errors():
            found = await self._database[TOKENS].find_one(
                {"_id": token_hash(token), "revoked_at": None,
                 "expires_at": {"$gt": utc_millis(now or utc_now())}})
        return None if found is None else _issued_token(found)

    async def revoke_token(self, token: str, *, now: datetime | None = None) -> bool:
        with driver_errors():
            result = await self._database[TOKENS].update_one(
                {"_id": token_hash(token), "revoked_at": None},
                {"$set": {"revoked_at": utc_millis(now or utc_now())}})
        return result.modified_count > 0

    async def revoke_tokens_of_client(self, client_id: str, *,
                                      now: datetime | None = None) -> int:
        return await self._revoke_tokens({"client_id": client_id}, now)

    async def revoke_grant(self, grant_id: str, *, now: datetime | None = None) -> int:
        return await self._revoke_tokens({"grant_id": grant_id}, now)

    async def revoke_tokens_of_subject(self, subject: str, *,
                                       now: datetime | None = None) -> int:
        return await self._revoke_tokens({"subject": subject}, now)

    async def use_refresh_token(self, token: str, *, client_id: str,
                                now: datetime | None = None) -> IssuedToken | None:
        at = utc_millis(now or utc_now())
        usable = {"_id": token_hash(token), "kind": "refresh", "client_id": client_id,
                  "expires_at": {"$gt": at}}
        with driver_errors():
            before = await self._database[TOKENS].find_one_and_update(
                {**usable, "revoked_at": None}, {"$set": {"revoked_at": at}},
                return_document=ReturnDocument.BEFORE)
            if before is None:
                before = await self._database[TOKENS].find_one(usable)
        return None if before is None else _issued_token(before)

    async def save_code(self, code: AuthorizationCode) -> None:
        with driver_errors():
            await self._database[CODES].insert_one(_code_document(code))

    async def consume_code(self, code: str, *, now: datetime | None = None
                           ) -> AuthorizationCode | None:
        at, key = utc_millis(now or utc_now()), token_hash(code)
        with driver_errors():
            before = await self._database[CODES].find_one_and_update(
                {"_id": key, "consumed_at": None, "expires_at": {"$gt": at}},
                {"$set": {"consumed_at": at}}, return_document=ReturnDocument.BEFORE)
            if before is None:
                before = await self._database[CODES].find_one(
                    {"_id": key, "consumed_at": {"$ne": None}})
        return None if before is None else _authorization_code(before)

    async def save_launch(self, launch: EhrLaunch) -> None:
        with driver_errors():
            await self._database[LAUNCHES].insert_one(_launch_document(launch))

    async def find_launch(self, launch: str, *, now: datetime | None = None
                          ) -> EhrLaunch | None:
        with driver_errors():
            found = await self._database[LAUNCHES].find_one(
                _usable_launch(launch, utc_millis(now or utc_now())))
        return None if found is None else _ehr_launch(found)

    async def consume_launch(self, launch: str, *, now: datetime | None = None
                             ) -> EhrLaunch | None:
        at = utc_millis(now or utc_now())
        with driver_errors():
            after = await self._database[LAUNCHES].find_one_and_update(
                _usable_launch(launch, at), {"$set": {"consumed_at": at}},
                return_document=ReturnDocument.AFTER)
        return None if after is None else _ehr_launch(after)

    async def remember_jti(self, client_id: str, jti: str, expires_at: datetime, *,
                           now: datetime | None = None) -> bool:
        """An upsert that only matches an expired record: a live one makes it insert a
        duplicate (client_id, jti), which the unique index refuses — a replay."""
        with driver_errors():
            try:
                await self._database[JTIS].update_one(
                    {"client_id": client_id, "jti": jti,
                     "expires_at": {"$lte": utc_millis(now or utc_now())}},
                    {"$set": {"expires_at": utc_millis(expires_at)}}, upsert=True)
            except DuplicateKeyError:
                return False
        return True

    async def purge_expired(self, now: datetime | None = None) -> int:
        expired = {"expires_at": {"$lte": utc_millis(now or utc_now())}}
        with driver_errors():
            deleted = [await self._database[collection].delete_many(expired)
                       for collection in (TOKENS, JTIS, CODES, LAUNCHES)]
        return sum(int(result.deleted_count) for result in deleted)

    async def _revoke_tokens(self, selector: dict[str, Any], now: datetime | None) -> int:
        with driver_errors():
            result = await self._database[TOKENS].update_many(
                {**selector, "revoked_at": None},
                {"$set": {"revoked_at": utc_millis(now or utc_now())}})
        return int(result.modified_count)


def _usable_launch(launch: str, at: datetime) -> dict[str, Any]:
    return {"_id": token_hash(launch), "consumed_at": None, "expires_at": {"$gt": at}}


def _client_document(client: Client) -> dict[str, Any]:
    return {"_id": client.client_id, "name": client.name, "kind": client.kind,
            "scope": client.scope, "redirect_uris": list(client.redirect_uris),
            "jwks_url": client.jwks_url, "jwks": client.jwks, "secret_hash": client.secret_hash,
            "organization": client.organization, "status": client.status,
            "created": utc_millis(client.created)}


def _client(document: dict[str, Any]) -> Client:
    return Client(client_id=document["_id"], name=document["name"],
                  kind=cast(ClientKind, document["kind"]), scope=document["scope"],
                  created=utc_millis(document["created"]),
                  redirect_uris=tuple(document["redirect_uris"]), jwks_url=document["jwks_url"],
                  jwks=document["jwks"], secret_hash=document["secret_hash"],
                  organization=document["organization"],
                  status=cast(ClientStatus, document["status"]))


def _token_document(token: IssuedToken) -> dict[str, Any]:
    return {"_id": token.token_hash, "kind": token.kind, "client_id": token.client_id,
            "scope": token.scope, "subject": token.subject, "context": token.context,
            "issued_at": utc_millis(token.issued_at), "expires_at": utc_millis(token.expires_at),
            "revoked_at": _optional_time(token.revoked_at), "grant_id": token.grant_id}


def _issued_token(document: dict[str, Any]) -> IssuedToken:
    return IssuedToken(token_hash=document["_id"], kind=cast(TokenKind, document["kind"]),
                       client_id=document["client_id"], scope=document["scope"],
                       subject=document["subject"], context=document["context"],
                       issued_at=utc_millis(document["issued_at"]),
                       expires_at=utc_millis(document["expires_at"]),
                       revoked_at=_optional_time(document["revoked_at"]),
                       grant_id=document.get("grant_id"))


def _code_document(code: AuthorizationCode) -> dict[str, Any]:
    return {"_id": code.code_hash, "client_id": code.client_id,
            "redirect_uri": code.redirect_uri, "scope": code.scope,
            "code_challenge": code.code_challenge, "subject": code.subject,
            "grant_id": code.grant_id, "context": code.context, "nonce": code.nonce,
            "auth_time": utc_millis(code.auth_time), "issued_at": utc_millis(code.issued_at),
            "expires_at": utc_millis(code.expires_at),
            "consumed_at": _optional_time(code.consumed_at)}


def _authorization_code(document: dict[str, Any]) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=document["_id"], client_id=document["client_id"],
        redirect_uri=document["redirect_uri"], scope=document["scope"],
        code_challenge=document["code_challenge"], subject=document["subject"],
        grant_id=document["grant_id"], context=document["context"], nonce=document["nonce"],
        auth_time=utc_millis(document["auth_time"]),
        issued_at=utc_millis(document["issued_at"]),
        expires_at=utc_millis(document["expires_at"]),
        consumed_at=_optional_time(document["consumed_at"]))


def _launch_document(launch: EhrLaunch) -> dict[str, Any]:
    return {"_id": launch.launch_hash, "subject": launch.subject, "patient": launch.patient,
            "encounter": launch.encounter, "fhir_context": list(launch.fhir_context),
            "issued_at": utc_millis(launch.issued_at),
            "expires_at": utc_millis(launch.expires_at),
            "consumed_at": _optional_time(launch.consumed_at)}


def _ehr_launch(document: dict[str, Any]) -> EhrLaunch:
    return EhrLaunch(launch_hash=document["_id"], subject=document["subject"],
                     patient=document["patient"], encounter=document["encounter"],
                     fhir_context=tuple(document["fhir_context"]),
                     issued_at=utc_millis(document["issued_at"]),
                     expires_at=utc_millis(document["expires_at"]),
                     consumed_at=_optional_time(document["consumed_at"]))


def _optional_time(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc_millis(moment)
