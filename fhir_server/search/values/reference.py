"""Reference values → ``ReferenceEntry`` (target type, target id, url).

- ``Type/id`` (relative; a ``/_history/n`` suffix dropped): type and id;
- ``http(s)://…/Type/id`` (absolute): the url as written, type and id from its last segments;
- ``urn:uuid:…``, ``urn:oid:…`` and other absolute URIs: the url only; ``#x`` (contained): none.
A Reference with an ``identifier`` also gives ``{code}:identifier`` as a token (a sensitive
system's value blind-indexed). A canonical or uri value gives the url only.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_server.search.fhirpath import reference_type
from fhir_server.search.values import Converter, IdentifierProtection, text_of
from fhir_server.storage.index import IndexEntry, ReferenceEntry, TokenEntry

_HISTORY = re.compile(r"/_history/[^/]*$")
_URLS = frozenset({"canonical", "uri", "url"})


def converter(value_type: str | None, protection: IdentifierProtection) -> Converter | None:
    """The reference converter for values of one FHIR type (None: decided per value)."""
    if value_type == "Reference" or value_type is None:
        return _reference_converter(protection)
    if value_type in _URLS:
        return add_url
    return None


def reference_entry(code: str, reference: str) -> ReferenceEntry | None:
    """The entry for a ``Reference.reference`` string, None for a contained or empty one."""
    if not reference or reference.startswith("#"):
        return None
    target = reference_type(reference)
    if target is None:
        return ReferenceEntry(code, None, None, reference) if ":" in reference else None
    target_id = _HISTORY.sub("", reference).rsplit("/", 1)[1]
    url = reference if "://" in reference else None
    return ReferenceEntry(code, target, target_id, url)


def add_url(code: str, value: Any, out: list[IndexEntry]) -> None:
    if isinstance(value, str) and value:
        out.append(ReferenceEntry(code, None, None, value))


def _reference_converter(protection: IdentifierProtection) -> Converter:
    def add_reference(code: str, value: Any, out: list[IndexEntry]) -> None:
        if isinstance(value, str):
            add_url(code, value, out)
            return
        if type(value) is not dict:
            return
        reference = value.get("reference")
        if isinstance(reference, str) and (entry := reference_entry(code, reference)):
            out.append(entry)
        identifier = value.get("identifier")
        if type(identifier) is dict and (raw := text_of(identifier.get("value"))):
            system = text_of(identifier.get("system"))
            out.append(TokenEntry(f"{code}:identifier", system, protection.code(system, raw),
                                        None))
    return add_reference
