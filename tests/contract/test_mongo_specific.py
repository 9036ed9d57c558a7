"""What the contract suite cannot see of MongoStore: its document layout, indexes and refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorClientSession, AsyncIOMotorDatabase
from pymongo.errors import OperationFailure

from fhir_server.storage.index import (
    DateEntry,
    IndexEntry,
    NumberEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
)
from fhir_server.storage.mongo import MongoStore
from fhir_server.storage.mongo.errors import NOT_A_REPLICA_SET
from fhir_server.storage.mongo.transaction import RetryPolicy, run_in_transaction
from fhir_server.storage.protocol import (
    Change,
    OutboxEvent,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)
from fhir_server.storage.query import HistoryQuery, IdClause, SearchQuery, TokenClause, TokenValue
from tests.support.mongomock_sessions import session_capable_mongomock_client

NIR = "urn:oid:1.2.250.1.213.1.4.8"
TRANSIENT_WRITE_CONFLICT = {"errorLabels": ["TransientTransactionError"],
                            "codeName": "WriteConflict"}


@dataclass(frozen=True)
class Mongo:
    store: MongoStore
    client: AsyncIOMotorClient[Any]
    database: AsyncIOMotorDatabase[Any]


@pytest.fixture
async def mongo() -> AsyncIterator[Mongo]:
    client = session_capable_mongomock_client()
    store = MongoStore(client, "specific")
    await store.start()
    try:
        yield Mongo(store, client, client["specific"])
    finally:
        await store.close()


def instant(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}.000000Z"


def change(id: str, version: int, *index: IndexEntry, deleted: bool = False) -> Change:
    body = None if deleted else orjson.dumps({"resourceType": "Patient", "id": id})
    return Change(resource_type="Patient", id=id, version=version, expected_version=version - 1,
                  last_updated=instant(version), method="DELETE" if deleted else "PUT",
                  body=body, index=index)


async def token_ids(store: MongoStore, *values: TokenValue, negate: bool = False) -> list[str]:
    page = await store.search(SearchQuery("Patient", (TokenClause("code", values, negate),)))
    return sorted(match.id for match in page.matches)


async def test_index_entries_are_embedded_in_the_resource_and_replaced_on_update(
        mongo: Mongo) -> None:
    await mongo.store.commit([change("a", 1,
        TokenEntry("identifier", NIR, "1", text="NIR"),
        TokenEntry("gender", None, "female"),
        StringEntry("family", "dupont", "Dupont"),
        DateEntry("birthdate", "1980-01-02T00:00:00.000000Z", "1980-01-02T23:59:59.999999Z"),
        NumberEntry("probability", 0.5, 0.5),
        QuantityEntry("value-quantity", "http://unitsofmeasure.org", "mm", 4.5, 5.5),
        ReferenceEntry("general-practitioner", "Practitioner", "pr1", None),
        UriEntry("url", "http://example.org/x"))])
    stored = await mongo.database["resources"].find_one({"_id": "Patient/a"})
    assert stored is not None
    assert stored["idx"] == [
        {"p": "identifier", "k": "token", "s": NIR, "c": "1", "x": "NIR"},
        {"p": "gender", "k": "token", "c": "female"},
        {"p": "family", "k": "string", "n": "dupont", "e": "Dupont"},
        {"p": "birthdate", "k": "date", "lo": "1980-01-02T00:00:00.000000Z",
         "hi": "1980-01-02T23:59:59.999999Z"},
        {"p": "probability", "k": "number", "lo": 0.5, "hi": 0.5},
        {"p": "value-quantity", "k": "quantity", "s": "http://unitsofmeasure.org", "c": "mm",
         "lo": 4.5, "hi": 5.5},
        {"p": "general-practitioner", "k": "reference", "t": "Practitioner", "i": "pr1"},
        {"p": "url", "k": "uri", "v": "http://example.org/x"},
    ]
    await mongo.store.commit([change("a", 2, TokenEntry("identifier", NIR, "2"))])
    updated = await mongo.database["resources"].find_one({"_id": "Patient/a"})
    assert updated is not None and updated["version"] == 2
    assert updated["idx"] == [{"p": "identifier", "k": "token", "s": NIR, "c": "2"}]
    assert set(await mongo.database.list_collection_names()) <= {
        "resources", "history", "outbox", "consumed"}


async def test_history_closes_the_previous_version_in_the_same_commit(mongo: Mongo) -> None:
    await mongo.store.commit([change("a", 1)])
    await mongo.store.commit([change("a", 2)])
    periods = [(doc["_id"], doc["valid_from"], doc["valid_to"])
               async for doc in mongo.database["history"].find().sort("version", 1)]
    assert periods == [("Patient/a/1", instant(1), instant(2)),
                       ("Patient/a/2", instant(2), None)]


async def test_start_creates_the_indexes(mongo: Mongo) -> None:
    def keys(information: Mapping[str, Any]) -> dict[str, list[str]]:
        return {name: [field for field, _ in spec["key"]] for name, spec in information.items()}

    resources = keys(await mongo.database["resources"].index_information())
    assert resources["type_token"] == ["type", "idx.p", "idx.s", "idx.c"]
    assert resources["type_last_updated_id"] == ["type", "last_updated", "id"]
    history = keys(await mongo.database["history"].index_information())
    assert history["last_updated_type_id_version"] == ["last_updated", "type", "id", "version"]
    assert history["type_id_version"] == ["type", "id", "version"]
    outbox = keys(await mongo.database["outbox"].index_information())
    assert outbox["delivered_created"] == ["delivered", "created", "_id"]


async def test_start_refuses_a_server_that_is_not_a_replica_set() -> None:
    store = MongoStore(session_capable_mongomock_client(set_name=None), "standalone")
    with pytest.raises(StoreUnavailable) as raised:
        await store.start()
    assert str(raised.value) == (
        "MongoDB must run as a replica set (transactions are required); see docker-compose.yml")
    assert str(raised.value) == NOT_A_REPLICA_SET
    await store.close()


async def test_unreachable_server_is_store_unavailable() -> None:
    store = MongoStore.from_url(
        "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100&connectTimeoutMS=100", "nowhere")
    with pytest.raises(StoreUnavailable, match="ServerSelectionTimeoutError"):
        await store.start()
    await store.close()


async def test_operator_lookalike_values_are_matched_literally(mongo: Mongo) -> None:
    await mongo.store.commit([change("plain", 1, TokenEntry("code", NIR, "x")),
                              change("dollar", 1, TokenEntry("code", NIR, "$gt"))])
    operator: Any = {"$gt": ""}
    assert await token_ids(mongo.store, TokenValue(NIR, operator)) == []
    assert await token_ids(mongo.store, TokenValue(operator, None)) == []
    assert await token_ids(mongo.store, TokenValue(NIR, "$gt")) == ["dollar"]
    by_id = await mongo.store.search(SearchQuery("Patient", (IdClause((operator,)),)))
    assert by_id.matches == ()


async def test_negated_token_matches_resources_without_the_parameter(mongo: Mongo) -> None:
    await mongo.store.commit([change("coded", 1, TokenEntry("code", NIR, "1")),
                              change("other", 1, TokenEntry("code", NIR, "2")),
                              change("uncoded", 1, TokenEntry("gender", None, "male"))])
    assert await token_ids(mongo.store, TokenValue(NIR, "1"), negate=True) == ["other", "uncoded"]
    assert await token_ids(mongo.store, negate=True) == ["coded", "other", "uncoded"]
    assert await token_ids(mongo.store) == []


async def test_count_zero_gives_the_total_without_matches(mongo: Mongo) -> None:
    await mongo.store.commit([change("a", 1), change("b", 1)])
    page = await mongo.store.search(SearchQuery("Patient", count=0, want_total=True))
    assert page.matches == () and page.total == 2
    assert await mongo.store.history(HistoryQuery(count=0)) == ()


async def test_a_driver_error_leaves_the_store_as_a_store_error(mongo: Mongo) -> None:
    event = OutboxEvent(id="evt-1", topic="t", payload=b"{}", created=instant(1))
    await mongo.store.commit([], [event])
    with pytest.raises(StoreError) as raised:
        await mongo.store.commit([], [event])
    assert type(raised.value) is StoreError
    message = str(raised.value)
    assert message.startswith("MongoDB error: BulkWriteError") and "evt-1" not in message


async def test_transient_transaction_errors_retry_the_whole_transaction(mongo: Mongo) -> None:
    attempts: list[int] = []

    async def work(session: AsyncIOMotorClientSession) -> None:
        attempts.append(len(attempts) + 1)
        await mongo.database["scratch"].insert_one({"attempt": len(attempts)}, session=session)
        if len(attempts) == 1:
            raise OperationFailure("write conflict", 112, TRANSIENT_WRITE_CONFLICT)

    await run_in_transaction(mongo.client, work, policy=RetryPolicy(first_backoff=0))
    assert attempts == [1, 2]


async def test_transaction_retries_are_bounded(mongo: Mongo) -> None:
    attempts: list[int] = []

    async def always_conflicting(session: AsyncIOMotorClientSession) -> None:
        attempts.append(len(attempts) + 1)
        raise OperationFailure("write conflict", 112, TRANSIENT_WRITE_CONFLICT)

    with pytest.raises(OperationFailure):
        await run_in_transaction(mongo.client, always_conflicting,
                                 policy=RetryPolicy(attempts=3, first_backoff=0))
    assert attempts == [1, 2, 3]


@pytest.mark.parametrize("error", [VersionConflict("Patient", "a", 1, 2),
                                   OperationFailure("bad value", 2, {"codeName": "BadValue"})])
async def test_other_errors_are_not_retried(mongo: Mongo, error: Exception) -> None:
    attempts: list[Exception] = []

    async def failing(session: AsyncIOMotorClientSession) -> None:
        attempts.append(error)
        raise error

    with pytest.raises(type(error)):
        await run_in_transaction(mongo.client, failing, policy=RetryPolicy(first_backoff=0))
    assert attempts == [error]
