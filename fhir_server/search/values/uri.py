"""URI values (uri, url, canonical, oid, uuid) → ``UriEntry``, as written."""

from __future__ import annotations

from typing import Any

from fhir_server.search.values import Converter, IdentifierProtection
from fhir_server.storage.index import IndexEntry, UriEntry

_URIS = frozenset({"uri", "url", "canonical", "oid", "uuid", "string", "code"})


def converter(value_type: str | None, protection: IdentifierProtection) -> Converter | None:
    """The uri converter for values of one FHIR type (None: decided per value)."""
    return add_uri if value_type is None or value_type in _URIS else None


def add_uri(code: str, value: Any, out: list[IndexEntry]) -> None:
    if isinstance(value, str) and value:
        out.append(UriEntry(code, value))
