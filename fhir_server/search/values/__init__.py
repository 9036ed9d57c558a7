"""Value → index entry conversion, one module per search-parameter type.

Each module exposes ``converter(value_type, protection)``: given the FHIR type of the values an
expression yields (None when only known at run time, from the fhirpathpy fallback), it returns
a ``Converter`` that appends the entries of one value to a list, or None when values of that
type never give entries for the parameter type (a ``SampledData`` for a quantity parameter).

Within one extraction (``ExtractionMemo``) a blind index and a normalised non-ASCII text are
computed once, however many parameters index the same value (``telecom`` and ``phone``, ``name``
and ``given``). The memo lives only as long as that extraction, in its own context: nothing is
kept across resources or requests.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from contextvars import ContextVar, Token
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
            return self.blind(system, value)
        return value

    def contact_point(self, value: str) -> str:
        """A telephone number or email as stored in the index: always its blind index.

        Telecoms are sealed in the stored resource, so the index must not hold them in clear.
        """
        return self.blind(CONTACT_POINT_KEY, value)

    def blind(self, key: str, value: str) -> str:
        """``blind_index(key, value)``, computed once per extraction this protection runs."""
        memo = _MEMO.get()
        if memo is None or memo.protection is not self:
            return self.blind_index(key, value)
        found = memo.blind_indexes.get((key, value))
        if found is None:
            found = memo.blind_indexes[key, value] = self.blind_index(key, value)
        return found


class ExtractionMemo:
    """What one extraction computed already, as a context manager: within its ``with`` block,
    blind indexes by ``protection`` (by key and value) and normalised non-ASCII texts are
    computed once; the memo is dropped when the block ends (one extraction, one memo)."""

    __slots__ = ("_token", "blind_indexes", "protection", "texts")
    _token: Token[ExtractionMemo | None]

    def __init__(self, protection: IdentifierProtection) -> None:
        self.protection = protection
        self.blind_indexes: dict[tuple[str, str], str] = {}
        self.texts: dict[str, str] = {}

    def __enter__(self) -> None:
        self._token = _MEMO.set(self)

    def __exit__(self, *exc_info: object) -> None:
        _MEMO.reset(self._token)


_MEMO: ContextVar[ExtractionMemo | None] = ContextVar("pictaderm_extraction_memo", default=None)


ConverterFactory: TypeAlias = Callable[[str | None, IdentifierProtection], Converter | None]
"""``converter`` of a value module: the converter for values of one FHIR type, if any."""


def text_of(value: Any) -> str | None:
    """A non-empty string, or None."""
    return value if isinstance(value, str) and value else None


def normalized_text(value: str) -> str:
    """``normalize_string``, with shortcuts for ASCII and Latin-1 text (the same result).

    For ASCII, NFKD changes nothing and ``casefold`` is ``lower``: only case and spaces are
    folded, and a printable text with single inner spaces needs no split. Other texts are
    normalised once per extraction (see ``ExtractionMemo``).
    """
    if value.isascii():
        lowered = value.lower()
        if lowered.isalnum() or (value.isprintable() and "  " not in value
                                 and value[:1] != " " and value[-1:] != " "):
            return lowered
        return " ".join(lowered.split())
    memo = _MEMO.get()
    if memo is None:
        return _normalized_non_ascii(value)
    found = memo.texts.get(value)
    if found is None:
        found = memo.texts[value] = _normalized_non_ascii(value)
    return found


def _normalized_non_ascii(value: str) -> str:
    """``normalize_string`` of a non-ASCII text; Latin-1 text folded through a byte table.

    Decomposition (NFKD), dropping combining marks and case folding all work character by
    character (canonical reordering only moves combining marks, which are dropped), so each
    Latin-1 character whose folded form is one ASCII character is replaced by it. The text
    takes the general path when a character is outside Latin-1 or folds otherwise (``ß``).
    """
    try:
        encoded = value.encode("latin-1")
    except UnicodeEncodeError:
        return normalize_string(value)
    folded = encoded.translate(_LATIN_1_FOLD)
    if not folded.isascii():
        return normalize_string(value)
    return " ".join(folded.decode("ascii").split())


def _latin_1_fold_table() -> bytes:
    """For each Latin-1 byte: the ASCII byte ``normalize_string`` folds its character to when
    that is a single ASCII character (space included), else the byte itself."""
    table = bytearray(range(256))
    for byte in range(256):
        decomposed = unicodedata.normalize("NFKD", chr(byte))
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
        if len(folded) == 1 and folded.isascii():
            table[byte] = ord(folded)
    return bytes(table)


_LATIN_1_FOLD = _latin_1_fold_table()
