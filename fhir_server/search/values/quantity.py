"""Quantity values → ``QuantityEntry`` (system, code or unit, [low, high]).

Quantity and its specialisations (Age, Duration, Distance, Count…) with the precision rule of
``number``; Money with system ``urn:iso:std:iso:4217`` and its currency as code; a Range with the
units of its low (or high) bound, unbounded on a side it does not state. A comparator (``<5``)
does not widen the range. SampledData gives no entry. A Quantity or Range in a UCUM unit that
``search/ucum.py`` can convert also gives, besides the entry as written, an entry in the
canonical unit under the parameter ``{code}:canonical`` (code ``canonical:g``…, bounds
scaled), which a search in any unit of the same dimension matches.
"""

from __future__ import annotations

from typing import Any

from fhir_server.search.fhirpath import is_a
from fhir_server.search.ucum import (
    UCUM_SYSTEM,
    canonical,
    canonical_code,
    canonical_param,
    scaled,
)
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
        _add_with_canonical(QuantityEntry(code, text_of(value.get("system")),
                                               _unit_code(value), bounds[0], bounds[1]), out)


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
    _add_with_canonical(QuantityEntry(code, text_of(unit_source.get("system")),
                                           _unit_code(unit_source), bounds[0], bounds[1]), out)


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


def _add_with_canonical(entry: QuantityEntry, out: list[IndexEntry]) -> None:
    """The entry as written and, for a convertible UCUM unit, its canonical form."""
    out.append(entry)
    converted = (canonical(entry.code)
                 if entry.system == UCUM_SYSTEM and entry.code is not None else None)
    if converted is not None:
        unit, factor = converted
        out.append(QuantityEntry(canonical_param(entry.param), UCUM_SYSTEM,
                                      canonical_code(unit), scaled(entry.low, factor),
                                      scaled(entry.high, factor)))


def _unit_code(quantity: dict[str, Any]) -> str | None:
    return text_of(quantity.get("code")) or text_of(quantity.get("unit"))
