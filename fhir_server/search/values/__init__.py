"""Value → index entry conversion, one module per search-parameter type.

Each module exposes ``converter(value_type, protection)``: given the FHIR type of the values an
expression yields (None when only known at run time, from the fhirpathpy fallback), it returns
a ``Converter`` that appends the entries of one value to a list, or None when values of that
type never give entries for the parameter type (a ``SampledData`` for a quantity parameter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from fhir_server.search.normalize import normalize_string
from fhir_server.storage.index import IndexEntry

Converter: TypeAlias = Callable[[str, Any, list[IndexEntry]], None]
"""(parameter code, one value, the entries found so far) → appends this value's entries."""

BlindIndex: TypeAlias = Callable[[str, str], str]
SensitiveSystem: TypeAlias = Callable[[str | None], bool]


CONTACT_POINT_KEY = "urn:pictaderm:contact-point"
"""The 'system' under which ContactPoint values are blind-indexed (not stored as a system)."""


@dataclass(frozen=True, slots=True)
class IdentifierProtection:
    """How identifier values of sensitive systems (the INS-NIR family) are indexed: blind."""

    blind_index: BlindIndex
    is_sensitive: SensitiveSystem

    def code(self, system: str | None, value: str) -> str:
        """The code as stored: the value itself, or its blind index for a sensitive system."""
        if system is not None and self.is_sensitive(system):
            return self.blind_index(system, value)
        return value

    def contact_point(self, value: str) -> str:
        """A telephone number or email as stored in the index: always its blind index.

        Telecoms are sealed in the stored resource, so the index must not hold them in clear.
        """
        return self.blind_index(CONTACT_POINT_KEY, value)


ConverterFactory: TypeAlias = Callable[[str | None, IdentifierProtection], Converter | None]
"""``converter`` of a value module: the converter for values of one FHIR type, if any."""


def text_of(value: Any) -> str | None:
    """A non-empty string, or None."""
    return value if isinstance(value, str) and value else None


def normalized_text(value: str) -> str:
    """``normalize_string``, with a shortcut for ASCII text (already accent-free: only folded).

    For ASCII, NFKD changes nothing and ``casefold`` is ``lower``, so the result is the same.
    """
    if value.isascii():
        return value.lower() if value.isalnum() else " ".join(value.lower().split())
    return normalize_string(value)
