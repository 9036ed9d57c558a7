"""Index extraction for the engine: every R4 search parameter, through the search registry.

``Indexer.extract`` hands each resource version's entries to the store, which writes them in the
same transaction as the resource. The work is done by ``fhir_server.search.extract``; this class
binds it to the server's keys: identifiers of sensitive systems (the INS-NIR family) are indexed
by their keyed HMAC ("blind index"), never in clear.
"""

from __future__ import annotations

from fhir_server.search.extract import Extractor
from fhir_server.search.registry import SearchRegistry, default_registry
from fhir_server.search.values import BlindIndex, IdentifierProtection, SensitiveSystem
from fhir_server.storage.index import IndexEntry
from fhir_server.types import ResourceDict

__all__ = ["BlindIndex", "Indexer", "SensitiveSystem"]


class Indexer:
    """Extracts the index entries stored with each resource version."""

    def __init__(self, *, blind_index: BlindIndex, is_sensitive: SensitiveSystem,
                 registry: SearchRegistry | None = None) -> None:
        self._protection = IdentifierProtection(blind_index, is_sensitive)
        self._extractor = Extractor(registry=registry or default_registry(),
                                    protection=self._protection)

    def extract(self, resource: ResourceDict) -> tuple[IndexEntry, ...]:
        """Every search parameter's entries for this resource (deduplicated)."""
        return self._extractor.extract(resource)

    def token_code(self, system: str | None, value: str) -> str:
        """The code as stored: the value itself, or its blind index for a sensitive system."""
        return self._protection.code(system, value)

    def contact_point_code(self, value: str) -> str:
        """A telecom value as stored in the index (its blind index)."""
        return self._protection.contact_point(value)
