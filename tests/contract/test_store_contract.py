"""The Store protocol's contract, the same for every backend (see storage/protocol.py)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from fhir_server.storage.index import DateEntry, IndexEntry, StringEntry, TokenEntry
from fhir_server.storage.protocol import (
    AlreadyConsumed,
    Change,
    Consumption,
    OutboxEvent,
    Store,
    VersionConflict,
)
from fhir_server.storage.query import (
    HistoryQuery,
    IdClause,
    LastUpdatedClause,
    SearchQuery,
    TokenClause,
    TokenValue,
    TypeClause,
)

NIR = "urn:oid:1.2.250.1.213.1.4.8"


def instant(second: int, micro: int = 0) -> str:
    return f"2026-01-01T00:00:{second:02d}.{micro:06d}Z"


def body(resource_type: str, id: str, version: int, **extra: object) -> bytes:
    return orjson.dumps({"resourceType": resource_type, "id": id,
                         "meta": {"versionId": str(version)}, **extra})


def change(resource_type: str, id: str, version: int, at: str, *, deleted: bool = False,
           index: tuple[IndexEntry, ...] = (), expected: int | None = None) -> Change:
    return Change(
        resource_type=resource_type, id=id, version=version,
        expected_version=version - 1 if expected is None else expected,
        last_updated=at, method="DELETE" if deleted else ("POST" if version == 1 else "PUT"),
        body=None if deleted else body(resource_type, id, version), index=index)


def event(n: int) -> OutboxEvent:
    return OutboxEvent(id=f"evt-{n}", topic="resource-changed",
                       payload=orjson.dumps({"n": n}), created=instant(n))


async def test_create_then_read(store: Store) -> None:
    await store.commit([change("Patient", "p1", 1, instant(1))])
    got = await store.read("Patient", "p1")
    assert got is not None
    assert (got.resource_type, got.id, got.version, got.last_updated, got.method) == (
        "Patient", "p1", 1, instant(1), "POST")
    assert got.body == body("Patient", "p1", 1)
    assert not got.deleted


async def test_read_missing_is_none(store: Store) -> None:
    assert await store.read("Patient", "nope") is None
    assert await store.read_version("Patient", "nope", 1) is None


async def test_same_id_different_types_are_distinct(store: Store) -> None:
    await store.commit([change("Patient", "x", 1, instant(1)),
                        change("Observation", "x", 1, instant(1))])
    patient = await store.read("Patient", "x")
    observation = await store.read("Observation", "x")
    assert patient is not None and observation is not None
    assert orjson.loads(patient.body or b"")["resourceType"] == "Patient"
    assert orjson.loads(observation.body or b"")["resourceType"] == "Observation"


async def test_update_keeps_old_versions(store: Store) -> None:
    await store.commit([change("Patient", "p1", 1, instant(1))])
    await store.commit([change("Patient", "p1", 2, instant(2))])
    current = await store.read("Patient", "p1")
    assert current is not None and current.version == 2
    first = await store.read_version("Patient", "p1", 1)
    assert first is not None and first.body == body("Patient", "p1", 1)
    assert await store.read_version("Patient", "p1", 3) is None


async def test_wrong_expected_version_is_a_conflict(store: Store) -> None:
    await store.commit([change("Patient", "p1", 1, instant(1))])
    with pytest.raises(VersionConflict) as raised:
        await store.commit([change("Patient", "p1", 3, instant(2), expected=2)])
    assert raised.value.actual == 1
    current = await store.read("Patient", "p1")
    assert current is not None and current.version == 1


async def test_create_over_existing_is_a_conflict(store: Store) -> None:
    await store.commit([change("Patient", "p1", 1, instant(1))])
    with pytest.raises(VersionConflict):
        await store.commit([change("Patient", "p1", 1, instant(2))])
    assert (await store.read("Patient", "p1")).version == 1  # type: ignore[union-attr]


async def test_delete_is_a_version_and_hides_from_search(store: Store) -> None:
    await store.commit([change("Patient", "p1", 1, instant(1))])
    await store.commit([change("Patient", "p1", 2, instant(2), deleted=True)])
    current = await store.read("Patient", "p1")
    assert current is not None and current.deleted and current.version == 2
    assert current.method == "DELETE"
    page = await store.search(SearchQuery("Patient", want_total=True))
    assert page.matches == () and page.total == 0
    await store.commit([change("Patient", "p1", 3, instant(3))])
    revived = await store.read("Patient", "p1")
    assert revived is not None and not revived.deleted and revived.version == 3


async def test_conflict_in_a_single_change_writes_no_event(store: Store) -> None:
    await store.commit([change("Patient", "p1", 1, instant(1))])
    with pytest.raises(VersionConflict):
        await store.commit([change("Patient", "p1", 1, instant(2))], [event(1)])
    assert await store.outbox_pending(10) == ()


@pytest.mark.replica_set
async def test_commit_is_all_or_nothing(store: Store) -> None:
    await store.commit([change("Patient", "p1", 1, instant(1))])
    with pytest.raises(VersionConflict):
        await store.commit([change("Patient", "new", 1, instant(2)),
                            change("Patient", "p2", 1, instant(2),
                                   index=(TokenEntry("identifier", NIR, "1"),)),
                            change("Patient", "p1", 1, instant(2))], [event(1)])
    assert await store.read("Patient", "new") is None
    assert await store.read("Patient", "p2") is None
    assert await store.outbox_pending(10) == ()
    found = await store.search(SearchQuery(
        "Patient", (TokenClause("identifier", (TokenValue(NIR, "1"),)),)))
    assert found.matches == ()
    history = await store.history(HistoryQuery(resource_type="Patient"))
    assert [v.id for v in history] == ["p1"]


async def test_concurrent_writers_same_expected_version_one_wins(store: Store) -> None:
    await store.commit([change("Patient", "p1", 1, instant(1))])

    async def attempt(n: int) -> bool:
        try:
            await store.commit([change("Patient", "p1", 2, instant(2, n))])
        except VersionConflict:
            return False
        return True

    results = await asyncio.gather(*(attempt(n) for n in range(8)))
    assert results.count(True) == 1
    versions = await store.history(HistoryQuery(resource_type="Patient", id="p1"))
    assert [v.version for v in versions] == [2, 1]


async def test_history_instance_type_system(store: Store) -> None:
    await store.commit([change("Patient", "a", 1, instant(1))])
    await store.commit([change("Observation", "o", 1, instant(2))])
    await store.commit([change("Patient", "a", 2, instant(3))])
    await store.commit([change("Patient", "b", 1, instant(4))])
    await store.commit([change("Patient", "a", 3, instant(5), deleted=True)])

    instance = await store.history(HistoryQuery(resource_type="Patient", id="a"))
    assert [(v.version, v.deleted) for v in instance] == [(3, True), (2, False), (1, False)]
    by_type = await store.history(HistoryQuery(resource_type="Patient"))
    assert [(v.id, v.version) for v in by_type] == [("a", 3), ("b", 1), ("a", 2), ("a", 1)]
    system = await store.history(HistoryQuery())
    assert [(v.resource_type, v.version) for v in system][:3] == [
        ("Patient", 3), ("Patient", 1), ("Patient", 2)]
    assert len(system) == 5


async def test_history_since_and_paging(store: Store) -> None:
    for tick in range(1, 8):
        await store.commit([change("Patient", f"p{tick}", 1, instant(tick))])
    since = await store.history(HistoryQuery(resource_type="Patient", since=instant(5)))
    assert [v.id for v in since] == ["p7", "p6", "p5"]
    first = await store.history(HistoryQuery(resource_type="Patient", count=3))
    assert [v.id for v in first] == ["p7", "p6", "p5"]
    last = first[-1]
    cursor = (last.last_updated, last.resource_type, last.id, last.version)
    second = await store.history(HistoryQuery(resource_type="Patient", count=3, before=cursor))
    assert [v.id for v in second] == ["p4", "p3", "p2"]


async def test_history_at_returns_versions_current_during_the_period(store: Store) -> None:
    await store.commit([change("Patient", "a", 1, instant(1))])
    await store.commit([change("Patient", "a", 2, instant(3))])
    await store.commit([change("Patient", "a", 3, instant(5))])
    at_point = await store.history(HistoryQuery(resource_type="Patient", id="a",
                                                at_low=instant(4), at_high=instant(4)))
    assert [v.version for v in at_point] == [2]
    at_range = await store.history(HistoryQuery(resource_type="Patient", id="a",
                                                at_low=instant(2), at_high=instant(5)))
    assert [v.version for v in at_range] == [3, 2, 1]
    before_all = await store.history(HistoryQuery(resource_type="Patient", id="a",
                                                  at_low=instant(0), at_high=instant(0)))
    assert before_all == ()


async def test_search_by_id_and_type(store: Store) -> None:
    await store.commit([change("Patient", "a", 1, instant(1)),
                        change("Patient", "b", 1, instant(2)),
                        change("Observation", "a", 1, instant(3))])
    page = await store.search(SearchQuery("Patient", (IdClause(("a", "zz")),), want_total=True))
    assert [(m.resource_type, m.id) for m in page.matches] == [("Patient", "a")]
    assert page.total == 1
    everything = await store.search(SearchQuery(None, (IdClause(("a",)),)))
    assert sorted(m.resource_type for m in everything.matches) == ["Observation", "Patient"]


async def test_search_tokens(store: Store) -> None:
    await store.commit([
        change("Patient", "a", 1, instant(1), index=(TokenEntry("identifier", NIR, "111"),
                                                      TokenEntry("gender", None, "female"))),
        change("Patient", "b", 1, instant(2), index=(TokenEntry("identifier", "urn:x", "111"),)),
        change("Patient", "c", 1, instant(3), index=(TokenEntry("identifier", NIR, "222"),)),
    ])

    async def ids(*values: TokenValue, negate: bool = False,
                  param: str = "identifier") -> list[str]:
        page = await store.search(SearchQuery("Patient", (TokenClause(param, values, negate),)))
        return sorted(m.id for m in page.matches)

    assert await ids(TokenValue(NIR, "111")) == ["a"]
    assert await ids(TokenValue(None, "111")) == ["a", "b"]
    assert await ids(TokenValue(NIR, None)) == ["a", "c"]
    assert await ids(TokenValue(NIR, "111"), TokenValue(NIR, "222")) == ["a", "c"]
    assert await ids(TokenValue("", "female"), param="gender") == ["a"]
    assert await ids(TokenValue("", "111")) == []
    assert await ids(TokenValue(NIR, "111"), negate=True) == ["b", "c"]


async def test_search_clauses_are_anded(store: Store) -> None:
    await store.commit([
        change("Patient", "a", 1, instant(1), index=(TokenEntry("identifier", NIR, "1"),
                                                      TokenEntry("gender", None, "female"))),
        change("Patient", "b", 1, instant(2), index=(TokenEntry("identifier", NIR, "1"),
                                                      TokenEntry("gender", None, "male"))),
    ])
    page = await store.search(SearchQuery("Patient", (
        TokenClause("identifier", (TokenValue(NIR, "1"),)),
        TokenClause("gender", (TokenValue(None, "male"),)))))
    assert [m.id for m in page.matches] == ["b"]


async def test_update_replaces_index_entries(store: Store) -> None:
    await store.commit([change("Patient", "a", 1, instant(1),
                               index=(TokenEntry("identifier", NIR, "old"),))])
    await store.commit([change("Patient", "a", 2, instant(2),
                               index=(TokenEntry("identifier", NIR, "new"),))])
    old = await store.search(SearchQuery("Patient", (
        TokenClause("identifier", (TokenValue(NIR, "old"),)),)))
    new = await store.search(SearchQuery("Patient", (
        TokenClause("identifier", (TokenValue(NIR, "new"),)),)))
    assert old.matches == ()
    assert [(m.id, m.version) for m in new.matches] == [("a", 2)]


async def test_search_accepts_every_index_entry_kind(store: Store) -> None:
    await store.commit([change("Patient", "a", 1, instant(1), index=(
        TokenEntry("identifier", NIR, "1", text="NIR"),
        StringEntry("family", "dupont", "Dupont"),
        DateEntry("birthdate", "1980-01-02T00:00:00.000000Z", "1980-01-02T23:59:59.999999Z"),
    ))])
    page = await store.search(SearchQuery("Patient", (IdClause(("a",)),)))
    assert [m.id for m in page.matches] == ["a"]


async def test_search_last_updated_and_paging(store: Store) -> None:
    for tick in range(1, 8):
        await store.commit([change("Patient", f"p{tick}", 1, instant(tick))])
    window = await store.search(SearchQuery("Patient", (
        LastUpdatedClause(instant(3), instant(5)),), want_total=True))
    assert [m.id for m in window.matches] == ["p3", "p4", "p5"] and window.total == 3
    exclusive = await store.search(SearchQuery("Patient", (
        LastUpdatedClause(instant(3), None, low_inclusive=False),)))
    assert [m.id for m in exclusive.matches] == ["p4", "p5", "p6", "p7"]

    first = await store.search(SearchQuery("Patient", count=3, want_total=True))
    assert [m.id for m in first.matches] == ["p1", "p2", "p3"] and first.total == 7
    last = first.matches[-1]
    after = (last.resource_type, last.id)
    second = await store.search(SearchQuery("Patient", count=3, after=after))
    assert [m.id for m in second.matches] == ["p4", "p5", "p6"]
    by_offset = await store.search(SearchQuery("Patient", count=2, offset=5))
    assert [m.id for m in by_offset.matches] == ["p6", "p7"]


async def test_outbox_events_commit_with_changes(store: Store) -> None:
    await store.commit([change("Patient", "a", 1, instant(1))], [event(1), event(2)])
    await store.commit([], [event(3)])
    pending = await store.outbox_pending(10)
    assert [r.event.id for r in pending] == ["evt-1", "evt-2", "evt-3"]
    assert pending[0].event.payload == orjson.dumps({"n": 1})
    assert pending[0].event.topic == "resource-changed" and pending[0].attempts == 0
    await store.outbox_failed("evt-1")
    await store.outbox_delivered(["evt-2", "unknown"])
    after = await store.outbox_pending(10)
    assert [(r.event.id, r.attempts) for r in after] == [("evt-1", 1), ("evt-3", 0)]
    assert [r.event.id for r in await store.outbox_pending(1)] == ["evt-1"]


async def test_consumption_is_recorded_once(store: Store) -> None:
    await store.commit([change("Patient", "a", 1, instant(1))],
                       consumed=[Consumption("report", "evt-1")])
    with pytest.raises(AlreadyConsumed):
        await store.commit([change("Patient", "b", 1, instant(2))],
                           consumed=[Consumption("report", "evt-1")])
    assert await store.read("Patient", "b") is None
    await store.commit([], consumed=[Consumption("other-consumer", "evt-1")])


async def test_close_is_idempotent(store: Store) -> None:
    await store.close()
    await store.close()


async def test_search_restricted_to_several_types(store: Store) -> None:
    await store.commit([change("Patient", "a", 1, instant(1)),
                        change("Observation", "b", 1, instant(2)),
                        change("Practitioner", "c", 1, instant(3))])
    page = await store.search(SearchQuery(None, (TypeClause(("Patient", "Practitioner")),),
                                          want_total=True))
    assert [(m.resource_type, m.id) for m in page.matches] == [("Patient", "a"),
                                                                ("Practitioner", "c")]
    assert page.total == 2
