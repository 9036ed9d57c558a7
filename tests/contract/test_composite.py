"""Composite clauses on every backend: both components are matched on ONE composite entry.

Entries are hand-made as ``search/values/composite.py`` makes them: one per context element
(an Observation component…), its first component's token with its second component's value.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from fhir_server.storage.index import CompositeEntry, TokenEntry
from fhir_server.storage.protocol import Store
from fhir_server.storage.query import (
    AnyClause,
    Bound,
    Clause,
    CompositeClause,
    CompositeValue,
    MissingClause,
    RangeTest,
    ReferenceValue,
    SearchQuery,
    SecondComponent,
    StringStart,
    TokenClause,
    TokenValue,
    UriEquals,
)
from fhir_server.storage.sqlite import SqliteStore
from fhir_server.storage.sqlite.compile import compile_search
from tests.contract.test_search_clauses import Writer, found

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
PRESSURE = "component-code-value-quantity"


def pressure(code: str, value: float, param: str = PRESSURE) -> CompositeEntry:
    return CompositeEntry(param, LOINC, code, value_system=UCUM, value_code="mm[Hg]",
                          low=value - 0.5, high=value + 0.5)


def composite(param: str, *values: tuple[TokenValue, SecondComponent]) -> CompositeClause:
    return CompositeClause(param, tuple(CompositeValue(first, second) for first, second in values))


def above(value: float, *, system: str | None = None, code: str | None = None) -> RangeTest:
    return RangeTest((Bound("low", "gt", value),), system, code)


async def _blood_pressures(store: Store) -> Writer:
    writer = Writer(store)
    await writer.put("Observation", "high", pressure(SYSTOLIC, 160), pressure(DIASTOLIC, 95))
    await writer.put("Observation", "crossed", pressure(SYSTOLIC, 120), pressure(DIASTOLIC, 150))
    await writer.put("Observation", "normal", pressure(SYSTOLIC, 115), pressure(DIASTOLIC, 75))
    return writer


async def test_both_components_match_on_the_same_entry(store: Store) -> None:
    await _blood_pressures(store)
    systolic_above_140 = composite(PRESSURE, (TokenValue(LOINC, SYSTOLIC), above(140)))
    assert await found(store, "Observation", systolic_above_140) == ["high"]
    diastolic_above_140 = composite(PRESSURE, (TokenValue(None, DIASTOLIC), above(140)))
    assert await found(store, "Observation", diastolic_above_140) == ["crossed"]
    assert await found(store, "Observation", composite(
        PRESSURE, (TokenValue(LOINC, SYSTOLIC), above(200)))) == []


async def test_values_are_ored_and_clauses_anded(store: Store) -> None:
    await _blood_pressures(store)
    either = composite(PRESSURE, (TokenValue(LOINC, SYSTOLIC), above(140)),
                       (TokenValue(LOINC, DIASTOLIC), above(140)))
    assert await found(store, "Observation", either) == ["crossed", "high"]
    systolic_above_110 = composite(PRESSURE, (TokenValue(LOINC, SYSTOLIC), above(110)))
    diastolic_below_80 = composite(PRESSURE, (TokenValue(LOINC, DIASTOLIC),
                                              RangeTest((Bound("high", "lt", 80),))))
    assert await found(store, "Observation", systolic_above_110, diastolic_below_80) == [
        "normal"]


async def test_composites_combine_with_other_clauses(store: Store) -> None:
    writer = await _blood_pressures(store)
    await writer.put("Observation", "other-status", TokenEntry("status", None, "preliminary"),
                     pressure(SYSTOLIC, 170))
    systolic_above_140 = composite(PRESSURE, (TokenValue(LOINC, SYSTOLIC), above(140)))
    preliminary = TokenClause("status", (TokenValue(None, "preliminary"),))
    assert await found(store, "Observation", preliminary, systolic_above_140) == [
        "other-status"]
    assert await found(store, "Observation", systolic_above_140) == ["high", "other-status"]
    assert await found(store, "Observation", MissingClause(PRESSURE, True)) == []
    assert await found(store, "Observation", MissingClause("code-value-string", False)) == []


async def test_the_first_token_system_forms(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "loinc", pressure(SYSTOLIC, 160))
    await writer.put("Observation", "no-system", CompositeEntry(
        PRESSURE, None, SYSTOLIC, value_system=UCUM, value_code="mm[Hg]", low=159.5, high=160.5))
    high = above(140)
    assert await found(store, "Observation", composite(
        PRESSURE, (TokenValue(None, SYSTOLIC), high))) == ["loinc", "no-system"]
    assert await found(store, "Observation", composite(
        PRESSURE, (TokenValue(LOINC, SYSTOLIC), high))) == ["loinc"]
    assert await found(store, "Observation", composite(
        PRESSURE, (TokenValue("", SYSTOLIC), high))) == ["no-system"]
    assert await found(store, "Observation", composite(
        PRESSURE, (TokenValue(LOINC, None), high))) == ["loinc"]


async def test_quantity_units_and_canonical_entries(store: Store) -> None:
    writer = Writer(store)
    param = "code-value-quantity"
    await writer.put("Observation", "milligrams",
                     CompositeEntry(param, LOINC, "x", value_system=UCUM, value_code="mg",
                                    low=5.35, high=5.45),
                     CompositeEntry(f"{param}:canonical", LOINC, "x", value_system=UCUM,
                                    value_code="canonical:g", low=0.00535, high=0.00545))
    await writer.put("Observation", "local-unit",
                     CompositeEntry(param, LOINC, "x", value_system="urn:units", value_code="mg",
                                    low=5.35, high=5.45))
    code = TokenValue(LOINC, "x")
    assert await found(store, "Observation", composite(
        param, (code, above(5, system=UCUM, code="mg")))) == ["milligrams"]
    assert await found(store, "Observation", composite(
        param, (code, above(5, code="mg")))) == ["local-unit", "milligrams"]
    in_grams = AnyClause((
        composite(param, (code, above(0.005, system=UCUM, code="g"))),
        composite(f"{param}:canonical", (code, above(0.005, system=UCUM, code="canonical:g")))))
    assert await found(store, "Observation", in_grams) == ["milligrams"]


async def test_date_and_number_ranges(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Observation", "march", CompositeEntry(
        "code-value-date", LOINC, "x", low="2024-03-05T00:00:00.000000Z",
        high="2024-03-05T23:59:59.999999Z"))
    await writer.put("Observation", "may", CompositeEntry(
        "code-value-date", LOINC, "x", low="2024-05-01T00:00:00.000000Z",
        high="2024-05-01T23:59:59.999999Z"))
    await writer.put("RiskAssessment", "likely", CompositeEntry(
        "outcome-probability", "urn:o", "melanoma", low=0.745, high=0.755))
    await writer.put("RiskAssessment", "unlikely", CompositeEntry(
        "outcome-probability", "urn:o", "melanoma", low=0.045, high=0.055))
    in_march = RangeTest((Bound("low", "ge", "2024-03-01T00:00:00.000000Z"),
                          Bound("high", "le", "2024-03-31T23:59:59.999999Z")))
    assert await found(store, "Observation", composite(
        "code-value-date", (TokenValue(None, "x"), in_march))) == ["march"]
    assert await found(store, "RiskAssessment", composite(
        "outcome-probability", (TokenValue("urn:o", "melanoma"), above(0.5)))) == ["likely"]


async def test_token_string_reference_and_uri_components(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Group", "phototype-iv", CompositeEntry(
        "characteristic-value", "urn:c", "phototype", value_system="urn:fitzpatrick",
        value_code="IV"))
    await writer.put("Group", "smoker", CompositeEntry(
        "characteristic-value", "urn:c", "smoker", value_code="true"))
    await writer.put("Observation", "pigmented", CompositeEntry(
        "code-value-string", LOINC, "x", normalized="lesion pigmentee%_",
        exact="Lésion pigmentée%_"))
    await writer.put("DocumentReference", "replacing", CompositeEntry(
        "relationship", None, "replaces", target_type="DocumentReference", target_id="d0"))
    await writer.put("DocumentReference", "appending", CompositeEntry(
        "relationship", None, "appends", target_type="DocumentReference", target_id="9",
        url="https://other.example/DocumentReference/9"))
    await writer.put("Questionnaire", "site", CompositeEntry(
        "item-code-definition", "urn:q", "site", url="https://pictaderm.fr/lesion#site"))

    def group(system: str | None, code: str) -> CompositeClause:
        return composite("characteristic-value", (TokenValue(None, "phototype"),
                                                  TokenValue(system, code)))
    assert await found(store, "Group", group(None, "IV")) == ["phototype-iv"]
    assert await found(store, "Group", group("urn:fitzpatrick", "IV")) == ["phototype-iv"]
    assert await found(store, "Group", group("", "IV")) == []
    assert await found(store, "Group", composite("characteristic-value", (
        TokenValue(None, "smoker"), TokenValue("", "true")))) == ["smoker"]

    def text(prefix: str) -> CompositeClause:
        return composite("code-value-string", (TokenValue(LOINC, "x"), StringStart(prefix)))
    assert await found(store, "Observation", text("lesion pig")) == ["pigmented"]
    assert await found(store, "Observation", text("lesion pigmentee%_")) == ["pigmented"]
    assert await found(store, "Observation", text("lesion_")) == []
    assert await found(store, "Observation", text("pigmentee")) == []

    def related(code: str, target: ReferenceValue) -> CompositeClause:
        return composite("relationship", (TokenValue(None, code), target))
    documents = "DocumentReference"
    assert await found(store, documents, related("replaces", ReferenceValue(documents, "d0"))) == [
        "replacing"]
    assert await found(store, documents, related("appends", ReferenceValue(documents, "d0"))) == []
    assert await found(store, documents, related("appends", ReferenceValue(
        None, None, "https://other.example/DocumentReference/9"))) == ["appending"]
    assert await found(store, "Questionnaire", composite("item-code-definition", (
        TokenValue("urn:q", "site"), UriEquals("https://pictaderm.fr/lesion#site")))) == ["site"]
    assert await found(store, "Questionnaire", composite("item-code-definition", (
        TokenValue("urn:q", "site"), UriEquals("https://pictaderm.fr/lesion")))) == []


async def test_values_are_matched_literally(store: Store) -> None:
    writer = Writer(store)
    await writer.put("Group", "odd", CompositeEntry(
        "characteristic-value", "$where", "{\"$gt\": \"\"}", value_code="' OR 1=1 --"))
    await writer.put("Group", "plain", CompositeEntry(
        "characteristic-value", "urn:c", "a", value_code="b"))
    odd = composite("characteristic-value", (TokenValue("$where", "{\"$gt\": \"\"}"),
                                             TokenValue(None, "' OR 1=1 --")))
    assert await found(store, "Group", odd) == ["odd"]
    assert await found(store, "Group", composite("characteristic-value", (
        TokenValue(None, "{\"$gt\": \"\"}"), TokenValue(None, "b")))) == []


async def test_an_update_replaces_the_entries_and_a_deletion_removes_them(store: Store) -> None:
    writer = await _blood_pressures(store)
    systolic_above_140 = composite(PRESSURE, (TokenValue(LOINC, SYSTOLIC), above(140)))
    await writer.put("Observation", "high", pressure(SYSTOLIC, 130))
    await writer.put("Observation", "normal", pressure(SYSTOLIC, 145))
    assert await found(store, "Observation", systolic_above_140) == ["normal"]
    await writer.delete("Observation", "normal")
    assert await found(store, "Observation", systolic_above_140) == []


# --- SQLite: the lookup index, and a file written before the table existed ---------------------

def _plan(path: Path, *where: Clause) -> list[str]:
    page = compile_search(SearchQuery("Observation", where)).page
    with closing(sqlite3.connect(path)) as connection:
        return [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {page.text}",
                                                     page.params)]


async def test_sqlite_reads_a_composite_from_its_index(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    await store.start()
    await store.close()
    plan = _plan(path, composite(PRESSURE, (TokenValue(LOINC, SYSTOLIC), above(140))))
    assert any("idx_composite_param_code_system_value_code_low (param=? AND code=? AND "
               "system=?)" in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan


async def test_sqlite_adds_the_composite_table_to_an_older_file(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    first = SqliteStore(path)
    await first.start()
    await first.close()
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("DROP TABLE idx_composite")
        connection.execute("PRAGMA user_version = 3")
    second = SqliteStore(path)
    await second.start()
    try:
        await Writer(second).put("Observation", "high", pressure(SYSTOLIC, 160))
        assert await found(second, "Observation", composite(
            PRESSURE, (TokenValue(LOINC, SYSTOLIC), above(140)))) == ["high"]
    finally:
        await second.close()
