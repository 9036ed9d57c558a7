"""What every interaction needs: the store, the write validation, the cipher, the indexer, the
hooks, the custom search-parameter catalogue and the caller's access limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fhir_server.crypto.fields import FieldCipher
from fhir_server.engine.hooks import Hooks
from fhir_server.engine.indexing import Indexer
from fhir_server.engine.paging import CursorSigner
from fhir_server.engine.search_parameters import SearchParameterCatalogue
from fhir_server.engine.write_validation import WriteValidation
from fhir_server.storage.protocol import Store

if TYPE_CHECKING:
    from fhir_server.access.access import Access


@dataclass(frozen=True, slots=True)
class Limits:
    """Paging limits of search and history."""

    default_page_size: int = 20
    max_page_size: int = 1000
    max_offset: int = 10_000


@dataclass(frozen=True, slots=True)
class EngineContext:
    """The collaborators of the engine, built once at start-up (see ``engine/engine.py``)."""

    store: Store
    validation: WriteValidation
    """What every write is validated against, and the mode (``engine/write_validation.py``)."""
    cipher: FieldCipher
    indexer: Indexer
    hooks: Hooks
    cursors: CursorSigner
    limits: Limits
    search_parameters: SearchParameterCatalogue
    """The custom SearchParameters; it switches ``indexer``'s registries when they change."""
    change_events: bool = False
    """Whether every write records a ``resource-changed`` outbox event."""
    change_event_types: frozenset[str] = frozenset()
    """Types whose writes record a ``resource-changed`` event even when ``change_events`` is
    off (Task: the subscriptions watch it)."""
    access: Access | None = None
    """What limits the caller (scopes, role policy); None: unlimited (the operator, the
    server's own work). Applied by ``engine/access_control.py``."""
