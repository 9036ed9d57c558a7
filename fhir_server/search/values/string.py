"""String values → ``StringEntry`` (normalised for the default and ``:contains`` match, exact).

A HumanName gives one entry per part (family, each given, prefix, suffix, text), an Address one
per line, city, district, state, postalCode, country and text; any other string as is.
"""

from __future__ import annotations

from typing import Any

from fhir_server.search.values import Converter, IdentifierProtection, normalized_text
from fhir_server.storage.index import IndexEntry, StringEntry

HUMAN_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")
_STRINGS = frozenset({"string", "markdown", "code", "id", "uri", "url", "canonical", "uuid",
                      "oid"})
_PARTS_BY_TYPE = {"HumanName": HUMAN_NAME_PARTS, "Address": ADDRESS_PARTS}


def converter(value_type: str | None, protection: IdentifierProtection) -> Converter | None:
    """The string converter for values of one FHIR type (None: decided per value)."""
    if value_type in _PARTS_BY_TYPE:
        return _parts_converter(_PARTS_BY_TYPE[value_type])
    if value_type in _STRINGS:
        return add_string
    if value_type is None:
        return add_any
    return None


def add_string(code: str, value: Any, out: list[IndexEntry]) -> None:
    if type(value) is str and (normalized := normalized_text(value)):
        out.append(StringEntry(code, normalized, value))


def _parts_converter(parts: tuple[str, ...]) -> Converter:
    def add_parts(code: str, value: Any, out: list[IndexEntry]) -> None:
        if type(value) is not dict:
            return
        for part in parts:
            found = value.get(part)
            if found is None:
                continue
            for item in found if type(found) is list else (found,):
                if type(item) is str and (normalized := normalized_text(item)):
                    out.append(StringEntry(code, normalized, item))
    return add_parts


_add_name = _parts_converter(HUMAN_NAME_PARTS)
_add_address = _parts_converter(ADDRESS_PARTS)


def add_any(code: str, value: Any, out: list[IndexEntry]) -> None:
    """For values whose type is only known at run time: a string, a HumanName or an Address."""
    if isinstance(value, str):
        add_string(code, value, out)
    elif type(value) is dict:
        if any(key in value for key in ("family", "given", "prefix", "suffix")):
            _add_name(code, value, out)
        else:
            _add_address(code, value, out)
