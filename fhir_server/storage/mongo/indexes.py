"""The MongoDB indexes the adapter's queries rely on, created (idempotently) by ``start()``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from motor.motor_asyncio import AsyncIOMotorDatabase

from fhir_server.storage.mongo.documents import HISTORY, OUTBOX, RESOURCES


@dataclass(frozen=True, slots=True)
class IndexSpec:
    collection: str
    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False


INDEXES: Final = (
    # Multikey indexes over the embedded entries, one key per entry. A search condition is one
    # $elemMatch, so MongoDB may combine the bounds on the fields of the same entry.
    # Token search (and :text, :missing, which use its (type, idx.p) prefix).
    IndexSpec(RESOURCES, "type_token", (("type", 1), ("idx.p", 1), ("idx.s", 1), ("idx.c", 1))),
    # String search: prefix ranges (and :contains, which scans the keys of the parameter).
    IndexSpec(RESOURCES, "type_string", (("type", 1), ("idx.p", 1), ("idx.n", 1))),
    # Date, number and quantity search: bounds on an entry's [low, high].
    IndexSpec(RESOURCES, "type_range", (("type", 1), ("idx.p", 1), ("idx.lo", 1), ("idx.hi", 1))),
    # Reference search and the second step of a chain: by target id, then type.
    IndexSpec(RESOURCES, "type_reference", (("type", 1), ("idx.p", 1), ("idx.i", 1), ("idx.t", 1))),
    # Uri search: exact, :below (a prefix range) and :above (the value's prefixes, $in).
    IndexSpec(RESOURCES, "type_uri", (("type", 1), ("idx.p", 1), ("idx.v", 1))),
    # Search order and keyset paging, by type then id: fields an update never changes.
    IndexSpec(RESOURCES, "type_id", (("type", 1), ("id", 1))),
    # _lastUpdated ranges within a type (and _sort on it).
    IndexSpec(RESOURCES, "type_last_updated_id", (("type", 1), ("last_updated", 1), ("id", 1))),
    # System history, newest first, and its keyset cursor.
    IndexSpec(HISTORY, "last_updated_type_id_version",
              (("last_updated", 1), ("type", 1), ("id", 1), ("version", 1))),
    # Instance history and version reads.
    IndexSpec(HISTORY, "type_id_version", (("type", 1), ("id", 1), ("version", 1)), unique=True),
    # Pending events, oldest first.
    IndexSpec(OUTBOX, "delivered_created", (("delivered", 1), ("created", 1), ("_id", 1))),
)


async def create_indexes(database: AsyncIOMotorDatabase[Any]) -> None:
    """Create every index in ``INDEXES`` that does not exist yet."""
    for spec in INDEXES:
        await database[spec.collection].create_index(list(spec.keys), name=spec.name,
                                                     unique=spec.unique)
