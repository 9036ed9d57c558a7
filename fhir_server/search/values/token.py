"""Token values → ``TokenEntry`` (system, code, normalised text).

- Coding: (system, code, display); CodeableConcept: each coding, plus (None, None, text) for
  ``:text`` when it has a text;
- Identifier: (system, value, type.text), the value blind-indexed for a sensitive system; and for
  ``:of-type`` one ``{code}:of-type`` entry per type coding, code ``{type code}|{value}``. For a
  sensitive system the value there is blind-indexed under a key derived from the type coding
  (``of_type_code``), not the identifier's system: an ``:of-type`` search does not name the
  identifier's system, but knows the type, so it can compute that form (``of_type_search_codes``);
- ContactPoint: (None, blind index of the value); code, string, id, uri primitives: (None, value);
  boolean: (None, "true" / "false").
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Final

from fhir_server.search.values import Converter, IdentifierProtection, normalized_text, text_of
from fhir_server.storage.index import IndexEntry, TokenEntry

OF_TYPE_KEY: Final = "urn:pictaderm:identifier-type"
"""The prefix of the blind-index key of sensitive identifier values in ``:of-type`` entries
(followed by the type coding), apart from every identifier system."""

_PRIMITIVES = frozenset({"code", "string", "id", "uri", "url", "canonical", "oid", "uuid",
                         "markdown"})
_CONTACT_POINT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})


def converter(value_type: str | None, protection: IdentifierProtection) -> Converter | None:
    """The token converter for values of one FHIR type (None: decided per value)."""
    if value_type == "Identifier":
        return _identifier_converter(protection)
    simple: dict[str | None, Converter] = {
        "Coding": add_coding, "CodeableConcept": add_codeable_concept,
        "ContactPoint": _contact_point_converter(protection), "boolean": add_boolean,
    }
    if value_type in simple:
        return simple[value_type]
    if value_type in _PRIMITIVES:
        return add_primitive
    if value_type is None:
        return _any_value_converter(protection)
    return None


def add_coding(code: str, value: Any, out: list[IndexEntry]) -> None:
    if type(value) is not dict:
        return
    token = text_of(value.get("code"))
    display = text_of(value.get("display"))
    if token is None and display is None:
        return
    out.append(TokenEntry(code, text_of(value.get("system")), token,
                               normalized_text(display) if display else None))


def add_codeable_concept(code: str, value: Any, out: list[IndexEntry]) -> None:
    if type(value) is not dict:
        return
    codings = value.get("coding")
    if type(codings) is list:
        for coding in codings:
            add_coding(code, coding, out)
    text = text_of(value.get("text"))
    if text is not None:
        out.append(TokenEntry(code, None, None, normalized_text(text)))


def _contact_point_converter(protection: IdentifierProtection) -> Converter:
    """ContactPoint → (None, blind index of the value): telecoms are never indexed in clear."""

    def add_contact_point(code: str, value: Any, out: list[IndexEntry]) -> None:
        if type(value) is dict and (number := text_of(value.get("value"))) is not None:
            out.append(TokenEntry(code, None, protection.contact_point(number), None))

    return add_contact_point


def add_boolean(code: str, value: Any, out: list[IndexEntry]) -> None:
    if isinstance(value, bool):
        out.append(_boolean_entries(code)[value])


@lru_cache(maxsize=512)
def _boolean_entries(code: str) -> tuple[TokenEntry, TokenEntry]:
    """The two entries a boolean parameter can have (``false``, ``true``): immutable, shared."""
    return TokenEntry(code, None, "false"), TokenEntry(code, None, "true")


def add_primitive(code: str, value: Any, out: list[IndexEntry]) -> None:
    if isinstance(value, str) and value:
        out.append(TokenEntry(code, None, value, None))


def _identifier_converter(protection: IdentifierProtection) -> Converter:
    def add_identifier(code: str, value: Any, out: list[IndexEntry]) -> None:
        if type(value) is not dict:
            return
        raw = text_of(value.get("value"))
        if raw is None:
            return
        system = text_of(value.get("system"))
        kind = value.get("type")
        kind_text = text_of(kind.get("text")) if type(kind) is dict else None
        out.append(TokenEntry(code, system, protection.code(system, raw),
                                   normalized_text(kind_text) if kind_text else None))
        if type(kind) is dict and type(codings := kind.get("coding")) is list:
            for coding in codings:
                if type(coding) is dict and (kind_code := text_of(coding.get("code"))):
                    kind_system = text_of(coding.get("system"))
                    out.append(TokenEntry(f"{code}:of-type", kind_system, of_type_code(
                        protection, system, kind_system, kind_code, raw), None))
    return add_identifier


def of_type_code(protection: IdentifierProtection, system: str | None, type_system: str | None,
                 type_code: str, value: str) -> str:
    """The code of the ``:of-type`` entry of an identifier (``system``, ``value``) for one of its
    type codings: ``{type code}|{value}``, the value blind-indexed under the type coding when
    the identifier's system is sensitive."""
    if system is not None and protection.is_sensitive(system):
        return f"{type_code}|{_of_type_blind(protection, type_system, type_code, value)}"
    return f"{type_code}|{value}"


def of_type_search_codes(protection: IdentifierProtection, type_system: str, type_code: str,
                         value: str) -> tuple[str, str]:
    """The ``:of-type`` entry codes an identifier of this type and value may have: as an
    ordinary identifier's, and as a sensitive identifier's."""
    return (f"{type_code}|{value}",
            f"{type_code}|{_of_type_blind(protection, type_system, type_code, value)}")


def _of_type_blind(protection: IdentifierProtection, type_system: str | None, type_code: str,
                   value: str) -> str:
    """The blind index of a value under its type coding."""
    return protection.blind(_of_type_key(type_system or "", type_code), value)


@lru_cache(maxsize=256)
def _of_type_key(type_system: str, type_code: str) -> str:
    """The blind-index key of a type coding (JSON keeps it unambiguous); only the coding's
    system and code, never a value, so it is kept for the next identifier of that type."""
    return f"{OF_TYPE_KEY}:{json.dumps([type_system, type_code])}"


def _any_value_converter(protection: IdentifierProtection) -> Converter:
    """For values whose type is only known at run time: told apart by their shape."""
    add_identifier = _identifier_converter(protection)
    add_contact_point = _contact_point_converter(protection)

    def add_any(code: str, value: Any, out: list[IndexEntry]) -> None:
        if isinstance(value, bool):
            add_boolean(code, value, out)
        elif isinstance(value, str):
            add_primitive(code, value, out)
        elif type(value) is dict:
            if "coding" in value or set(value) == {"text"}:
                add_codeable_concept(code, value, out)
            elif "code" in value or "display" in value:
                add_coding(code, value, out)
            elif value.get("system") in _CONTACT_POINT_SYSTEMS or "rank" in value:
                add_contact_point(code, value, out)
            else:
                add_identifier(code, value, out)
    return add_any
