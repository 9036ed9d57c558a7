"""Index extraction for the engine: every search parameter, through the search registries.

``Indexer.extract`` hands each resource version's entries to the store, which writes them in the
same transaction as the resource. The work is done by ``fhir_server.search.extract``; this class
binds it to the server's keys: identifiers of sensitive systems (the INS-NIR family) are indexed
by their keyed HMAC ("blind index"), never in clear.

It also holds the server's current ``Registries``: the parameters extracted on writes and those
searches may use (custom parameters awaiting ``$reindex`` are only extracted). The custom
search-parameter catalogue (``engine/search_parameters.py``) switches them when it changes.
"""

from __future__ import annotations

from collections.abc import Iterable

from fhir_server.search.extract import Extractor
from fhir_server.search.registry import Registries, SearchRegistry, default_registry
from fhir_server.search.values import BlindIndex, IdentifierProtection, SensitiveSystem
from fhir_server.search.values.token import of_type_search_codes
from fhir_server.storage.index import IndexEntry
from fhir_server.types import ResourceDict

__all__ = ["BlindIndex", "Indexer", "SensitiveSystem"]


class Indexer:
    """Extracts the index entries stored with each resource version."""

    def __init__(self, *, blind_index: BlindIndex, is_sensitive: SensitiveSystem,
                 registry: SearchRegistry | None = None) -> None:
        self._protection = IdentifierProtection(blind_index, is_sensitive)
        self._registries = Registries.of(registry or default_registry())
        self._extractor = Extractor(registry=self._registries.extracting,
                                    protection=self._protection)

    @property
    def registries(self) -> Registries:
        return self._registries

    @property
    def search_registry(self) -> SearchRegistry:
        """The parameters searches may use (those awaiting ``$reindex`` left out)."""
        return self._registries.searching

    def use(self, registries: Registries) -> None:
        """Switch to new registries; extraction plans are rebuilt on the next write of a type."""
        self._extractor = Extractor(registry=registries.extracting, protection=self._protection)
        self._registries = registries

    def awaiting_reindex(self, resource_types: Iterable[str], code: str) -> bool:
        """Whether ``code`` is a parameter of one of these types that awaits ``$reindex``."""
        pending = self._registries.pending
        return bool(pending) and any((t, code) in pending for t in resource_types)

    def extract(self, resource: ResourceDict) -> tuple[IndexEntry, ...]:
        """Every search parameter's entries for this resource (deduplicated)."""
        return self._extractor.extract(resource)

    def token_code(self, system: str | None, value: str) -> str:
        """The code as stored: the value itself, or its blind index for a sensitive system."""
        return self._protection.code(system, value)

    def contact_point_code(self, value: str) -> str:
        """A telecom value as stored in the index (its blind index)."""
        return self._protection.contact_point(value)

    def of_type_codes(self, type_system: str, type_code: str, value: str) -> tuple[str, ...]:
        """The ``:of-type`` entry codes to search for an identifier type and value: the clear
        form, and the blind form of an identifier of a sensitive system."""
        return of_type_search_codes(self._protection, type_system, type_code, value)
