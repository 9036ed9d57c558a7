"""The contract of ``_sort`` (``SearchQuery.sort``) and of keyset paging in sort order.

Resources get hand-made index entries; each test checks the order a store returns them in and
the sort values it reports for each match (which the engine turns into the next cursor).
"""

from __future__ import annotations

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
from fhir_server.storage.protocol import SearchPage, Store
from fhir_server.storage.query import (
    Clause,
    SearchQuery,
    SortKey,
    SortKind,
    TokenClause,
    TokenValue,
)
from tests.contract.test_search_clauses import LOINC, SNOMED, UCUM, Writer, day, whole_day


def ascending(param: str, kind: SortKind) -> SortKey:
    return SortKey(param, kind, descending=False)


def descending(param: str, kind: SortKind) -> SortKey:
    return SortKey(param, kind, descending=True)


async def sorted_page(store: Store, *sort: SortKey, where: tuple[Clause, ...] = (),
                      resource_type: str | None = "Observation") -> SearchPage:
    return await store.search(SearchQuery(resource_type, where, count=100, sort=sort))


async def order(store: Store, *sort: SortKey, where: tuple[Clause, ...] = ()) -> list[str]:
    """Ids of the Observations in the order the sorted search returns them."""
    return [match.id for match in (await sorted_page(store, *sort, where=where)).matches]


async def _put_without_values(writer: Writer) -> None:
    """Two resources with no value for any sort parameter (one has another parameter only)."""
    await writer.put("Observation", "none-1", TokenEntry("category", SNOMED, "x"))
    await writer.put("Observation", "none-2")


# --- each kind, both directions, missing values last ------------------------------------------

async def test_strings_sort_by_their_least_then_greatest_normalised_value(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "a", StringEntry("name", "martin", "Martin"),
                     StringEntry("name", "zola", "Zola"))
    await _put_without_values(writer)
    await writer.put("Observation", "b", StringEntry("name", "dupont", "Dupont"))
    await writer.put("Observation", "c", StringEntry("name", "nadal", "Nadal"))

    up = await sorted_page(store, ascending("name", "string"))
    assert [m.id for m in up.matches] == ["b", "a", "c", "none-1", "none-2"]
    assert up.sort_values == (("dupont",), ("martin",), ("nadal",), (None,), (None,))
    down = await sorted_page(store, descending("name", "string"))
    assert [m.id for m in down.matches] == ["a", "c", "b", "none-1", "none-2"]
    assert down.sort_values == (("zola",), ("nadal",), ("dupont",), (None,), (None,))


async def test_tokens_sort_by_code_ignoring_entries_without_one(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "a", TokenEntry("code", LOINC, "8302-2"),
                     TokenEntry("code", SNOMED, "50373000"))
    await writer.put("Observation", "b", TokenEntry("code", LOINC, "29463-7"))
    await writer.put("Observation", "system-only", TokenEntry("code", SNOMED, None))
    await _put_without_values(writer)

    assert await order(store, ascending("code", "token")) == [
        "b", "a", "none-1", "none-2", "system-only"]
    assert await order(store, descending("code", "token")) == [
        "a", "b", "none-1", "none-2", "system-only"]


async def test_dates_sort_by_low_ascending_and_high_descending(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "a", whole_day("date", "2020-01-01"),
                     whole_day("date", "2024-06-01"))
    await writer.put("Observation", "b", DateEntry("date", day("2022-03-01"),
                                                   day("2022-03-31", end=True)))
    await _put_without_values(writer)
    await writer.put("Observation", "c", whole_day("date", "2021-05-05"))

    up = await sorted_page(store, ascending("date", "date"))
    assert [m.id for m in up.matches] == ["a", "c", "b", "none-1", "none-2"]
    assert up.sort_values[0] == (day("2020-01-01"),)
    down = await sorted_page(store, descending("date", "date"))
    assert [m.id for m in down.matches] == ["a", "b", "c", "none-1", "none-2"]
    assert down.sort_values[1] == (day("2022-03-31", end=True),)


