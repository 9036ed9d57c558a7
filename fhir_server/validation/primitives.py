"""FHIR R4 primitive values in JSON: which JSON kind each type takes and the official regexes.

Rules are built from the primitive types' StructureDefinitions (the ``regex`` extension on each
``<type>.value`` element), compiled once. See https://hl7.org/fhir/R4/datatypes.html#primitive
and https://hl7.org/fhir/R4/json.html#primitive.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

REGEX_EXTENSION = "http://hl7.org/fhir/StructureDefinition/regex"
FHIR_TYPE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

SAFE_PATTERNS = {
    # The official base64Binary pattern, (\s*([0-9a-zA-Z\+/=]){4}\s*)+, backtracks exponentially on
    # some invalid inputs (a few dozen characters take seconds). This form accepts exactly the
    # same strings (whitespace only between groups of four) and runs in linear time.
    "base64Binary": r"\s*+(?:[0-9a-zA-Z+/=]{4}\s*+)++",
}
"""Patterns used instead of the official one, each for a stated reason."""

_SHOWN_LENGTH = 60


class JsonKind(Enum):
    """The JSON kind a primitive type is written as."""

    BOOLEAN = "JSON true or false"
    INTEGER = "a JSON integer"
    DECIMAL = "a JSON number"
    STRING = "a JSON string"


_KIND_BY_TYPE = {
    "boolean": JsonKind.BOOLEAN,
    "integer": JsonKind.INTEGER,
    "unsignedInt": JsonKind.INTEGER,
    "positiveInt": JsonKind.INTEGER,
    "decimal": JsonKind.DECIMAL,
}
_CALENDAR_TYPES = frozenset({"date", "dateTime", "instant"})


@dataclass(frozen=True, slots=True)
class PrimitiveRule:
    """How to check one primitive type's JSON value."""

    name: str
    kind: JsonKind
    pattern: re.Pattern[str] | None
    checks_calendar: bool = False
    is_xhtml: bool = False
    plain: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    """The pattern that alone decides a string (a type written as a JSON string, not a
    calendar one): a non-empty string it matches is valid. None for the other types."""

    def __post_init__(self) -> None:
        plain = self.pattern if self.kind is JsonKind.STRING and not self.checks_calendar else None
        object.__setattr__(self, "plain", plain)

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is valid, when telling it is quick (a string of a ``plain`` type);
        False means ``problem`` decides."""
        plain = self.plain
        return (plain is not None and type(value) is str and value != ""
                and plain.fullmatch(value) is not None)

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this type, as an English phrase, or None if valid."""
        if self.kind is JsonKind.STRING and type(value) is str:
            return self._string_problem(value)
        if value is None:
            return "null is not allowed here (omit the element instead)"
        if not _has_kind(value, self.kind):
            return f"{shown(value)} is not a valid {self.name} (expected {self.kind.value})"
        return self._number_problem(value)

    def _string_problem(self, value: str) -> str | None:
        if self.pattern is not None:
            if self.pattern.fullmatch(value) is None or not value:
                return self._bad_string(value)
            if self.checks_calendar and not _is_calendar_day(value):
                return f"{shown(value)} is not a valid {self.name} (no such day)"
            return None
        if not value:
            return f"an empty string is not a valid {self.name}"
        if self.is_xhtml and not value.lstrip().startswith("<div"):
            return "the narrative must be XHTML starting with '<div'"
        return None

    def _bad_string(self, value: str) -> str:
        if not value:
            return f"an empty string is not a valid {self.name}"
        return f"{shown(value)} is not a valid {self.name}"

    def _number_problem(self, value: bool | int | float | Decimal) -> str | None:
        if self.pattern is not None and self.pattern.fullmatch(_json_text(value)) is None:
            return f"{shown(value)} is not a valid {self.name}"
        if self.kind is JsonKind.INTEGER and not INT32_MIN <= int(value) <= INT32_MAX:
            return f"{shown(value)} is not a valid {self.name} (outside the 32-bit range)"
        return None


def shown(value: Any) -> str:
    """A short printable form of a JSON value for messages."""
    if isinstance(value, str):
        text = value if len(value) <= _SHOWN_LENGTH else value[:_SHOWN_LENGTH] + "…"
        return repr(text)
    if isinstance(value, bool) or value is None:
        return _json_text(value)
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    return str(value)


def build_rules(definitions: Mapping[str, Mapping[str, Any]]) -> dict[str, PrimitiveRule]:
    """One rule per primitive type found in ``definitions``, by type name."""
    return {
        name: _rule_for(name, sd)
        for name, sd in definitions.items()
        if sd.get("kind") == "primitive-type"
    }


def _rule_for(name: str, sd: Mapping[str, Any]) -> PrimitiveRule:
    source = SAFE_PATTERNS.get(name) or _official_pattern(name, sd)
    return PrimitiveRule(
        name=name,
        kind=_KIND_BY_TYPE.get(name, JsonKind.STRING),
        pattern=re.compile(source) if source else None,
        checks_calendar=name in _CALENDAR_TYPES,
        is_xhtml=name == "xhtml",
    )


def _official_pattern(name: str, sd: Mapping[str, Any]) -> str | None:
    for element in sd.get("snapshot", {}).get("element", []):
        if element.get("path") != f"{name}.value":
            continue
        for type_ref in element.get("type", []):
            for extension in type_ref.get("extension", []):
                if extension.get("url") == REGEX_EXTENSION:
                    pattern: str = extension["valueString"]
                    return pattern
    return None


def _has_kind(value: Any, kind: JsonKind) -> bool:
    if kind is JsonKind.STRING:
        return isinstance(value, str)
    if kind is JsonKind.BOOLEAN:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is JsonKind.INTEGER:
        return isinstance(value, int)
    return isinstance(value, int | float | Decimal)


def _json_text(value: Any) -> str:
    """The JSON text of a scalar, which the official regexes describe."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return str(value)


def _is_calendar_day(value: str) -> bool:
    """Whether a full date (YYYY-MM-DD...) names a day that exists; partial dates pass."""
    if len(value) < 10:
        return True
    day = int(value[8:10])
    if day <= 28:  # every month has these
        return True
    year, month = int(value[0:4]), int(value[5:7])
    return day <= calendar.monthrange(year, month)[1]
