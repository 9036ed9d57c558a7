"""Index entries: the normalised search values extracted from a resource, stored with it atomically.

The engine extracts them (``fhir_server/search``) and hands them to the store inside a ``Change``;
a store writes them in the same database transaction as the resource. Each entry names the
search parameter code it belongs to (``param``). Values are already normalised:
- strings: ``normalized`` is lower-cased and accent-free, ``exact`` is as written;
- dates: ``low``/``high`` are fixed-width UTC instants (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), inclusive;
- a sensitive token value (e.g. an INS-NIR) is stored as its keyed HMAC ("blind index");
- composites: one entry per context element, pairing its components (``CompositeEntry``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class TokenEntry:
    param: str
    system: str | None
    code: str | None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class StringEntry:
    param: str
    normalized: str
    exact: str


@dataclass(frozen=True, slots=True)
class DateEntry:
    param: str
    low: str
    high: str


@dataclass(frozen=True, slots=True)
class NumberEntry:
    param: str
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class QuantityEntry:
    param: str
    system: str | None
    code: str | None
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class ReferenceEntry:
    param: str
    target_type: str | None
    target_id: str | None
    url: str | None


@dataclass(frozen=True, slots=True)
class UriEntry:
    param: str
    value: str


@dataclass(frozen=True, slots=True)
class CompositeEntry:
    """One context element of a composite parameter (an ``Observation.component``…): the token
    of its first component and the value of its second, so that a search can ask for both on
    the same element.

    The second component fills the fields of its kind, the others stay None: a token
    ``value_system``/``value_code``; a quantity those (unit system and code) and ``low``/``high``;
    a number ``low``/``high``; a date ``low``/``high`` as instants (text); a string
    ``normalized``/``exact``; a reference ``target_type``/``target_id``/``url``; a uri ``url``.
    A quantity in a convertible UCUM unit also gives an entry under ``{code}:canonical``.
    """

    param: str
    system: str | None
    code: str
    value_system: str | None = None
    value_code: str | None = None
    low: float | str | None = None
    high: float | str | None = None
    normalized: str | None = None
    exact: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    url: str | None = None


IndexEntry: TypeAlias = (TokenEntry | StringEntry | DateEntry | NumberEntry | QuantityEntry
                         | ReferenceEntry | UriEntry | CompositeEntry)
