"""UCUM canonical units: the conversion table, compound units, and units left as written."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fhir_server.search.ucum import UCUM_SYSTEM, canonical, canonical_code, scaled
from fhir_server.search.values import IdentifierProtection, quantity
from fhir_server.storage.index import IndexEntry, QuantityEntry


@pytest.mark.parametrize(("code", "unit", "factor"), [
    ("kg", "g", "1000"), ("g", "g", "1"), ("mg", "g", "0.001"), ("ug", "g", "0.000001"),
    ("ng", "g", "1e-9"),
    ("km", "m", "1000"), ("cm", "m", "0.01"), ("um", "m", "0.000001"),
    ("[in_i]", "m", "0.0254"), ("[ft_i]", "m", "0.3048"),
    ("dL", "L", "0.1"), ("mL", "L", "0.001"), ("uL", "L", "0.000001"),
    ("a", "s", "31557600"), ("wk", "s", "604800"), ("d", "s", "86400"), ("h", "s", "3600"),
    ("min", "s", "60"), ("ms", "s", "0.001"),
    ("mol", "mol", "1"), ("mmol", "mol", "0.001"), ("umol", "mol", "0.000001"),
])
def test_simple_units_have_their_dimension_canonical_unit(code: str, unit: str,
                                                          factor: str) -> None:
    assert canonical(code) == (unit, Decimal(factor))


@pytest.mark.parametrize(("code", "unit", "factor"), [
    ("mg/dL", "g/L", "0.01"), ("g/L", "g/L", "1"), ("mmol/L", "mol/L", "0.001"),
    ("ug/mL", "g/L", "0.001"), ("mL/min", "L/s", Decimal("0.001") / 60),
])
def test_compound_units_divide_numerator_by_denominator(code: str, unit: str,
                                                        factor: str | Decimal) -> None:
    assert canonical(code) == (unit, Decimal(factor))


@pytest.mark.parametrize("code", [
    "Cel", "[degF]", "mo", "/min", "1/min", "mg/dL/h", "mg/[IU]", "MG", "comprimés", "", "/"])
def test_units_not_convertible_give_none(code: str) -> None:
    assert canonical(code) is None


def test_canonical_code_and_scaling_in_decimal() -> None:
    assert canonical_code("g/L") == "canonical:g/L"
    assert scaled(5.35, Decimal("0.001")) == 0.00535
    assert scaled(float("-inf"), Decimal("0.01")) == float("-inf")


def _entries(value_type: str, value: dict[str, object]) -> list[IndexEntry]:
    protection = IdentifierProtection(lambda system, text: text, lambda system: False)
    convert = quantity.converter(value_type, protection)
    assert convert is not None
    out: list[IndexEntry] = []
    convert("p", value, out)
    return out


def test_a_ucum_quantity_is_also_indexed_in_its_canonical_unit() -> None:
    assert _entries("Quantity", {"value": 5.4, "system": UCUM_SYSTEM, "code": "mg"}) == [
        QuantityEntry("p", UCUM_SYSTEM, "mg", 5.35, 5.45),
        QuantityEntry("p:canonical", UCUM_SYSTEM, "canonical:g", 0.00535, 0.00545)]
    assert _entries("Range", {"low": {"value": 1, "system": UCUM_SYSTEM, "code": "mg/dL"}}) == [
        QuantityEntry("p", UCUM_SYSTEM, "mg/dL", 0.5, float("inf")),
        QuantityEntry("p:canonical", UCUM_SYSTEM, "canonical:g/L", 0.005, float("inf"))]


@pytest.mark.parametrize("value", [
    {"value": 37, "system": UCUM_SYSTEM, "code": "Cel"},
    {"value": 5, "system": "urn:local", "code": "mg"},
    {"value": 5, "code": "mg"},
])
def test_other_quantities_keep_only_their_entry_as_written(value: dict[str, object]) -> None:
    assert len(_entries("Quantity", value)) == 1
