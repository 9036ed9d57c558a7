"""The writes of one ``Store.commit``, all made inside the caller's transaction session.

Consumptions go first (a duplicate means the consumer handled the event already), then each
change as a compare-and-set on the resource's version together with its history document (the
previous version's ``valid_to`` closed), then the outbox events. Raising aborts the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from motor.motor_asyncio import AsyncIOMotorClientSession, AsyncIOMotorDatabase
from pymongo.errors import DuplicateKeyError

from fhir_server.storage.mongo.documents import (
    CONSUMED,
    HISTORY,
    OUTBOX,
    RESOURCES,
    consumption_document,
    history_document,
    outbox_document,
    resource_document,
    resource_key,
    version_key,
)
from fhir_server.storage.protocol import (
    AlreadyConsumed,
    Change,
    Consumption,
    OutboxEvent,
    VersionConflict,
)


@dataclass(frozen=True, slots=True)
class CommitWork:
    """Everything one commit writes; called with the session of each transaction attempt."""

    database: AsyncIOMotorDatabase[Any]
    changes: Sequence[Change]
    events: Sequence[OutboxEvent]
    consumed: Sequence[Consumption]

    async def __call__(self, session: AsyncIOMotorClientSession) -> None:
        await self._record_consumptions(session)
        for change in self.changes:
            await self._write_change(change, session)
        if self.events:
            await self.database[OUTBOX].insert_many(
                [outbox_document(event) for event in self.events], session=session)

    async def _record_consumptions(self, session: AsyncIOMotorClientSession) -> None:
        for consumption in self.consumed:
            try:
                await self.database[CONSUMED].insert_one(consumption_document(consumption),
                                                         session=session)
            except DuplicateKeyError as exc:
                raise AlreadyConsumed(
                    f"{consumption.consumer} consumed {consumption.event_id} already") from exc

    async def _write_change(self, change: Change, session: AsyncIOMotorClientSession) -> None:
        if not await self._compare_and_set(change, session):
            raise VersionConflict(change.resource_type, change.id, change.expected_version,
                                  await self._current_version(change))
        history = self.database[HISTORY]
        if change.expected_version > 0:
            previous = version_key(change.resource_type, change.id, change.expected_version)
            await history.update_one({"_id": previous},
                                     {"$set": {"valid_to": change.last_updated}},
                                     session=session)
        await history.insert_one(history_document(change), session=session)

    async def _compare_and_set(self, change: Change,
                               session: AsyncIOMotorClientSession) -> bool:
        """Write the resource document if its version is still the expected one."""
        resources = self.database[RESOURCES]
        document = resource_document(change)
        if change.expected_version == 0:
            try:
                await resources.insert_one(document, session=session)
            except DuplicateKeyError:
                return False
            return True
        replaced = await resources.replace_one(
            {"_id": document["_id"], "version": change.expected_version}, document,
            session=session)
        return replaced.matched_count == 1

    async def _current_version(self, change: Change) -> int:
        """The committed version, read outside the (possibly server-aborted) transaction."""
        found = await self.database[RESOURCES].find_one(
            {"_id": resource_key(change.resource_type, change.id)}, {"version": 1})
        return 0 if found is None else int(found["version"])
