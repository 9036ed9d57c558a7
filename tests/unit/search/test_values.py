"""Value → index entry conversion, per parameter type and FHIR value type."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_server.crypto import FieldCipher
from fhir_server.engine.instants import fhir_range
from fhir_server.search.normalize import normalize_string
from fhir_server.search.values import (
    Converter,
    IdentifierProtection,
    date,
    normalized_text,
    number,
    quantity,
    reference,
    string,
    token,
    uri,
)
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
from tests.unit.search.conftest import INS_NIR, NIR


@pytest.fixture(scope="module")
def protection(cipher: FieldCipher) -> IdentifierProtection:
    return IdentifierProtection(cipher.blind_index, cipher.is_sensitive_identifier)


def _convert(converter: Converter | None, value: Any, code: str = "p") -> list[IndexEntry]:
    assert converter is not None
    found: list[IndexEntry] = []
    converter(code, value, found)
    return found


# --- token ------------------------------------------------------------------------------------

def test_a_coding_gives_system_code_and_normalised_display(
        protection: IdentifierProtection) -> None:
    coding = {"system": "http://snomed.info/sct", "code": "39937001", "display": "Peau  Lésée"}
    assert _convert(token.converter("Coding", protection), coding) == [
        TokenEntry("p", "http://snomed.info/sct", "39937001", "peau lesee")]


def test_a_codeable_concept_gives_each_coding_and_its_text(
        protection: IdentifierProtection) -> None:
    concept = {"coding": [{"system": "http://loinc.org", "code": "8867-4"},
                          {"system": "http://snomed.info/sct", "code": "364075005"}],
               "text": "Fréquence cardiaque"}
    assert _convert(token.converter("CodeableConcept", protection), concept) == [
        TokenEntry("p", "http://loinc.org", "8867-4"),
        TokenEntry("p", "http://snomed.info/sct", "364075005"),
        TokenEntry("p", None, None, "frequence cardiaque")]
    assert _convert(token.converter("CodeableConcept", protection), {"text": "Eczéma"}) == [
        TokenEntry("p", None, None, "eczema")]


def test_an_identifier_gives_system_value_and_type_text(
        protection: IdentifierProtection) -> None:
    identifier = {"system": "https://pharmacie.example.fr/ipp", "value": "IPP-42",
                  "type": {"text": "Identifiant Patient"}}
    assert _convert(token.converter("Identifier", protection), identifier, "identifier") == [
        TokenEntry("identifier", "https://pharmacie.example.fr/ipp", "IPP-42",
                   "identifiant patient")]


def test_a_nir_is_blind_indexed_and_of_type_carries_the_blind_value(
        protection: IdentifierProtection, cipher: FieldCipher) -> None:
    identifier = {"system": INS_NIR, "value": NIR, "type": {"coding": [
        {"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203",
         "code": "INS-NIR"}]}}
    blind = cipher.blind_index(INS_NIR, NIR)
    clear, blind_of_type = token.of_type_search_codes(
        protection, "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "INS-NIR", NIR)
    entries = _convert(token.converter("Identifier", protection), identifier, "identifier")
    assert entries == [
        TokenEntry("identifier", INS_NIR, blind),
        TokenEntry("identifier:of-type",
                   "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", blind_of_type)]
    assert all(NIR not in str(entry) for entry in entries)
    assert blind.startswith("hmac:")
    assert blind_of_type.startswith("INS-NIR|hmac:") and blind not in blind_of_type
    assert clear == f"INS-NIR|{NIR}"


@pytest.mark.parametrize(("type_system", "type_code"), [
    ("https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "INS-NIR"),
    (None, "NIA"), ("urn:système \"é\"", "ÉTAT\\x")])
def test_the_of_type_blind_index_key_is_the_json_of_the_type_coding(
        protection: IdentifierProtection, cipher: FieldCipher, type_system: str | None,
        type_code: str) -> None:
    """Stored ``:of-type`` entries were computed with this key: it must not change."""
    coding = {"code": type_code} if type_system is None else {"system": type_system,
                                                              "code": type_code}
    identifier = {"system": INS_NIR, "value": NIR, "type": {"coding": [coding]}}
    key = f"{token.OF_TYPE_KEY}:{json.dumps([type_system or '', type_code])}"
    assert _convert(token.converter("Identifier", protection), identifier, "identifier")[1] == \
        TokenEntry("identifier:of-type", type_system, f"{type_code}|{cipher.blind_index(key, NIR)}")


def test_identifiers_of_other_systems_keep_their_value_in_of_type(
        protection: IdentifierProtection) -> None:
    identifier = {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810000012345",
                  "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                       "code": "PRN"}]}}
    entries = _convert(token.converter("Identifier", protection), identifier, "identifier")
    assert TokenEntry("identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203",
                      "PRN|810000012345") in entries


def test_an_identifier_without_value_gives_nothing(protection: IdentifierProtection) -> None:
    assert _convert(token.converter("Identifier", protection), {"system": INS_NIR}) == []


def test_contact_points_booleans_and_codes(protection: IdentifierProtection) -> None:
    assert _convert(token.converter("ContactPoint", protection),
                    {"system": "email", "value": "lea@example.fr"}) == [
        TokenEntry("p", None, protection.contact_point("lea@example.fr"))]
    assert protection.contact_point("lea@example.fr").startswith("hmac:")
    assert _convert(token.converter("boolean", protection), True) == [
        TokenEntry("p", None, "true")]
    assert _convert(token.converter("boolean", protection), False) == [
        TokenEntry("p", None, "false")]
    assert _convert(token.converter("code", protection), "requested") == [
        TokenEntry("p", None, "requested")]
    assert token.converter("Period", protection) is None


def test_token_values_of_unknown_type_are_told_apart_by_shape(
        protection: IdentifierProtection, cipher: FieldCipher) -> None:
    convert = token.converter(None, protection)
    assert _convert(convert, {"coding": [{"code": "a"}]}) == [TokenEntry("p", None, "a")]
    assert _convert(convert, {"system": "s", "code": "b"}) == [TokenEntry("p", "s", "b")]
    assert _convert(convert, {"system": "phone", "value": "06"}) == [
        TokenEntry("p", None, protection.contact_point("06"))]
    assert _convert(convert, {"system": INS_NIR, "value": NIR}) == [
        TokenEntry("p", INS_NIR, cipher.blind_index(INS_NIR, NIR))]
    assert _convert(convert, False) == [TokenEntry("p", None, "false")]


# --- string -----------------------------------------------------------------------------------

def test_a_human_name_gives_one_entry_per_part(protection: IdentifierProtection) -> None:
    name = {"use": "official", "family": "Dupont-Lefèvre", "given": ["Éloïse", "Anne"],
            "prefix": ["Mme"], "suffix": ["PhD"], "text": "Mme Éloïse Dupont-Lefèvre"}
    assert _convert(string.converter("HumanName", protection), name) == [
        StringEntry("p", "dupont-lefevre", "Dupont-Lefèvre"),
        StringEntry("p", "eloise", "Éloïse"),
        StringEntry("p", "anne", "Anne"),
        StringEntry("p", "mme", "Mme"),
        StringEntry("p", "phd", "PhD"),
        StringEntry("p", "mme eloise dupont-lefevre", "Mme Éloïse Dupont-Lefèvre")]


def test_an_address_gives_one_entry_per_part(protection: IdentifierProtection) -> None:
    address = {"use": "home", "line": ["12 rue de l'Église", "Bât. B"], "city": "Évry",
               "district": "Essonne", "state": "IDF", "postalCode": "91000", "country": "FR"}
    assert [e.exact for e in _convert(string.converter("Address", protection), address)
            if isinstance(e, StringEntry)] == [
        "12 rue de l'Église", "Bât. B", "Évry", "Essonne", "IDF", "91000", "FR"]


def test_plain_strings_are_normalised_and_kept_exact(protection: IdentifierProtection) -> None:
    assert _convert(string.converter("markdown", protection), "  Lésion   PIGMENTÉE ") == [
        StringEntry("p", "lesion pigmentee", "  Lésion   PIGMENTÉE ")]
    assert _convert(string.converter("string", protection), "   ") == []
    assert string.converter("Quantity", protection) is None


@pytest.mark.parametrize("text", ["Dupont", "75002", "MARTIN", "  Jean   PAUL ", "O'Neil-Smith",
                                  "", "ABC\tdef", "Éloïse", "ß straße", "Ǆ"])
def test_the_ascii_shortcut_normalises_like_normalize_string(text: str) -> None:
    assert normalized_text(text) == normalize_string(text)


_TRICKY = ("\u00a0", "\u0085", "\u0300", "\u0345", "\u034f", "\u2028", "\u3000", "\u00df", "\u0153",
           "\u0130", "\ufb01", "\u01c4", "\u00b5", "\u00bd", "\x1f", "\t", " ", "A", "z", "0")


def test_every_latin_1_character_normalises_like_normalize_string() -> None:
    for code in range(256):
        for text in (chr(code), f"Hé{chr(code)}", f" {chr(code)}  ÉA", f"{chr(code)}Ü"):
            assert normalized_text(text) == normalize_string(text), repr(text)
        for neighbour in _TRICKY:
            text = f"{chr(code)}{neighbour}é"
            assert normalized_text(text) == normalize_string(text), repr(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(max_codepoint=0x24F), st.sampled_from(_TRICKY),
                                  st.characters())))
def test_normalized_text_is_normalize_string(text: str) -> None:
    assert normalized_text(text) == normalize_string(text)


# --- date -------------------------------------------------------------------------------------

def test_dates_cover_their_precision(protection: IdentifierProtection) -> None:
    convert = date.converter("dateTime", protection)
    assert _convert(convert, "2024-03") == [
        DateEntry("p", "2024-03-01T00:00:00.000000Z", "2024-03-31T23:59:59.999999Z")]
    assert _convert(convert, "2024-03-05T10:00:00+01:00") == [
        DateEntry("p", "2024-03-05T09:00:00.000000Z", "2024-03-05T09:00:00.999999Z")]
    assert _convert(date.converter("date", protection), "1980-02-03") == [
        DateEntry("p", "1980-02-03T00:00:00.000000Z", "1980-02-03T23:59:59.999999Z")]


@pytest.mark.parametrize("day", ["1980-02-03", "2024-02-29", "2000-12-31", "0001-01-01"])
def test_the_full_date_shortcut_agrees_with_fhir_range(day: str) -> None:
    assert date.date_range(day) == fhir_range(day)


@pytest.mark.parametrize("bad", ["2023-02-29", "2024-13-01", "yesterday", "20240305", ""])
def test_a_date_that_does_not_parse_is_skipped(bad: str, protection: IdentifierProtection) -> None:
    assert _convert(date.converter("dateTime", protection), bad) == []


def test_a_period_spans_start_to_end_open_ends_unbounded(
        protection: IdentifierProtection) -> None:
    convert = date.converter("Period", protection)
    assert _convert(convert, {"start": "2024-03-05", "end": "2024-03"}) == [
        DateEntry("p", "2024-03-05T00:00:00.000000Z", "2024-03-31T23:59:59.999999Z")]
    assert _convert(convert, {"start": "2024"}) == [
        DateEntry("p", "2024-01-01T00:00:00.000000Z", date.HIGHEST)]
    assert _convert(convert, {"end": "2024"}) == [
        DateEntry("p", date.LOWEST, "2024-12-31T23:59:59.999999Z")]
    assert _convert(convert, {}) == []
    assert _convert(convert, {"start": "garbage"}) == []


def test_a_timing_gives_its_events(protection: IdentifierProtection) -> None:
    timing = {"event": ["2024-03-05", "2024-03-06"], "repeat": {"frequency": 1}}
    assert [e.low for e in _convert(date.converter("Timing", protection), timing)
            if isinstance(e, DateEntry)] == ["2024-03-05T00:00:00.000000Z",
                                             "2024-03-06T00:00:00.000000Z"]


# --- number -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "low", "high"), [
    (100, 99.5, 100.5),
    (1.5, 1.45, 1.55),
    (Decimal("1.50"), 1.495, 1.505),
    ("0.001", 0.0005, 0.0015),
    (1e-05, 0.000005, 0.000015),
    (-2, -2.5, -1.5),
])
def test_numbers_cover_their_written_precision(written: Any, low: float, high: float) -> None:
    bounds = number.precision_range(written)
    assert bounds is not None
    assert bounds[0] == pytest.approx(low)
    assert bounds[1] == pytest.approx(high)


@pytest.mark.parametrize("not_a_number", [True, "abc", None, float("nan"), {"value": 1}])
def test_non_numbers_have_no_range(not_a_number: Any) -> None:
    assert number.precision_range(not_a_number) is None


def test_number_values_and_ranges(protection: IdentifierProtection) -> None:
    assert _convert(number.converter("integer", protection), 3) == [NumberEntry("p", 2.5, 3.5)]
    assert _convert(number.converter("Range", protection), {"low": {"value": 10}}) == [
        NumberEntry("p", 9.5, math.inf)]
    assert number.converter("string", protection) is None


# --- quantity ---------------------------------------------------------------------------------

def test_a_quantity_gives_system_code_and_precision_range(
        protection: IdentifierProtection) -> None:
    convert = quantity.converter("Quantity", protection)
    [entry, in_grams] = _convert(convert, {"value": 5.4, "unit": "mg",
                                           "system": "http://unitsofmeasure.org", "code": "mg"})
    assert isinstance(entry, QuantityEntry) and isinstance(in_grams, QuantityEntry)
    assert (in_grams.param, in_grams.code) == ("p:canonical", "canonical:g")
    assert [in_grams.low, in_grams.high] == pytest.approx([0.00535, 0.00545])
    assert (entry.system, entry.code) == ("http://unitsofmeasure.org", "mg")
    assert [entry.low, entry.high] == pytest.approx([5.35, 5.45])
    assert _convert(convert, {"value": 12, "unit": "comprimés"}) == [
        QuantityEntry("p", None, "comprimés", 11.5, 12.5)]
    assert _convert(convert, {"unit": "mg"}) == []


def test_age_duration_money_and_range(protection: IdentifierProtection) -> None:
    assert _convert(quantity.converter("Age", protection),
                    {"value": 42, "system": "http://unitsofmeasure.org", "code": "a"}) == [
        QuantityEntry("p", "http://unitsofmeasure.org", "a", 41.5, 42.5),
        QuantityEntry("p:canonical", "http://unitsofmeasure.org", "canonical:s",
                      41.5 * 31557600, 42.5 * 31557600)]
    assert _convert(quantity.converter("Money", protection),
                    {"value": 25, "currency": "EUR"}) == [
        QuantityEntry("p", quantity.CURRENCY_SYSTEM, "EUR", 24.5, 25.5)]
    assert _convert(quantity.converter("Range", protection),
                    {"low": {"value": 18, "code": "a"}, "high": {"value": 65, "code": "a"}}) == [
        QuantityEntry("p", None, "a", 17.5, 65.5)]
    assert _convert(quantity.converter("Range", protection), {"high": {"value": 2}}) == [
        QuantityEntry("p", None, None, -math.inf, 2.5)]
    assert quantity.converter("SampledData", protection) is None


# --- reference --------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "expected"), [
    ("Patient/p1", ReferenceEntry("subject", "Patient", "p1", None)),
    ("Patient/p1/_history/4", ReferenceEntry("subject", "Patient", "p1", None)),
    ("https://fhir.example.fr/fhir/Patient/p1",
     ReferenceEntry("subject", "Patient", "p1", "https://fhir.example.fr/fhir/Patient/p1")),
    ("urn:uuid:5b0a2a5e-4a0c-4b8e-9d7e-0c5a1c1e2f3a",
     ReferenceEntry("subject", None, None, "urn:uuid:5b0a2a5e-4a0c-4b8e-9d7e-0c5a1c1e2f3a")),
])
def test_reference_forms(written: str, expected: ReferenceEntry,
                         protection: IdentifierProtection) -> None:
    convert = reference.converter("Reference", protection)
    assert _convert(convert, {"reference": written}, "subject") == [expected]


def test_contained_and_meaningless_references_are_skipped(
        protection: IdentifierProtection) -> None:
    convert = reference.converter("Reference", protection)
    assert _convert(convert, {"reference": "#med1"}) == []
    assert _convert(convert, {"reference": "not a reference"}) == []
    assert _convert(convert, {"display": "Dr House"}) == []


def test_a_reference_identifier_is_a_token_with_blind_index(
        protection: IdentifierProtection, cipher: FieldCipher) -> None:
    convert = reference.converter("Reference", protection)
    entries = _convert(convert, {"reference": "Patient/p1",
                                 "identifier": {"system": INS_NIR, "value": NIR}}, "subject")
    assert entries == [ReferenceEntry("subject", "Patient", "p1", None),
                       TokenEntry("subject:identifier", INS_NIR, cipher.blind_index(INS_NIR, NIR))]
    assert _convert(convert, {"identifier": {"system": "urn:x", "value": "42"}}, "subject") == [
        TokenEntry("subject:identifier", "urn:x", "42")]


def test_canonical_values_are_references_by_url(protection: IdentifierProtection) -> None:
    convert = reference.converter("canonical", protection)
    assert _convert(convert, "http://example.org/fhir/Questionnaire/q1|2") == [
        ReferenceEntry("p", None, None, "http://example.org/fhir/Questionnaire/q1|2")]
    assert reference.converter("Attachment", protection) is None


# --- uri --------------------------------------------------------------------------------------

def test_uris_are_kept_as_written(protection: IdentifierProtection) -> None:
    convert = uri.converter("canonical", protection)
    assert _convert(convert, "http://Example.org/fhir/StructureDefinition/X") == [
        UriEntry("p", "http://Example.org/fhir/StructureDefinition/X")]
    assert _convert(convert, "") == []
    assert uri.converter("Coding", protection) is None
