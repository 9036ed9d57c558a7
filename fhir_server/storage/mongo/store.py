"""``MongoStore``: the Store protocol on a MongoDB replica set, through motor.

Layout in ``documents.py``, filters in ``compile.py`` (the inner searches of chained and
``_has`` parameters in ``joins.py``), the writes of a commit in ``commit.py``
and its transaction in ``transaction.py``; every pymongo exception leaves as a protocol error
(``errors.py``). Implementation notes: ``docs/implementation/storage-mongo.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from motor.motor_asyncio import AsyncIOMotorClient

from fhir_server.storage.mongo.commit import CommitWork
from fhir_server.storage.mongo.compile import (
    HISTORY_ORDER,
    SEARCH_ORDER,
    history_filter,
    page_filter,
    search_filter,
    sorted_pipeline,
)
from fhir_server.storage.mongo.documents import (
    HISTORY,
    OUTBOX,
    RESOURCES,
    outbox_record,
    resource_key,
    stored_version,
    version_key,
)
from fhir_server.storage.mongo.errors import NOT_A_REPLICA_SET, driver_errors
from fhir_server.storage.mongo.explain import explain_search
from fhir_server.storage.mongo.indexes import create_indexes
from fhir_server.storage.mongo.joins import DEFAULT_JOIN_LIMIT, resolve_joins
from fhir_server.storage.mongo.reindex import IndexRewriteWork, MarksWork, read_marks
from fhir_server.storage.mongo.transaction import run_in_transaction
from fhir_server.storage.protocol import (
    Change,
    Consumption,
    IndexRewrite,
    OutboxEvent,
    OutboxRecord,
    QueryPlan,
    SearchPage,
    StoredVersion,
    StoreUnavailable,
)
from fhir_server.storage.query import HistoryQuery, SearchQuery

_WITHOUT_INDEX = {"idx": 0}


class MongoStore:
    """A Store on one database of a MongoDB replica set.

    The store owns ``client``: ``close()`` closes it (after dropping the database when
    ``drop_on_close``, which tests use to clean up after themselves). ``join_limit`` bounds
    the inner search of each chained or ``_has`` parameter (``QueryTooCostly`` beyond it).
    """

    def __init__(self, client: AsyncIOMotorClient[Any], database: str, *,
                 drop_on_close: bool = False, join_limit: int = DEFAULT_JOIN_LIMIT) -> None:
        self._client = client
        self._join_limit = join_limit
        self._database_name = database
        self._database = client[database]
        self._drop_on_close = drop_on_close
        self._closed = False

    @classmethod
    def from_url(cls, url: str, database: str, *,
                 join_limit: int = DEFAULT_JOIN_LIMIT) -> MongoStore:
        """A store on ``database`` of the deployment at ``url`` (a ``mongodb://`` URI)."""
        with driver_errors():
            return cls(AsyncIOMotorClient(url), database, join_limit=join_limit)

    async def start(self) -> None:
        with driver_errors():
            hello = await self._client.admin.command("hello")
            _require_transactions(hello)
            await create_indexes(self._database)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._drop_on_close:
                with driver_errors():
                    await self._client.drop_database(self._database_name)
        finally:
            self._client.close()

    async def read(self, resource_type: str, id: str) -> StoredVersion | None:
        with driver_errors():
            found = await self._database[RESOURCES].find_one(
                {"_id": resource_key(resource_type, id)}, _WITHOUT_INDEX)
        return None if found is None else stored_version(found)

    async def read_version(self, resource_type: str, id: str, version: int) -> StoredVersion | None:
        with driver_errors():
            found = await self._database[HISTORY].find_one(
                {"_id": version_key(resource_type, id, version)})
        return None if found is None else stored_version(found)

    async def commit(self, changes: Sequence[Change], events: Sequence[OutboxEvent] = (),
                     consumed: Sequence[Consumption] = ()) -> None:
        if not (changes or events or consumed):
            return
        with driver_errors():
            work = CommitWork(database=self._database, changes=changes, events=events,
                              consumed=consumed)
            await run_in_transaction(self._client, work)

    async def history(self, query: HistoryQuery) -> tuple[StoredVersion, ...]:
        if query.count <= 0:
            return ()
        with driver_errors():
            cursor = self._database[HISTORY].find(history_filter(query)).sort(HISTORY_ORDER)
            found = await cursor.limit(query.count).to_list(None)
        return tuple(stored_version(document) for document in found)

    async def search(self, query: SearchQuery) -> SearchPage:
        resources = self._database[RESOURCES]
        with driver_errors():
            joins = await resolve_joins(resources, query.resource_type, query.where,
                                        limit=self._join_limit)
            found = []
            if query.count > 0 and query.sort:
                found = await resources.aggregate(sorted_pipeline(query, joins),
                                                  allowDiskUse=True).to_list(None)
            elif query.count > 0:
                cursor = resources.find(page_filter(query, joins), _WITHOUT_INDEX).sort(
                    SEARCH_ORDER)
                found = await cursor.skip(max(query.offset, 0)).limit(query.count).to_list(None)
            total = (await resources.count_documents(search_filter(query, joins))
                     if query.want_total else None)
        matches = tuple(stored_version(document) for document in found)
        if not query.sort:
            return SearchPage(matches, total)
        return SearchPage(matches, total, tuple(
            tuple(document.get(f"s{position}") for position in range(len(query.sort)))
            for document in found))

    async def explain(self, query: SearchQuery) -> QueryPlan:
        resources = self._database[RESOURCES]
        with driver_errors():
            joins = await resolve_joins(resources, query.resource_type, query.where,
                                        limit=self._join_limit)
            return await explain_search(resources, query, joins)

    async def outbox_pending(self, limit: int) -> tuple[OutboxRecord, ...]:
        if limit <= 0:
            return ()
        with driver_errors():
            cursor = self._database[OUTBOX].find({"delivered": False}).sort(
                [("created", 1), ("_id", 1)])
            found = await cursor.limit(limit).to_list(None)
        return tuple(outbox_record(document) for document in found)

    async def outbox_delivered(self, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        with driver_errors():
            await self._database[OUTBOX].update_many(
                {"_id": {"$in": list(event_ids)}}, {"$set": {"delivered": True}})

    async def outbox_failed(self, event_id: str) -> None:
        with driver_errors():
            await self._database[OUTBOX].update_one({"_id": {"$eq": event_id}},
                                                    {"$inc": {"attempts": 1}})

    async def replace_index(self, resource_type: str, rewrites: Sequence[IndexRewrite]) -> int:
        if not rewrites:
            return 0
        work = IndexRewriteWork(self._database, resource_type, rewrites)
        with driver_errors():
            await run_in_transaction(self._client, work)
        return work.replaced

    async def read_marks(self, prefix: str) -> dict[str, str]:
        with driver_errors():
            return await read_marks(self._database, prefix)

    async def write_marks(self, marks: Mapping[str, str | None]) -> None:
        if not marks:
            return
        with driver_errors():
            await run_in_transaction(self._client, MarksWork(self._database, dict(marks)))


def _require_transactions(hello: Mapping[str, Any]) -> None:
    """Refuse a deployment without multi-document transactions: a replica set or mongos has them."""
    if "setName" not in hello and hello.get("msg") != "isdbgrid":
        raise StoreUnavailable(NOT_A_REPLICA_SET)
