"""UCUM units → canonical unit and factor, so quantities compare across units of one dimension.

Spec: https://hl7.org/fhir/R4/search.html#quantity (UCUM canonical units) and
https://ucum.org/ucum (unit definitions). A small, explicit table, not a UCUM parser: mass
(→ g), length (→ m), volume (→ L), time (→ s) and amount of substance (→ mol), plus
``numerator/denominator`` compounds when both parts are in the table (``mg/dL`` → g/L × 0.01).
Only multiplicative units are listed: temperatures (``Cel``, ``[degF]``) have an offset and the
month (``mo``) has no fixed length in practice, so they are left out and compare as written.
"""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType
from typing import Final

UCUM_SYSTEM: Final = "http://unitsofmeasure.org"
CANONICAL_PREFIX: Final = "canonical:"
"""Prefix of the code under which a quantity's canonical form is indexed and searched."""

_SECONDS_PER_DAY: Final = Decimal(86400)

_UNITS: Final = MappingProxyType({
    # mass
    "kg": ("g", Decimal(1000)),
    "g": ("g", Decimal(1)),
    "mg": ("g", Decimal("1e-3")),
    "ug": ("g", Decimal("1e-6")),
    "ng": ("g", Decimal("1e-9")),
    # length
    "km": ("m", Decimal(1000)),
    "m": ("m", Decimal(1)),
    "cm": ("m", Decimal("1e-2")),
    "mm": ("m", Decimal("1e-3")),
    "um": ("m", Decimal("1e-6")),
    "[in_i]": ("m", Decimal("0.0254")),
    "[ft_i]": ("m", Decimal("0.3048")),
    # volume
    "L": ("L", Decimal(1)),
    "dL": ("L", Decimal("1e-1")),
    "mL": ("L", Decimal("1e-3")),
    "uL": ("L", Decimal("1e-6")),
    # time (the UCUM year ``a`` is the Julian year, 365.25 days)
    "a": ("s", Decimal("365.25") * _SECONDS_PER_DAY),
    "wk": ("s", 7 * _SECONDS_PER_DAY),
    "d": ("s", _SECONDS_PER_DAY),
    "h": ("s", Decimal(3600)),
    "min": ("s", Decimal(60)),
    "s": ("s", Decimal(1)),
    "ms": ("s", Decimal("1e-3")),
    # amount of substance
    "mol": ("mol", Decimal(1)),
    "mmol": ("mol", Decimal("1e-3")),
    "umol": ("mol", Decimal("1e-6")),
})


def canonical(code: str) -> tuple[str, Decimal] | None:
    """The canonical unit of a UCUM ``code`` and the factor to it; None when not convertible.

    ``mg`` → (``g``, 0.001); ``mg/dL`` → (``g/L``, 0.01); ``Cel``, ``/min`` → None.
    """
    simple = _UNITS.get(code)
    if simple is not None:
        return simple
    numerator, slash, denominator = code.partition("/")
    if not slash:
        return None
    top, bottom = _UNITS.get(numerator), _UNITS.get(denominator)
    if top is None or bottom is None:
        return None
    return f"{top[0]}/{bottom[0]}", top[1] / bottom[1]


def canonical_code(unit: str) -> str:
    """The code under which a quantity in the canonical ``unit`` is indexed: ``canonical:g``."""
    return CANONICAL_PREFIX + unit


def scaled(bound: float, factor: Decimal) -> float:
    """A stored bound (possibly infinite) multiplied by ``factor``, computed in decimal."""
    return float(Decimal(repr(bound)) * factor)


def canonical_param(code: str) -> str:
    """The index parameter holding a quantity parameter's canonical entries: kept apart so that
    a search without a unit, ``:missing`` and ``_sort`` only see the values as written."""
    return f"{code}:canonical"
