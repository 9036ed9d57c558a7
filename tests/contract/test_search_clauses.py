"""The contract of every search clause kind beyond ids and tokens, the same for every backend.

Each test writes a few resources with hand-made index entries (as the engine's extractors would
produce them) and checks which resources a query tree matches. Nothing here depends on how a
store lays out its entries or compiles a clause.
"""

from __future__ import annotations

from typing import Literal

import orjson

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
from fhir_server.storage.protocol import Change, Store
from fhir_server.storage.query import (
    Bound,
    ChainClause,
    Clause,
    HasClause,
    IdClause,
    MissingClause,
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

NIR = "urn:oid:1.2.250.1.213.1.4.8"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"


def instant(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}.000000Z"


def day(date: str, *, end: bool = False) -> str:
    """The first (or last) instant of a ``YYYY-MM-DD`` day, in the index's fixed-width form."""
    return f"{date}T23:59:59.999999Z" if end else f"{date}T00:00:00.000000Z"


def whole_day(param: str, date: str) -> DateEntry:
    return DateEntry(param, day(date), day(date, end=True))


def subject(resource_type: str, id: str, param: str = "subject") -> ReferenceEntry:
    return ReferenceEntry(param, resource_type, id, None)


class Writer:
    """Writes versions of resources with hand-made entries, one second apart by default."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._versions: dict[tuple[str, str], int] = {}
        self._clock = 0

    async def put(self, resource_type: str, id: str, *entries: IndexEntry) -> None:
        await self._write(resource_type, id, entries, deleted=False)

    async def delete(self, resource_type: str, id: str) -> None:
        await self._write(resource_type, id, (), deleted=True)

    async def _write(self, resource_type: str, id: str, entries: tuple[IndexEntry, ...], *,
                     deleted: bool) -> None:
        previous = self._versions.get((resource_type, id), 0)
        version = previous + 1
        self._versions[(resource_type, id)] = version
        self._clock += 1
        body = orjson.dumps({"resourceType": resource_type, "id": id,
                             "meta": {"versionId": str(version)}})
        await self._store.commit([Change(
            resource_type=resource_type, id=id, version=version, expected_version=previous,
            last_updated=instant(self._clock),
            method="DELETE" if deleted else ("POST" if version == 1 else "PUT"),
            body=None if deleted else body, index=entries)])


async def found(store: Store, resource_type: str | None, *where: Clause) -> list[str]:
    """Sorted ids of the resources of ``resource_type`` matching every clause."""
    page = await store.search(SearchQuery(resource_type, where, count=100))
    return sorted(match.id for match in page.matches)


def dates(param: str, *tests: tuple[Bound, ...], negate: bool = False) -> RangeClause:
    return RangeClause(param, "date", tuple(RangeTest(bounds) for bounds in tests), negate)


def numbers(param: str, *tests: tuple[Bound, ...], negate: bool = False) -> RangeClause:
    return RangeClause(param, "number", tuple(RangeTest(bounds) for bounds in tests), negate)


# --- :text on tokens -------------------------------------------------------------------------

async def test_text_matches_the_start_of_a_token_text(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "naevus", TokenEntry("code", SNOMED, "1", "naevus atypique"))
    await writer.put("Observation", "melanome", TokenEntry("code", SNOMED, "2", "melanome"),
                     TokenEntry("code", LOINC, "3", "lesion pigmentee"))
    await writer.put("Observation", "no-text", TokenEntry("code", SNOMED, "4"))
    await writer.put("Observation", "other-param", TokenEntry("method", SNOMED, "5", "naevus"))

    assert await found(store, "Observation", TextClause("code", ("naev",))) == ["naevus"]
    assert await found(store, "Observation", TextClause("code", ("lesion",))) == ["melanome"]
    assert await found(store, "Observation", TextClause("code", ("naev", "mela"))) == [
        "melanome", "naevus"]
    assert await found(store, "Observation", TextClause("code", ("atypique",))) == []
    assert await found(store, "Observation", TextClause("code", ("naevus atypique plus",))) == []


# --- strings ---------------------------------------------------------------------------------

async def _string_fixture(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Patient", "lefevre",
                     StringEntry("family", "dupont-lefevre", "Dupont-Lefèvre"))
    await writer.put("Patient", "dupond", StringEntry("family", "dupond", "Dupond"),
                     StringEntry("given", "eloise", "Éloïse"))
    await writer.put("Patient", "martin", StringEntry("family", "martin", "Martin"),
                     StringEntry("given", "dupont", "Dupont"))


async def test_string_prefix_is_on_the_normalised_value(store: Store) -> None:
    await _string_fixture(store)
    assert await found(store, "Patient", StringClause("family", ("dup",))) == ["dupond",
                                                                                "lefevre"]
    assert await found(store, "Patient", StringClause("family", ("dupont",))) == ["lefevre"]
    assert await found(store, "Patient", StringClause("family", ("dupont-lefevre",))) == [
        "lefevre"]
    assert await found(store, "Patient", StringClause("family", ("lefevre",))) == []
    assert await found(store, "Patient", StringClause("family", ("Dup",))) == []
    assert await found(store, "Patient", StringClause("family", ("mar", "dupond"))) == [
        "dupond", "martin"]
    assert await found(store, "Patient", StringClause("given", ("elo",))) == ["dupond"]


async def test_string_contains_is_on_the_normalised_value(store: Store) -> None:
    await _string_fixture(store)
    contains: Literal["contains"] = "contains"
    assert await found(store, "Patient", StringClause("family", ("lefe",), contains)) == [
        "lefevre"]
    assert await found(store, "Patient", StringClause("family", ("pon",), contains)) == [
        "dupond", "lefevre"]
    assert await found(store, "Patient", StringClause("family", ("rti", "fev"), contains)) == [
        "lefevre", "martin"]
    assert await found(store, "Patient", StringClause("family", ("Lefè",), contains)) == []


async def test_string_exact_is_on_the_value_as_written(store: Store) -> None:
    await _string_fixture(store)
    assert await found(store, "Patient", exact_string("family", "Dupont-Lefèvre")) == ["lefevre"]
    assert await found(store, "Patient", exact_string("family", "dupont-lefevre")) == []
    assert await found(store, "Patient", exact_string("family", "Dupont")) == []
    assert await found(store, "Patient", exact_string("given", "Dupont", "Éloïse")) == [
        "dupond", "martin"]


async def test_string_values_are_matched_literally(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Patient", "percent", StringEntry("family", "a%b_c", "a%b_c"))
    await writer.put("Patient", "plain", StringEntry("family", "axbyc", "axbyc"))
    await writer.put("Patient", "regex", StringEntry("family", "a.*b[c]^$", "a.*b[c]^$"))
    await writer.put("Patient", "slash", StringEntry("family", "a\\b", "a\\b"))

    modes: tuple[Literal["prefix", "contains"], ...] = ("prefix", "contains")
    for mode in modes:
        assert await found(store, "Patient", StringClause("family", ("a%",), mode)) == [
            "percent"]
        assert await found(store, "Patient", StringClause("family", ("a_",), mode)) == []
        assert await found(store, "Patient", StringClause("family", ("a.*",), mode)) == [
            "regex"]
        assert await found(store, "Patient", StringClause("family", ("a\\",), mode)) == [
            "slash"]
    assert await found(store, "Patient", StringClause("family", ("%b_",), "contains")) == [
        "percent"]
    assert await found(store, "Patient", StringClause("family", ("[c]^$",), "contains")) == [
        "regex"]
    assert await found(store, "Patient", exact_string("family", "a%b_c")) == [
        "percent"]


# --- ranges: date, number, quantity ------------------------------------------------------------

async def test_date_range_with_one_bound(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Patient", "jan", whole_day("birthdate", "1980-01-15"))
    await writer.put("Patient", "jun", whole_day("birthdate", "1980-06-15"))
    await writer.put("Patient", "none")
    june = day("1980-06-15")

    assert await found(store, "Patient", dates("birthdate", (Bound("low", "ge", june),))) == [
        "jun"]
    assert await found(store, "Patient", dates("birthdate", (Bound("low", "gt", june),))) == []
    assert await found(store, "Patient", dates("birthdate", (Bound("low", "lt", june),))) == [
        "jan"]
    assert await found(store, "Patient", dates("birthdate", (Bound("low", "le", june),))) == [
        "jan", "jun"]
    assert await found(store, "Patient", dates("birthdate", (
        Bound("high", "ge", day("1980-01-15", end=True)),))) == ["jan", "jun"]
    assert await found(store, "Patient", dates("birthdate", (
        Bound("high", "gt", day("1980-01-15", end=True)),))) == ["jun"]


async def test_date_bounds_hold_on_the_same_entry(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Encounter", "split", whole_day("date", "2026-01-10"),
                     whole_day("date", "2026-06-10"))
    await writer.put("Encounter", "march", whole_day("date", "2026-03-10"))
    await writer.put("Encounter", "long", DateEntry("date", day("2026-02-01"),
                                                    day("2026-05-01", end=True)))
    march, april = day("2026-03-01"), day("2026-04-30", end=True)
    spring = (Bound("low", "ge", march), Bound("high", "le", april))
    overlaps = (Bound("high", "ge", march), Bound("low", "le", april))

    assert await found(store, "Encounter", dates("date", spring)) == ["march"]
    assert await found(store, "Encounter", dates("date", overlaps)) == ["long", "march"]


async def test_date_tests_are_ored_and_negate_means_no_entry_passes(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Encounter", "jan", whole_day("date", "2026-01-10"))
    await writer.put("Encounter", "mar", whole_day("date", "2026-03-10"))
    await writer.put("Encounter", "both", whole_day("date", "2026-01-10"),
                     whole_day("date", "2026-06-10"))
    await writer.put("Encounter", "undated")

    def on(date: str) -> tuple[Bound, ...]:
        return (Bound("low", "ge", day(date)), Bound("high", "le", day(date, end=True)))

    assert await found(store, "Encounter", dates("date", on("2026-01-10"), on("2026-03-10"))) == [
        "both", "jan", "mar"]
    assert await found(store, "Encounter", dates("date", on("2026-06-10"))) == ["both"]
    assert await found(store, "Encounter", dates("date", on("2026-01-10"), negate=True)) == [
        "mar", "undated"]
    assert await found(store, "Encounter", dates("date", on("2026-01-10"), on("2026-03-10"),
                                                 negate=True)) == ["undated"]
    assert await found(store, "Encounter", dates("date", on("2026-12-25"), negate=True)) == [
        "both", "jan", "mar", "undated"]


async def test_number_ranges(store: Store) -> None:
    writer = Writer(store)
    await writer.put("RiskAssessment", "low", NumberEntry("probability", 0.095, 0.105))
    await writer.put("RiskAssessment", "high", NumberEntry("probability", 0.75, 0.85))
    await writer.put("RiskAssessment", "two", NumberEntry("probability", 0.1, 0.1),
                     NumberEntry("probability", 0.9, 0.9))
    about_tenth = (Bound("low", "ge", 0.09), Bound("high", "le", 0.11))
    middle = (Bound("low", "ge", 0.5), Bound("high", "le", 0.85))

    assert await found(store, "RiskAssessment", numbers("probability", about_tenth)) == [
        "low", "two"]
    assert await found(store, "RiskAssessment", numbers("probability", middle)) == ["high"]
    assert await found(store, "RiskAssessment", numbers("probability", (
        Bound("high", "gt", 0.85),))) == ["two"]
    assert await found(store, "RiskAssessment", numbers("probability", (
        Bound("high", "ge", 0.85),))) == ["high", "two"]
    assert await found(store, "RiskAssessment", numbers("probability", (
        Bound("low", "gt", 0.2), Bound("high", "lt", 0.8)))) == []
    assert await found(store, "RiskAssessment", numbers("probability", middle,
                                                        negate=True)) == ["low", "two"]


async def test_quantity_ranges_filter_on_system_and_code_of_the_same_entry(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "mm", QuantityEntry("value-quantity", UCUM, "mm", 4.5, 5.5))
    await writer.put("Observation", "cm", QuantityEntry("value-quantity", UCUM, "cm", 4.5, 5.5))
    await writer.put("Observation", "local", QuantityEntry("value-quantity", "urn:local", "mm",
                                                           4.5, 5.5))
    await writer.put("Observation", "mixed", QuantityEntry("value-quantity", UCUM, "mm", 1, 1),
                     QuantityEntry("value-quantity", UCUM, "cm", 8, 8))
    five = (Bound("low", "ge", 4.0), Bound("high", "le", 6.0))
    above_seven = (Bound("high", "gt", 7.0),)

    def quantity(bounds: tuple[Bound, ...], system: str | None, code: str | None, *,
                 negate: bool = False) -> RangeClause:
        return RangeClause("value-quantity", "quantity", (RangeTest(bounds, system, code),),
                           negate)

    assert await found(store, "Observation", quantity(five, None, None)) == ["cm", "local", "mm"]
    assert await found(store, "Observation", quantity(five, UCUM, "mm")) == ["mm"]
    assert await found(store, "Observation", quantity(five, None, "mm")) == ["local", "mm"]
    assert await found(store, "Observation", quantity(above_seven, UCUM, "cm")) == ["mixed"]
    assert await found(store, "Observation", quantity(above_seven, UCUM, "mm")) == []
    assert await found(store, "Observation", quantity(five, UCUM, "mm", negate=True)) == [
        "cm", "local", "mixed"]
    either = RangeClause("value-quantity", "quantity", (
        RangeTest(five, UCUM, "cm"), RangeTest((Bound("low", "lt", 2.0),), UCUM, "mm")))
    assert await found(store, "Observation", either) == ["cm", "mixed"]


# --- references and uris ----------------------------------------------------------------------

async def test_reference_by_type_and_id_by_id_and_by_url(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "of-patient", subject("Patient", "p1"))
    await writer.put("Observation", "of-group", subject("Group", "p1"))
    await writer.put("Observation", "of-other", subject("Patient", "p2"))
    await writer.put("Observation", "external", ReferenceEntry(
        "subject", None, None, "https://elsewhere.example/fhir/Patient/p1"))
    await writer.put("Observation", "by-performer", subject("Patient", "p1", "performer"))

    def references(*values: ReferenceValue) -> ReferenceClause:
        return ReferenceClause("subject", values)

    assert await found(store, "Observation", references(ReferenceValue("Patient", "p1"))) == [
        "of-patient"]
    assert await found(store, "Observation", references(ReferenceValue(None, "p1"))) == [
        "of-group", "of-patient"]
    assert await found(store, "Observation", references(
        ReferenceValue("Patient", "p1"), ReferenceValue("Patient", "p2"))) == [
        "of-other", "of-patient"]
    assert await found(store, "Observation", references(ReferenceValue(
        None, None, "https://elsewhere.example/fhir/Patient/p1"))) == ["external"]
    assert await found(store, "Observation", references(ReferenceValue("Patient", "p9"))) == []


async def test_uri_exact_below_and_above(store: Store) -> None:
    writer = Writer(store)
    await writer.put("ValueSet", "leaf", UriEntry("url", "http://acme.org/fhir/ValueSet/skin"))
    await writer.put("ValueSet", "root", UriEntry("url", "http://acme.org/fhir"))
    await writer.put("ValueSet", "other", UriEntry("url", "http://other.org/fhir/ValueSet/skin"))
    await writer.put("ValueSet", "wild", UriEntry("url", "urn:a_b:c%d"))
    await writer.put("ValueSet", "tame", UriEntry("url", "urn:axb:cxd"))

    def uris(mode: Literal["exact", "above", "below"], *values: str) -> UriClause:
        return UriClause("url", values, mode)

    assert await found(store, "ValueSet", uris("exact", "http://acme.org/fhir")) == ["root"]
    assert await found(store, "ValueSet", uris("exact", "http://acme.org/fhir/")) == []
    assert await found(store, "ValueSet", uris("below", "http://acme.org/fhir")) == ["leaf",
                                                                                     "root"]
    assert await found(store, "ValueSet", uris("below", "http://acme.org/fhir/ValueSet")) == [
        "leaf"]
    assert await found(store, "ValueSet", uris("above",
                                               "http://acme.org/fhir/ValueSet/skin/v2")) == [
        "leaf", "root"]
    assert await found(store, "ValueSet", uris("above", "http://acme.org/fhir/Other")) == [
        "root"]
    assert await found(store, "ValueSet", uris("below", "urn:a_")) == ["wild"]
    assert await found(store, "ValueSet", uris("below", "urn:a_b:c%")) == ["wild"]
    assert await found(store, "ValueSet", uris("above", "urn:axb:cxd")) == ["tame"]
    assert await found(store, "ValueSet", uris("exact", "urn:a_b:c%d", "http://acme.org/fhir")
                       ) == ["root", "wild"]


# --- :missing ---------------------------------------------------------------------------------

async def test_missing_true_and_false_for_every_entry_kind(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Patient", "full", StringEntry("family", "dupont", "Dupont"),
                     whole_day("birthdate", "1980-01-01"), subject("Practitioner", "d1",
                                                                   "general-practitioner"),
                     TokenEntry("gender", None, "female"))
    await writer.put("Patient", "bare", TokenEntry("gender", None, "male"))
    await writer.put("Patient", "empty")

    for param in ("family", "birthdate", "general-practitioner"):
        assert await found(store, "Patient", MissingClause(param, missing=False)) == ["full"]
        assert await found(store, "Patient", MissingClause(param, missing=True)) == [
            "bare", "empty"]
    assert await found(store, "Patient", MissingClause("gender", missing=False)) == [
        "bare", "full"]
    assert await found(store, "Patient", MissingClause("gender", missing=True)) == ["empty"]


async def test_missing_sees_numbers_quantities_and_uris(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "number", NumberEntry("value", 1, 1))
    await writer.put("Observation", "quantity", QuantityEntry("value", UCUM, "mm", 1, 1))
    await writer.put("Observation", "uri", UriEntry("value", "urn:x"))
    await writer.put("Observation", "nothing", UriEntry("other", "urn:x"))

    assert await found(store, "Observation", MissingClause("value", missing=False)) == [
        "number", "quantity", "uri"]
    assert await found(store, "Observation", MissingClause("value", missing=True)) == [
        "nothing"]


# --- chains -----------------------------------------------------------------------------------

async def _chain_fixture(store: Store) -> Writer:
    writer = Writer(store)
    await writer.put("Practitioner", "martin", StringEntry("name", "martin", "Martin"))
    await writer.put("Practitioner", "durand", StringEntry("name", "durand", "Durand"))
    await writer.put("Patient", "p1", TokenEntry("identifier", NIR, "111"),
                     subject("Practitioner", "martin", "general-practitioner"))
    await writer.put("Patient", "p2", TokenEntry("identifier", NIR, "222"),
                     subject("Practitioner", "durand", "general-practitioner"))
    await writer.put("Group", "p1", TokenEntry("identifier", NIR, "111"))
    await writer.put("Observation", "o1", subject("Patient", "p1"))
    await writer.put("Observation", "o2", subject("Patient", "p2"))
    await writer.put("Observation", "o-group", subject("Group", "p1"))
    await writer.put("Observation", "o-external", ReferenceEntry(
        "subject", None, None, "https://elsewhere.example/fhir/Patient/p1"))
    await writer.put("Observation", "o-performer", subject("Patient", "p1", "performer"))
    return writer


def nir(code: str) -> TokenClause:
    return TokenClause("identifier", (TokenValue(NIR, code),))


async def test_chain_one_hop(store: Store) -> None:
    await _chain_fixture(store)
    assert await found(store, "Observation",
                       ChainClause("subject", "Patient", (nir("111"),))) == ["o1"]
    assert await found(store, "Observation",
                       ChainClause("subject", "Group", (nir("111"),))) == ["o-group"]
    assert await found(store, "Observation",
                       ChainClause("performer", "Patient", (nir("111"),))) == ["o-performer"]
    assert await found(store, "Observation",
                       ChainClause("subject", "Patient", (nir("333"),))) == []
    two_values = TokenClause("identifier", (TokenValue(NIR, "111"), TokenValue(NIR, "222")))
    assert await found(store, "Observation",
                       ChainClause("subject", "Patient", (two_values,))) == ["o1", "o2"]


async def test_chain_inner_clauses_all_hold_on_one_target(store: Store) -> None:
    await _chain_fixture(store)
    both = ChainClause("subject", "Patient", (nir("111"), IdClause(("p1",))))
    assert await found(store, "Observation", both) == ["o1"]
    crossed = ChainClause("subject", "Patient", (nir("111"), IdClause(("p2",))))
    assert await found(store, "Observation", crossed) == []


async def test_chain_two_hops(store: Store) -> None:
    await _chain_fixture(store)
    by_gp_name = ChainClause("subject", "Patient", (
        ChainClause("general-practitioner", "Practitioner", (StringClause("name", ("mar",)),)),))
    assert await found(store, "Observation", by_gp_name) == ["o1"]
    nobody = ChainClause("subject", "Patient", (
        ChainClause("general-practitioner", "Practitioner", (StringClause("name", ("x",)),)),))
    assert await found(store, "Observation", nobody) == []


async def test_chain_ignores_deleted_and_superseded_targets(store: Store) -> None:
    writer = await _chain_fixture(store)
    await writer.put("Patient", "p1", TokenEntry("identifier", NIR, "999"),
                     subject("Practitioner", "martin", "general-practitioner"))
    assert await found(store, "Observation",
                       ChainClause("subject", "Patient", (nir("111"),))) == []
    assert await found(store, "Observation",
                       ChainClause("subject", "Patient", (nir("999"),))) == ["o1"]
    await writer.delete("Practitioner", "martin")
    by_gp_name = ChainClause("subject", "Patient", (
        ChainClause("general-practitioner", "Practitioner", (StringClause("name", ("mar",)),)),))
    assert await found(store, "Observation", by_gp_name) == []
    await writer.delete("Patient", "p2")
    assert await found(store, "Observation",
                       ChainClause("subject", "Patient", (nir("222"),))) == []


# --- _has -------------------------------------------------------------------------------------

async def _has_fixture(store: Store) -> Writer:
    writer = Writer(store)
    await writer.put("Patient", "p1")
    await writer.put("Patient", "p2")
    await writer.put("Patient", "p3")
    await writer.put("Group", "p2")
    await writer.put("Observation", "o1", subject("Patient", "p1"),
                     TokenEntry("code", LOINC, "melanoma"))
    await writer.put("Observation", "o2", subject("Patient", "p2"),
                     TokenEntry("code", LOINC, "naevus"))
    await writer.put("Observation", "o3", subject("Group", "p2"),
                     TokenEntry("code", LOINC, "melanoma"))
    await writer.put("Observation", "o4", subject("Patient", "p3", "performer"),
                     TokenEntry("code", LOINC, "melanoma"))
    await writer.put("Provenance", "v1", subject("Observation", "o2", "target"),
                     subject("Practitioner", "martin", "agent"))
    return writer


def code(value: str) -> TokenClause:
    return TokenClause("code", (TokenValue(LOINC, value),))


async def test_has_finds_resources_designated_by_matching_sources(store: Store) -> None:
    await _has_fixture(store)
    assert await found(store, "Patient",
                       HasClause("Observation", "subject", (code("melanoma"),))) == ["p1"]
    assert await found(store, "Patient",
                       HasClause("Observation", "subject", (code("naevus"),))) == ["p2"]
    assert await found(store, "Group",
                       HasClause("Observation", "subject", (code("melanoma"),))) == ["p2"]
    assert await found(store, "Patient",
                       HasClause("Observation", "performer", (code("melanoma"),))) == ["p3"]
    assert await found(store, "Patient",
                       HasClause("Observation", "subject", (code("unknown"),))) == []
    assert await found(store, "Patient", HasClause("Encounter", "subject", ())) == []
    assert await found(store, "Patient", HasClause("Observation", "subject", ())) == ["p1",
                                                                                      "p2"]


async def test_has_nested_and_mixed_with_a_chain(store: Store) -> None:
    await _has_fixture(store)
    by_agent = HasClause("Observation", "subject", (
        HasClause("Provenance", "target", (ReferenceClause("agent", (
            ReferenceValue("Practitioner", "martin"),)),)),))
    assert await found(store, "Patient", by_agent) == ["p2"]
    by_other_agent = HasClause("Observation", "subject", (
        HasClause("Provenance", "target", (ReferenceClause("agent", (
            ReferenceValue("Practitioner", "durand"),)),)),))
    assert await found(store, "Patient", by_other_agent) == []
    through_chain = HasClause("Observation", "subject", (
        ChainClause("subject", "Patient", (IdClause(("p1",)),)),))
    assert await found(store, "Patient", through_chain) == ["p1"]


async def test_has_ignores_deleted_and_superseded_sources(store: Store) -> None:
    writer = await _has_fixture(store)
    await writer.put("Observation", "o1", subject("Patient", "p1"),
                     TokenEntry("code", LOINC, "naevus"))
    assert await found(store, "Patient",
                       HasClause("Observation", "subject", (code("melanoma"),))) == []
    assert await found(store, "Patient",
                       HasClause("Observation", "subject", (code("naevus"),))) == ["p1", "p2"]
    await writer.delete("Observation", "o2")
    assert await found(store, "Patient",
                       HasClause("Observation", "subject", (code("naevus"),))) == ["p1"]


# --- combinations, versions, paging -----------------------------------------------------------

async def test_clauses_of_every_kind_are_anded(store: Store) -> None:
    writer = Writer(store)
    entries: dict[str, tuple[IndexEntry, ...]] = {
        "all": (StringEntry("family", "dupont", "Dupont"), whole_day("birthdate", "1980-01-01"),
                subject("Practitioner", "d1", "general-practitioner"),
                TokenEntry("gender", None, "female", "female"),
                UriEntry("profile", "http://acme.org/fhir/Patient")),
        "wrong-name": (StringEntry("family", "martin", "Martin"),
                       whole_day("birthdate", "1980-01-01"),
                       subject("Practitioner", "d1", "general-practitioner"),
                       TokenEntry("gender", None, "female", "female"),
                       UriEntry("profile", "http://acme.org/fhir/Patient")),
        "wrong-date": (StringEntry("family", "dupont", "Dupont"),
                       whole_day("birthdate", "1990-01-01"),
                       subject("Practitioner", "d1", "general-practitioner"),
                       TokenEntry("gender", None, "female", "female"),
                       UriEntry("profile", "http://acme.org/fhir/Patient")),
        "wrong-gp": (StringEntry("family", "dupont", "Dupont"),
                     whole_day("birthdate", "1980-01-01"),
                     subject("Practitioner", "d2", "general-practitioner"),
                     TokenEntry("gender", None, "female", "female"),
                     UriEntry("profile", "http://acme.org/fhir/Patient")),
    }
    for id, index in entries.items():
        await writer.put("Patient", id, *index)
    where: tuple[Clause, ...] = (
        StringClause("family", ("dup",)),
        dates("birthdate", (Bound("low", "ge", day("1980-01-01")),
                            Bound("high", "le", day("1980-01-01", end=True)))),
        ReferenceClause("general-practitioner", (ReferenceValue("Practitioner", "d1"),)),
        TextClause("gender", ("fem",)),
        UriClause("profile", ("http://acme.org/fhir",), "below"),
        MissingClause("deceased", missing=True),
    )
    assert await found(store, "Patient", *where) == ["all"]
    assert await found(store, "Patient", *where[1:]) == ["all", "wrong-name"]
    assert await found(store, "Patient", *where, MissingClause("family", missing=True)) == []
    assert await found(store, "Patient", *where, TokenClause("gender", (
        TokenValue(None, "female"),))) == ["all"]


async def test_deleted_and_superseded_versions_never_match(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Patient", "renamed", StringEntry("family", "dupont", "Dupont"),
                     whole_day("birthdate", "1980-01-01"), UriEntry("profile", "urn:old"),
                     subject("Practitioner", "d1", "general-practitioner"))
    await writer.put("Patient", "renamed", StringEntry("family", "martin", "Martin"))
    await writer.put("Patient", "gone", StringEntry("family", "dupont", "Dupont"),
                     whole_day("birthdate", "1980-01-01"), UriEntry("profile", "urn:old"),
                     subject("Practitioner", "d1", "general-practitioner"))
    await writer.delete("Patient", "gone")

    assert await found(store, "Patient", StringClause("family", ("dup",))) == []
    assert await found(store, "Patient", StringClause("family", ("mar",))) == ["renamed"]
    assert await found(store, "Patient", dates("birthdate", (
        Bound("low", "ge", day("1970-01-01")),))) == []
    assert await found(store, "Patient", UriClause("profile", ("urn:old",))) == []
    assert await found(store, "Patient", ReferenceClause("general-practitioner", (
        ReferenceValue("Practitioner", "d1"),))) == []
    assert await found(store, "Patient", MissingClause("birthdate", missing=True)) == [
        "renamed"]
    assert await found(store, "Patient", MissingClause("family", missing=False)) == ["renamed"]
    assert await found(store, "Patient", dates("birthdate", (
        Bound("low", "ge", day("1970-01-01")),), negate=True)) == ["renamed"]


async def test_paging_and_total_with_the_new_clauses(store: Store) -> None:
    writer = Writer(store)
    for n in range(7):
        await writer.put("Observation", f"o{n}", subject("Patient", "p1"),
                         NumberEntry("value", n, n), StringEntry("note", f"note {n}", f"Note {n}"))
    await writer.put("Observation", "other", subject("Patient", "p2"), NumberEntry("value", 3, 3))
    await writer.put("Patient", "p1", TokenEntry("identifier", NIR, "111"))
    where: tuple[Clause, ...] = (
        ChainClause("subject", "Patient", (nir("111"),)),
        numbers("value", (Bound("low", "ge", 1.0),)),
        StringClause("note", ("note",)),
    )

    first = await store.search(SearchQuery("Observation", where, count=2, want_total=True))
    assert [m.id for m in first.matches] == ["o1", "o2"] and first.total == 6
    seen = [m.id for m in first.matches]
    last = first.matches[-1]
    while True:
        page = await store.search(SearchQuery(
            "Observation", where, count=2, after=(last.resource_type, last.id),
            want_total=True))
        assert page.total == 6
        if not page.matches:
            break
        seen.extend(m.id for m in page.matches)
        last = page.matches[-1]
    assert seen == ["o1", "o2", "o3", "o4", "o5", "o6"]
    by_offset = await store.search(SearchQuery("Observation", where, count=2, offset=4))
    assert [m.id for m in by_offset.matches] == ["o5", "o6"]
    only_total = await store.search(SearchQuery("Observation", where, count=0, want_total=True))
    assert only_total.matches == () and only_total.total == 6