async def test_numbers_sort_numerically_zero_and_negatives_included(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "a", NumberEntry("value", -1.5, -1.5),
                     NumberEntry("value", 10.0, 10.0))
    await writer.put("Observation", "b", NumberEntry("value", 0.0, 0.0))
    await writer.put("Observation", "c", NumberEntry("value", 2.5, 3.5))
    await writer.put("Observation", "d", NumberEntry("value", 9.0, 9.0))
    await _put_without_values(writer)

    up = await sorted_page(store, ascending("value", "number"))
    assert [m.id for m in up.matches] == ["a", "b", "c", "d", "none-1", "none-2"]
    assert [values[0] for values in up.sort_values] == [-1.5, 0.0, 2.5, 9.0, None, None]
    assert await order(store, descending("value", "number")) == [
        "a", "d", "c", "b", "none-1", "none-2"]


async def test_quantities_sort_by_their_range_ends(store: Store) -> None:
    writer = Writer(store)
    await _put_without_values(writer)
    await writer.put("Observation", "a", QuantityEntry("value-quantity", UCUM, "mm", 1.0, 9.0))
    await writer.put("Observation", "b", QuantityEntry("value-quantity", UCUM, "mm", 2.0, 3.0))
    await writer.put("Observation", "c", QuantityEntry("value-quantity", UCUM, "mm", 5.0, 5.0))

    assert await order(store, ascending("value-quantity", "quantity")) == [
        "a", "b", "c", "none-1", "none-2"]
    assert await order(store, descending("value-quantity", "quantity")) == [
        "a", "c", "b", "none-1", "none-2"]


async def test_uris_sort_by_value(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "a", UriEntry("url", "http://b.example/x"))
    await writer.put("Observation", "b", UriEntry("url", "http://a.example/x"),
                     UriEntry("url", "urn:uuid:1"))
    await _put_without_values(writer)

    assert await order(store, ascending("url", "uri")) == ["b", "a", "none-1", "none-2"]
    assert await order(store, descending("url", "uri")) == ["b", "a", "none-1", "none-2"]


async def test_references_sort_by_type_and_id_else_url(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "to-patient", ReferenceEntry("subject", "Patient", "p1", None))
    await writer.put("Observation", "by-url",
                     ReferenceEntry("subject", None, None, "https://other.example/Patient/9"))
    await _put_without_values(writer)
    await writer.put("Observation", "to-group", ReferenceEntry("subject", "Group", "g1", None))

    up = await sorted_page(store, ascending("subject", "reference"))
    assert [m.id for m in up.matches] == ["to-group", "to-patient", "by-url", "none-1", "none-2"]
    assert up.sort_values[:3] == (("Group/g1",), ("Patient/p1",),
                                  ("https://other.example/Patient/9",))
    assert await order(store, descending("subject", "reference")) == [
        "by-url", "to-patient", "to-group", "none-1", "none-2"]


async def test_id_and_last_updated_sort_on_the_resource_itself(store: Store) -> None:
    writer = Writer(store)
    for id in ("m", "z", "a"):
        await writer.put("Observation", id)

    assert await order(store, ascending("_id", "id")) == ["a", "m", "z"]
    assert await order(store, descending("_id", "id")) == ["z", "m", "a"]
    assert await order(store, ascending("_lastUpdated", "last_updated")) == ["m", "z", "a"]
    assert await order(store, descending("_lastUpdated", "last_updated")) == ["a", "z", "m"]


# --- several keys, filters, totals ----------------------------------------------------------

async def _put_people(writer: Writer) -> None:
    """Observations standing for people: a family name and a birth date, some missing, with
    ties on both keys (broken by last_updated)."""
    people: list[tuple[str, str | None, str | None]] = [
        ("smith-1990", "smith", "1990-01-01"),
        ("no-family", None, "1970-01-01"),
        ("smith-1980", "smith", "1980-01-01"),
        ("adams", "adams", "2000-01-01"),
        ("smith-undated", "smith", None),
        ("smith-1990-twin", "smith", "1990-01-01"),
        ("nothing", None, None),
        ("adams-undated", "adams", None),
    ]
    for id, family, born in people:
        entries: list[IndexEntry] = []
        if family is not None:
            entries.append(StringEntry("family", family, family.title()))
        if born is not None:
            entries.append(whole_day("birthdate", born))
        await writer.put("Observation", id, *entries)


