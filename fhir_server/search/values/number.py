"""Number values → ``NumberEntry`` [low, high]: the range the written precision implies.

``100`` covers [99.5, 100.5], ``1.5`` [1.45, 1.55], ``1.50`` [1.495, 1.505]. orjson gives a float
or an int, so the precision is read from the shortest text of the float (``1.50`` in the JSON
reads as ``1.5``); a Decimal (from fhirpathpy) or a decimal string keeps its written digits.
A Range gives [low's low, high's high], unbounded on a side it does not state.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_server.search.values import Converter, IdentifierProtection
from fhir_server.storage.index import IndexEntry, NumberEntry

_NUMBERS = frozenset({"integer", "decimal", "positiveInt", "unsignedInt"})


def converter(value_type: str | None, protection: IdentifierProtection) -> Converter | None:
    """The number converter for values of one FHIR type (None: decided per value)."""
    if value_type in _NUMBERS:
        return add_number
    if value_type == "Range":
        return add_range
    if value_type is None:
        return add_any
    return None


def precision_range(value: Any) -> tuple[float, float] | None:
    """[low, high] implied by the precision a number is written with; None if not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value - 0.5, value + 0.5
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = repr(value)
    if not isinstance(value, (str, Decimal)):
        return None
    try:
        written = Decimal(value)
    except InvalidOperation:
        return None
    exponent = written.as_tuple().exponent
    if not isinstance(exponent, int):
        return None
    half = Decimal(5).scaleb(exponent - 1)
    return float(written - half), float(written + half)


def range_bounds(value: dict[str, Any]) -> tuple[float, float] | None:
    """[low, high] of a Range of Quantities: the precision range of each stated bound."""
    low_part, high_part = value.get("low"), value.get("high")
    low = precision_range(low_part.get("value")) if type(low_part) is dict else None
    high = precision_range(high_part.get("value")) if type(high_part) is dict else None
    if low is None and high is None:
        return None
    return (low[0] if low else -math.inf), (high[1] if high else math.inf)


def add_number(code: str, value: Any, out: list[IndexEntry]) -> None:
    bounds = precision_range(value)
    if bounds is not None:
        out.append(NumberEntry(code, bounds[0], bounds[1]))


def add_range(code: str, value: Any, out: list[IndexEntry]) -> None:
    if type(value) is dict and (bounds := range_bounds(value)) is not None:
        out.append(NumberEntry(code, bounds[0], bounds[1]))


def add_any(code: str, value: Any, out: list[IndexEntry]) -> None:
    """For values whose type is only known at run time: a number or a Range."""
    if type(value) is dict:
        add_range(code, value, out)
    else:
        add_number(code, value, out)
