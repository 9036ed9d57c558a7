"""What the shared search contract cannot see of MongoStore: literal values, one entry per
``$elemMatch``, the bound on chained and ``_has`` inner searches, and the search indexes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
import pytest

from fhir_server.storage.index import (
    IndexEntry,
    NumberEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
)
from fhir_server.storage.mongo import MongoStore
from fhir_server.storage.mongo.compile import clause_filter
from fhir_server.storage.protocol import Change, QueryTooCostly
from fhir_server.storage.query import (
    Bound,
    ChainClause,
    Clause,
    HasClause,
    RangeClause,
    RangeTest,
    ReferenceClause,
    ReferenceValue,
    SearchQuery,
    StringClause,
    TextClause,
    TokenClause,
    TokenValue,
    UriClause,
)
from tests.support.clauses import exact_string
from tests.support.mongomock_sessions import session_capable_mongomock_client

UCUM = "http://unitsofmeasure.org"
OPERATOR: Any = {"$gt": ""}
"""A value shaped like a query operator; it must only ever match itself."""

MakeStore = Callable[..., Awaitable[MongoStore]]


@pytest.fixture
async def make_store() -> AsyncIterator[MakeStore]:
    stores: list[MongoStore] = []

    async def started(**options: Any) -> MongoStore:
        store = MongoStore(session_capable_mongomock_client(), f"search{len(stores)}", **options)
        await store.start()
        stores.append(store)
        return store

    yield started
    for store in stores:
        await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> MongoStore:
    return await make_store()


async def put(store: MongoStore, resource_type: str, id: str, *entries: IndexEntry) -> None:
    body = orjson.dumps({"resourceType": resource_type, "id": id})
    await store.commit([Change(resource_type=resource_type, id=id, version=1,
                               expected_version=0, last_updated="2026-01-01T00:00:00.000000Z",
                               method="POST", body=body, index=entries)])


async def found(store: MongoStore, resource_type: str | None, *where: Clause) -> list[str]:
    page = await store.search(SearchQuery(resource_type, where, count=100))
    return sorted(f"{match.resource_type}/{match.id}" for match in page.matches)


async def test_operator_lookalike_values_match_nothing_but_themselves(store: MongoStore) -> None:
    await put(store, "Patient", "plain", StringEntry("family", "dupont", "Dupont"),
              NumberEntry("n", 1, 1), ReferenceEntry("gp", "Practitioner", "d1", None),
              UriEntry("url", "urn:x"), TokenEntry("code", None, "c", "text"))
    await put(store, "Patient", "dollar", StringEntry("family", "$gt", "$gt"),
              ReferenceEntry("gp", "Practitioner", "$gt", None), UriEntry("url", "$gt"))
    hostile: list[Clause] = [
        StringClause("family", (OPERATOR,)),
        StringClause("family", (OPERATOR,), "exact", (OPERATOR,)),
        StringClause("family", (OPERATOR,), "contains"),
        TextClause("code", (OPERATOR,)),
        RangeClause("n", "number", (RangeTest((Bound("low", "ge", OPERATOR),)),)),
        ReferenceClause("gp", (ReferenceValue(None, OPERATOR),)),
        ReferenceClause("gp", (ReferenceValue(OPERATOR, "d1"),)),
        ReferenceClause("gp", (ReferenceValue(None, None, OPERATOR),)),
        UriClause("url", (OPERATOR,)),
        UriClause("url", (OPERATOR,), "below"),
        UriClause("url", (OPERATOR,), "above"),
    ]
    for clause in hostile:
        assert await found(store, "Patient", clause) == [], clause
    assert await found(store, "Patient", exact_string("family", "$gt")) == [
        "Patient/dollar"]
    assert await found(store, "Patient", ReferenceClause("gp", (ReferenceValue(None, "$gt"),))
                       ) == ["Patient/dollar"]
    assert await found(store, "Patient", UriClause("url", ("$g",), "below")) == [
        "Patient/dollar"]


async def test_a_chain_holding_an_unhashable_value_is_still_resolved(store: MongoStore) -> None:
    await put(store, "Patient", "p1", TokenEntry("code", None, "1"))
    await put(store, "Observation", "o1", ReferenceEntry("subject", "Patient", "p1", None))
    hostile = ChainClause("subject", "Patient", (TokenClause("code", (TokenValue(None,
                                                                                  OPERATOR),)),))
    assert await found(store, "Observation", hostile) == []


def test_every_part_of_a_range_test_is_in_one_elem_match() -> None:
    test = RangeTest((Bound("low", "ge", 4.0), Bound("high", "le", 6.0)), UCUM, "mm")
    compiled = clause_filter(RangeClause("value", "quantity", (test,)))
    assert compiled == {"idx": {"$elemMatch": {
        "p": {"$eq": "value"}, "k": {"$eq": "quantity"}, "lo": {"$gte": 4.0},
        "hi": {"$lte": 6.0}, "s": {"$eq": UCUM}, "c": {"$eq": "mm"}}}}


async def test_bounds_and_unit_split_over_two_entries_do_not_match(store: MongoStore) -> None:
    await put(store, "Observation", "split", QuantityEntry("value", UCUM, "cm", 5, 5),
              QuantityEntry("value", UCUM, "mm", 50, 50))
    await put(store, "Observation", "whole", QuantityEntry("value", UCUM, "mm", 5, 5))
    five_mm = RangeTest((Bound("low", "ge", 4.0), Bound("high", "le", 6.0)), UCUM, "mm")
    assert await found(store, "Observation", RangeClause("value", "quantity", (five_mm,))) == [
        "Observation/whole"]


async def test_a_comparison_repeated_on_one_field_keeps_both(store: MongoStore) -> None:
    await put(store, "RiskAssessment", "half", NumberEntry("p", 0.5, 0.5))
    await put(store, "RiskAssessment", "most", NumberEntry("p", 0.9, 0.9))
    both = RangeTest((Bound("low", "ge", 0.2), Bound("low", "ge", 0.7)))
    assert await found(store, "RiskAssessment", RangeClause("p", "number", (both,))) == [
        "RiskAssessment/most"]


async def test_prefixes_reach_beyond_the_basic_multilingual_plane(store: MongoStore) -> None:
    await put(store, "Patient", "emoji", StringEntry("family", "dup\U0001f600", "x"))
    await put(store, "Patient", "top", StringEntry("family", "a\U0010ffffb", "x"))
    await put(store, "Patient", "after-top", StringEntry("family", "b", "x"))
    await put(store, "Patient", "hangul", StringEntry("family", "\ud7ffz", "x"))
    await put(store, "Patient", "private", StringEntry("family", "\ue000", "x"))

    def prefix(value: str) -> StringClause:
        return StringClause("family", (value,))

    assert await found(store, "Patient", prefix("dup")) == ["Patient/emoji"]
    assert await found(store, "Patient", prefix("a\U0010ffff")) == ["Patient/top"]
    assert await found(store, "Patient", prefix("\ud7ff")) == ["Patient/hangul"]
    assert await found(store, "Patient", prefix("")) == [
        "Patient/after-top", "Patient/emoji", "Patient/hangul", "Patient/private", "Patient/top"]


async def test_uri_above_matches_any_prefix_of_the_value(store: MongoStore) -> None:
    await put(store, "ValueSet", "partial", UriEntry("url", "http://acme.org/fh"))
    await put(store, "ValueSet", "longer", UriEntry("url", "http://acme.org/fhir/x"))
    assert await found(store, "ValueSet", UriClause("url", ("http://acme.org/fhir",), "above")
                       ) == ["ValueSet/partial"]


async def test_reference_by_url_or_by_type_and_id(store: MongoStore) -> None:
    url = "https://elsewhere.example/fhir/Patient/p1"
    await put(store, "Observation", "by-url", ReferenceEntry("subject", None, None, url))
    await put(store, "Observation", "by-id", ReferenceEntry("subject", "Patient", "p1", None))
    await put(store, "Observation", "other", ReferenceEntry("subject", "Patient", "p2", None))
    both = ReferenceClause("subject", (ReferenceValue("Patient", "p1", url),))
    assert await found(store, "Observation", both) == ["Observation/by-id", "Observation/by-url"]


async def test_has_in_a_search_of_every_type(store: MongoStore) -> None:
    await put(store, "Patient", "x")
    await put(store, "Group", "x")
    await put(store, "Patient", "y")
    await put(store, "Observation", "o1", ReferenceEntry("subject", "Patient", "x", None),
              ReferenceEntry("subject", "Group", "x", None))
    assert await found(store, None, HasClause("Observation", "subject", ())) == [
        "Group/x", "Patient/x"]


async def _patients_with_observations(store: MongoStore, count: int) -> None:
    for n in range(count):
        await put(store, "Patient", f"p{n}", TokenEntry("gender", None, "female"))
        await put(store, "Observation", f"o{n}", ReferenceEntry("subject", "Patient", f"p{n}",
                                                                None))


FEMALE = TokenClause("gender", (TokenValue(None, "female"),))


async def test_a_chain_may_find_up_to_the_limit(make_store: MakeStore) -> None:
    store = await make_store(join_limit=3)
    await _patients_with_observations(store, 3)
    assert len(await found(store, "Observation", ChainClause("subject", "Patient", (FEMALE,)))
               ) == 3
    assert len(await found(store, "Patient", HasClause("Observation", "subject", ()))) == 3


async def test_a_chain_beyond_the_limit_is_too_costly(make_store: MakeStore) -> None:
    store = await make_store(join_limit=3)
    await _patients_with_observations(store, 4)
    with pytest.raises(QueryTooCostly, match="more than 3 resources"):
        await found(store, "Observation", ChainClause("subject", "Patient", (FEMALE,)))
    with pytest.raises(QueryTooCostly):
        await found(store, "Patient", HasClause("Observation", "subject", ()))
    nested = ChainClause("subject", "Patient", (HasClause("Observation", "subject", ()),))
    with pytest.raises(QueryTooCostly):
        await found(store, "Observation", nested)


async def test_has_beyond_the_limit_of_targets_is_too_costly(make_store: MakeStore) -> None:
    store = await make_store(join_limit=2)
    await put(store, "List", "l1", *(ReferenceEntry("item", "Patient", f"p{n}", None)
                                     for n in range(3)))
    with pytest.raises(QueryTooCostly):
        await found(store, "Patient", HasClause("List", "item", ()))


async def test_start_creates_the_search_indexes() -> None:
    client = session_capable_mongomock_client()
    started = MongoStore(client, "indexes")
    await started.start()
    try:
        information: Mapping[str, Any] = await client["indexes"]["resources"].index_information()
    finally:
        await started.close()
    keys = {name: [field for field, _ in spec["key"]] for name, spec in information.items()}
    assert keys["type_string"] == ["type", "idx.p", "idx.n"]
    assert keys["type_range"] == ["type", "idx.p", "idx.lo", "idx.hi"]
    assert keys["type_reference"] == ["type", "idx.p", "idx.i", "idx.t"]
    assert keys["type_uri"] == ["type", "idx.p", "idx.v"]
