"""Writes of ``$reindex`` on MongoDB: the embedded ``idx`` array rewritten in place, and marks.

An index rewrite is one ``$set`` of ``idx`` on the resource document, conditioned on its version
(and on its being live), inside the batch's transaction: no history document, no new version,
``last_updated`` untouched. A rewrite whose version is no longer current matches nothing and is
skipped. Marks (the engine's notes about the store) are documents ``{_id: name, value}`` of the
``marks`` collection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from motor.motor_asyncio import AsyncIOMotorClientSession, AsyncIOMotorDatabase

from fhir_server.storage.mongo.documents import RESOURCES, index_entry_document, resource_key
from fhir_server.storage.protocol import IndexRewrite

MARKS: Final = "marks"
_PREFIX_END: Final = "\U0010ffff"


@dataclass(slots=True)
class IndexRewriteWork:
    """The rewrites of one batch; called with the session of each transaction attempt."""

    database: AsyncIOMotorDatabase[Any]
    resource_type: str
    rewrites: Sequence[IndexRewrite]
    replaced: int = field(default=0)

    async def __call__(self, session: AsyncIOMotorClientSession) -> None:
        self.replaced = 0
        resources = self.database[RESOURCES]
        for rewrite in self.rewrites:
            result = await resources.update_one(
                {"_id": resource_key(self.resource_type, rewrite.id),
                 "version": rewrite.version, "body": {"$ne": None}},
                {"$set": {"idx": [index_entry_document(entry) for entry in rewrite.index]}},
                session=session)
            self.replaced += result.matched_count


@dataclass(frozen=True, slots=True)
class MarksWork:
    """Set (or, for None, remove) marks; called with the session of each transaction attempt."""

    database: AsyncIOMotorDatabase[Any]
    marks: Mapping[str, str | None]

    async def __call__(self, session: AsyncIOMotorClientSession) -> None:
        collection = self.database[MARKS]
        for name, value in self.marks.items():
            if value is None:
                await collection.delete_one({"_id": name}, session=session)
            else:
                await collection.replace_one({"_id": name}, {"_id": name, "value": value},
                                             upsert=True, session=session)


async def read_marks(database: AsyncIOMotorDatabase[Any], prefix: str) -> dict[str, str]:
    """Marks whose name starts with ``prefix``."""
    cursor = database[MARKS].find({"_id": {"$gte": prefix, "$lt": prefix + _PREFIX_END}})
    return {str(document["_id"]): str(document["value"])
            for document in await cursor.to_list(None)}
