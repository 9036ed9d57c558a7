"""Quantity values → ``QuantityEntry`` (system, code or unit, [low, high]).

Quantity and its specialisations (Age, Duration, Distance, Count…) with the precision rule of
``number``; Money with system ``urn:iso:std:iso:4217`` and its currency as code; a Range with the
units of its low (or high) bound, unbounded on a side it does not state. A comparator (``<5``)
does not widen the range. SampledData gives no entry. Values are as written: UCUM conversion to
canonical units is a later step.
"""

from __future__ import annotations

from typing import Any

from fhir_server.search.fhirpath import is_a
from fhir_server.search.values import Converter, IdentifierProtection, text_of
from fhir_server.search.values.number import precision_range, range_bounds
from fhir_server.storage.index import IndexEntry, QuantityEntry

CURRENCY_SYSTEM = "urn:iso:std:iso:4217"


def converter(value_type: str | None, protection: IdentifierProtection) -> Converter | None:
    """The quantity converter for values of one FHIR type (None: decided per value)."""
    if value_type is None:
        return add_any
    if value_type == "Money":
        return add_money
    if value_type == "Range":
        return add_range
    if is_a(value_type, "Quantity"):
        return add_quantity
    return None


def add_quantity(code: str, value: Any, out: list[IndexEntry]) -> None:
    if type(value) is not dict:
        return
    bounds = precision_range(value.get("value"))
    if bounds is not None:
        out.append(QuantityEntry(code, text_of(value.get("system")), _unit_code(value),
                                 bounds[0], bounds[1]))


def add_money(code: str, value: Any, out: list[IndexEntry]) -> None:
    if type(value) is not dict:
        return
    bounds = precision_range(value.get("value"))
    if bounds is not None:
        out.append(QuantityEntry(code, CURRENCY_SYSTEM, text_of(value.get("currency")),
                                 bounds[0], bounds[1]))


def add_range(code: str, value: Any, out: list[IndexEntry]) -> None:
    if type(value) is not dict or (bounds := range_bounds(value)) is None:
        return
    unit_source = next((part for part in (value.get("low"), value.get("high"))
                        if type(part) is dict and part.get("value") is not None), {})
    out.append(QuantityEntry(code, text_of(unit_source.get("system")), _unit_code(unit_source),
                             bounds[0], bounds[1]))


def add_any(code: str, value: Any, out: list[IndexEntry]) -> None:
    """For values whose type is only known at run time: a Quantity, Money or Range."""
    if type(value) is not dict:
        return
    if "currency" in value:
        add_money(code, value, out)
    elif "low" in value or "high" in value:
        add_range(code, value, out)
    else:
        add_quantity(code, value, out)


def _unit_code(quantity: dict[str, Any]) -> str | None:
    return text_of(quantity.get("code")) or text_of(quantity.get("unit"))
