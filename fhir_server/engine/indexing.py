"""Index extraction for the REST core: the `identifier` token of every type that has that parameter.

The search issue replaces this with the registry built from every R4 SearchParameter; the shape
(``extract(resource) -> tuple[IndexEntry, ...]``) stays. Identifiers of sensitive systems (the
INS-NIR family) are indexed by their keyed HMAC, never in clear.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from fhir_server.definitions import load_bundle
from fhir_server.storage.index import IndexEntry, TokenEntry
from fhir_server.types import ResourceDict

BlindIndex = Callable[[str, str], str]
SensitiveSystem = Callable[[str | None], bool]


@cache
def types_with_identifier_param() -> frozenset[str]:
    """Resource types for which R4 defines an ``identifier`` search parameter."""
    found: set[str] = set()
    for param in load_bundle("search-parameters"):
        if param.get("code") == "identifier" and param.get("type") == "token":
            found.update(param.get("base", []))
    return frozenset(found)


class Indexer:
    """Extracts the index entries stored with each resource version."""

    def __init__(self, *, blind_index: BlindIndex, is_sensitive: SensitiveSystem) -> None:
        self._blind_index = blind_index
        self._is_sensitive = is_sensitive

    def extract(self, resource: ResourceDict) -> tuple[IndexEntry, ...]:
        if resource.get("resourceType") not in types_with_identifier_param():
            return ()
        identifiers = resource.get("identifier")
        if isinstance(identifiers, dict):
            identifiers = [identifiers]
        if not isinstance(identifiers, list):
            return ()
        return tuple(entry for item in identifiers
                     if (entry := self._identifier_entry(item)) is not None)

    def _identifier_entry(self, identifier: Any) -> TokenEntry | None:
        if not isinstance(identifier, dict):
            return None
        system = identifier.get("system")
        value = identifier.get("value")
        if not isinstance(value, str):
            return None
        system = system if isinstance(system, str) else None
        return TokenEntry("identifier", system, self.token_code(system, value))

    def token_code(self, system: str | None, value: str) -> str:
        """The code as stored: the value itself, or its blind index for a sensitive system."""
        if system is not None and self._is_sensitive(system):
            return self._blind_index(system, value)
        return value