FAMILY_THEN_YOUNGEST = (ascending("family", "string"), descending("birthdate", "date"))
FAMILY_THEN_YOUNGEST_ORDER = ["adams", "adams-undated", "smith-1990", "smith-1990-twin",
                              "smith-1980", "smith-undated", "no-family", "nothing"]


async def test_several_keys_sort_in_turn_with_missing_values_last(store: Store) -> None:
    await _put_people(Writer(store))

    page = await sorted_page(store, *FAMILY_THEN_YOUNGEST)
    assert [m.id for m in page.matches] == FAMILY_THEN_YOUNGEST_ORDER
    assert page.sort_values[0] == ("adams", day("2000-01-01", end=True))
    assert page.sort_values[1] == ("adams", None)
    assert page.sort_values[-1] == (None, None)
    assert await order(store, descending("family", "string"), ascending("birthdate", "date")) == [
        "smith-1980", "smith-1990", "smith-1990-twin", "smith-undated", "adams",
        "adams-undated", "no-family", "nothing"]


async def test_sorting_keeps_the_filter_the_total_and_the_offset(store: Store) -> None:
    writer = Writer(store)
    for id, code in (("c", "3"), ("a", "1"), ("b", "2"), ("other", "9")):
        await writer.put("Observation", id, TokenEntry("code", LOINC if id != "other" else SNOMED,
                                                       code))
    where: tuple[Clause, ...] = (TokenClause("code", (TokenValue(LOINC, None),)),)

    page = await store.search(SearchQuery("Observation", where, count=2, offset=1,
                                          want_total=True, sort=(ascending("code", "token"),)))
    assert [m.id for m in page.matches] == ["b", "c"]
    assert page.total == 3
    assert page.sort_values == (("2",), ("3",))


async def test_an_unsorted_search_reports_no_sort_values(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "a", StringEntry("name", "x", "X"))

    page = await store.search(SearchQuery("Observation"))
    assert [m.id for m in page.matches] == ["a"]
    assert page.sort_values == ()


# --- keyset paging in sort order -------------------------------------------------------------

async def _all_pages(store: Store, sort: tuple[SortKey, ...], count: int) -> list[list[str]]:
    """Every page of a sorted search, each resumed after the keyset of the previous one."""
    pages: list[list[str]] = []
    after: tuple[object, ...] | None = None
    while True:
        page = await store.search(SearchQuery("Observation", count=count, after=after,
                                              sort=sort))
        if not page.matches:
            return pages
        pages.append([m.id for m in page.matches])
        last = page.matches[-1]
        after = (*page.sort_values[-1], last.resource_type, last.id)
        assert len(pages) <= 10, "paging does not end"


async def test_keyset_paging_returns_every_resource_once_in_sort_order(store: Store) -> None:
    await _put_people(Writer(store))

    pages = await _all_pages(store, FAMILY_THEN_YOUNGEST, count=3)
    assert pages == [FAMILY_THEN_YOUNGEST_ORDER[0:3], FAMILY_THEN_YOUNGEST_ORDER[3:6],
                     FAMILY_THEN_YOUNGEST_ORDER[6:8]]


async def test_keyset_paging_descending_through_missing_values_and_ties(store: Store) -> None:
    await _put_people(Writer(store))
    sort = (descending("birthdate", "date"),)
    expected = await order(store, *sort)
    assert expected[:4] == ["adams", "smith-1990", "smith-1990-twin", "smith-1980"]
    assert expected[5:] == ["adams-undated", "nothing", "smith-undated"]

    pages = await _all_pages(store, sort, count=3)
    assert pages == [expected[0:3], expected[3:6], expected[6:8]]
    assert sorted(id for page in pages for id in page) == sorted(expected)
