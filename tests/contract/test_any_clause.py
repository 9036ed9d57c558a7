"""The contract of ``AnyClause`` (an OR of whole clauses), the same for every backend.

Resources are written with hand-made index entries, as in ``test_search_clauses``; each test
checks which resources a query tree holding an ``AnyClause`` matches.
"""

from __future__ import annotations

from fhir_server.storage.index import ReferenceEntry, StringEntry, TokenEntry
from fhir_server.storage.protocol import Store
from fhir_server.storage.query import (
    AllClause,
    AnyClause,
    ChainClause,
    HasClause,
    IdClause,
    MissingClause,
    ReferenceClause,
    ReferenceValue,
    StringClause,
    TokenClause,
    TokenValue,
    TypeClause,
)
from tests.contract.test_search_clauses import LOINC, SNOMED, Writer, found, subject


def code(system: str, value: str) -> TokenClause:
    return TokenClause("code", (TokenValue(system, value),))


def refers(param: str, resource_type: str, id: str) -> ReferenceClause:
    return ReferenceClause(param, (ReferenceValue(resource_type, id),))


async def _observations(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Practitioner", "martin", StringEntry("name", "martin", "Martin"))
    await writer.put("Practitioner", "durand", StringEntry("name", "durand", "Durand"))
    await writer.put("Patient", "p1", StringEntry("family", "dupont", "Dupont"))
    await writer.put("Patient", "p2", StringEntry("family", "leroy", "Leroy"))
    await writer.put("Observation", "by-subject", subject("Patient", "p1"),
                     TokenEntry("code", LOINC, "8310-5"))
    await writer.put("Observation", "by-performer", subject("Patient", "p2"),
                     subject("Patient", "p1", "performer"), TokenEntry("code", SNOMED, "1"))
    await writer.put("Observation", "by-practitioner", subject("Patient", "p2"),
                     subject("Practitioner", "martin", "performer"),
                     TokenEntry("code", LOINC, "29463-7"))
    await writer.put("Observation", "unrelated", subject("Patient", "p2"),
                     subject("Practitioner", "durand", "performer"),
                     TokenEntry("code", LOINC, "8310-5"))
    await writer.put("Observation", "other-param", ReferenceEntry("focus", "Patient", "p1", None))


async def test_any_of_token_clauses(store: Store) -> None:
    await _observations(store)
    either = AnyClause((code(SNOMED, "1"), code(LOINC, "29463-7")))
    assert await found(store, "Observation", either) == ["by-performer", "by-practitioner"]
    assert await found(store, "Observation", AnyClause((code(SNOMED, "1"),))) == [
        "by-performer"]
    assert await found(store, "Observation", AnyClause((code(SNOMED, "999"),))) == []


async def test_any_of_references_on_different_params(store: Store) -> None:
    await _observations(store)
    in_p1 = AnyClause((refers("subject", "Patient", "p1"), refers("performer", "Patient", "p1")))
    assert await found(store, "Observation", in_p1) == ["by-performer", "by-subject"]
    in_p2 = AnyClause((refers("subject", "Patient", "p2"), refers("performer", "Patient", "p2")))
    assert await found(store, "Observation", in_p2) == [
        "by-performer", "by-practitioner", "unrelated"]


async def test_any_of_mixed_clause_kinds(store: Store) -> None:
    await _observations(store)
    mixed = AnyClause((IdClause(("unrelated",)), MissingClause("subject", missing=True),
                       code(SNOMED, "1")))
    assert await found(store, "Observation", mixed) == ["by-performer", "other-param",
                                                        "unrelated"]


async def test_any_containing_a_chain(store: Store) -> None:
    await _observations(store)
    by_martin_or_about_p1 = AnyClause((
        ChainClause("performer", "Practitioner", (StringClause("name", ("mar",)),)),
        refers("subject", "Patient", "p1")))
    assert await found(store, "Observation", by_martin_or_about_p1) == [
        "by-practitioner", "by-subject"]
    nobody = AnyClause((ChainClause("performer", "Practitioner",
                                    (StringClause("name", ("x",)),)),))
    assert await found(store, "Observation", nobody) == []


async def test_any_containing_a_has(store: Store) -> None:
    await _observations(store)
    observed_by_martin = HasClause("Observation", "subject", (
        ChainClause("performer", "Practitioner", (StringClause("name", ("mar",)),)),))
    either = AnyClause((observed_by_martin, StringClause("family", ("dup",))))
    assert await found(store, "Patient", either) == ["p1", "p2"]
    assert await found(store, "Patient", AnyClause((observed_by_martin,))) == ["p2"]


async def test_any_is_and_ed_with_the_other_clauses(store: Store) -> None:
    await _observations(store)
    in_p1 = AnyClause((refers("subject", "Patient", "p1"), refers("performer", "Patient", "p1")))
    assert await found(store, "Observation", in_p1, code(LOINC, "8310-5")) == ["by-subject"]
    assert await found(store, "Observation", code(SNOMED, "1"), in_p1) == ["by-performer"]
    assert await found(store, "Observation", in_p1, IdClause(("by-performer", "unrelated"))) == [
        "by-performer"]
    assert await found(store, "Observation", in_p1, code(LOINC, "29463-7")) == []


async def test_nested_any_clauses(store: Store) -> None:
    await _observations(store)
    nested = AnyClause((AnyClause((code(SNOMED, "1"),)), AnyClause((IdClause(("unrelated",)),))))
    assert await found(store, "Observation", nested) == ["by-performer", "unrelated"]


async def test_empty_any_matches_nothing(store: Store) -> None:
    await _observations(store)
    assert await found(store, "Observation", AnyClause(())) == []
    assert await found(store, None, AnyClause(())) == []
    assert await found(store, "Observation", AnyClause((AnyClause(()),))) == []


async def test_all_clause_groups_conditions_inside_an_alternative(store: Store) -> None:
    """Per-type alternatives, as a search over every type of a compartment builds them."""
    await _observations(store)
    per_type = AnyClause((
        AllClause((TypeClause(("Observation",)), refers("subject", "Patient", "p1"))),
        AllClause((TypeClause(("Patient",)), IdClause(("p1",)))),
    ))
    assert await found(store, None, per_type) == ["by-subject", "p1"]
    # ``focus`` designates p1 too, but only the Observation alternative's params count
    assert "other-param" not in await found(store, None, per_type)
    assert await found(store, None, AnyClause((AllClause(()),))) != []
