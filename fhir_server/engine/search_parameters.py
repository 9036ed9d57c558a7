"""The custom search-parameter catalogue: SearchParameters of profiles/ and the store, ready or not.

Sources: the files ``profiles/**/SearchParameter-*.json`` (read at start) and the active
SearchParameter resources of the store (created, updated, deleted through the REST API). The
catalogue turns them into the indexer's ``Registries``: every active custom parameter is extracted
on every write, but a search may use it (and the CapabilityStatement lists it) only once it is
*ready*: the index holds it for every stored resource of its bases. Until then it is *pending*.

Readiness is kept in the store's marks, ``search-parameter|<url>``, written by the ``$reindex``
job once it has re-extracted every resource of the parameter's bases: the definition's
fingerprint and, for a stored SearchParameter, its id and the version the job worked from.
- A stored parameter is ready when its mark has its current fingerprint and id, and every version
  since the marked one is active with that fingerprint: a deletion, a retirement or a change of
  definition in between (even one changed back) let resources be written without its entries.
- A profile parameter is ready when its mark has its fingerprint, or when the store holds no
  resource of its bases (nothing to re-extract: the mark is written then). Otherwise the store
  was filled without it, and it waits for a ``$reindex``.

The implementation guide's installation stores the profiles' SearchParameters too (readable and
searchable like the guide's other conformance resources): a stored SearchParameter identical in
url and fingerprint to a profile's is that profile parameter, not another entry.

Writes of SearchParameter resources go through ``check_writes`` (a before-commit hook): an active
one the server cannot use is refused with 422. The engine reloads the catalogue after each write
touching a SearchParameter; searches and the CapabilityStatement reload it (at most once per
``refresh_seconds``) while a parameter is pending, so a ``$reindex`` run by a worker is seen.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from fhir_server.crypto.fields import FieldCipher
from fhir_server.engine.hooks import PlannedWrite
from fhir_server.engine.indexing import Indexer
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.ig.package import default_guide_directory
from fhir_server.search.custom import (
    CustomParameter,
    InvalidSearchParameter,
    check_code_is_free,
    check_extractable,
    custom_parameter,
)
from fhir_server.search.registry import Registries, default_registry
from fhir_server.storage.protocol import OutboxEvent, Store, StoredVersion
from fhir_server.storage.query import SearchQuery, TokenClause, TokenValue
from fhir_server.types import ResourceDict

if TYPE_CHECKING:
    from fhir_server.engine.context import EngineContext

logger = logging.getLogger(__name__)

RESOURCE_TYPE = "SearchParameter"
MARK_PREFIX = "search-parameter|"
PROFILE_PATTERN = "**/SearchParameter-*.json"
_PAGE = 200


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One active custom parameter; ``resource_id`` and ``version`` name its stored
    SearchParameter (None and 0 for a parameter from the profiles)."""

    parameter: CustomParameter
    ready: bool
    resource_id: str | None = None
    version: int = 0


@dataclass(frozen=True, slots=True)
class ReadinessMark:
    """What ``$reindex`` recorded when it indexed a parameter for every stored resource."""

    fingerprint: str
    resource_id: str | None = None
    version: int = 0

    def dump(self) -> str:
        return orjson.dumps({"fingerprint": self.fingerprint, "resource": self.resource_id,
                             "version": self.version}).decode()

    @classmethod
    def load(cls, raw: str | None) -> ReadinessMark | None:
        """The mark as read back; None when absent or unreadable (then: not ready)."""
        if raw is None:
            return None
        try:
            data = orjson.loads(raw)
            resource = data.get("resource")
            return cls(str(data["fingerprint"]), None if resource is None else str(resource),
                       int(data.get("version", 0)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None


@functools.cache
def profile_parameters(directory: Path | None = None) -> tuple[CustomParameter, ...]:
    """The active SearchParameters shipped in ``directory`` (default: the implementation guide,
    ``profiles/``; none if it does not exist), read once per process.

    Raises ValueError naming the file when one cannot be used: they ship with the server.
    """
    if directory is None:
        directory = default_guide_directory()
    found: list[CustomParameter] = []
    registry = default_registry()
    for path in sorted(directory.glob(PROFILE_PATTERN)) if directory.is_dir() else ():
        try:
            resource = orjson.loads(path.read_bytes())
            if resource.get("resourceType") != RESOURCE_TYPE or resource.get("status") != "active":
                continue
            parameter = custom_parameter(resource)
            check_extractable(parameter)
            check_code_is_free(parameter, registry)
        except (orjson.JSONDecodeError, InvalidSearchParameter) as exc:
            raise ValueError(f"{path.name}: not a usable SearchParameter: {exc}") from None
        if any(p.url == parameter.url for p in found):
            raise ValueError(f"{path.name}: the url {parameter.url} is defined twice")
        registry = registry.extended([parameter.definition()])
        found.append(parameter)
    return tuple(found)


class SearchParameterCatalogue:
    """The active custom parameters and their readiness; installs the indexer's registries."""

    def __init__(self, *, store: Store, indexer: Indexer, cipher: FieldCipher,
                 profiles: Sequence[CustomParameter] = (), refresh_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._indexer = indexer
        self._cipher = cipher
        self._profiles = tuple(profiles)
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._official = default_registry()
        self._shipped = self._official.extended(p.definition() for p in self._profiles)
        self._lock = asyncio.Lock()
        self._loaded_at: float | None = None
        self._entries: tuple[CatalogueEntry, ...] = ()
        self._install(tuple(CatalogueEntry(p, ready=False) for p in self._profiles))

    @property
    def entries(self) -> tuple[CatalogueEntry, ...]:
        return self._entries

    def pending(self) -> tuple[CatalogueEntry, ...]:
        return tuple(entry for entry in self._entries if not entry.ready)

    def find(self, url: str) -> CatalogueEntry | None:
        return next((e for e in self._entries if e.parameter.url == url), None)

    async def reload(self) -> None:
        """Read the stored SearchParameters and the marks again, and install the result."""
        async with self._lock:
            marks = await self._store.read_marks(MARK_PREFIX)
            entries = [await self._profile_entry(p, marks) for p in self._profiles]
            registry = self._shipped
            for stored, parameter in await self._stored_parameters():
                if self._is_shipped(parameter):
                    continue  # the guide's own, stored by its installation: already an entry
                try:
                    _check_url(parameter, entries)
                    check_code_is_free(parameter, registry)
                except InvalidSearchParameter as refusal:
                    logger.warning("SearchParameter/%s is not used: %s", stored.id, refusal)
                    continue
                registry = registry.extended([parameter.definition()])
                ready = await self._stored_ready(parameter, stored, marks)
                entries.append(CatalogueEntry(parameter, ready, stored.id, stored.version))
            self._install(tuple(entries))
            self._loaded_at = self._clock()

    async def refresh_if_pending(self) -> None:
        """Reload when a parameter is pending and the last load is older than the period."""
        if not any(not entry.ready for entry in self._entries):
            return
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self._refresh_seconds:
            self._loaded_at = now  # concurrent searches meanwhile do not reload again
            await self.reload()

    async def mark_ready(self, entries: Iterable[CatalogueEntry]) -> None:
        """Record that the index now holds these parameters for every stored resource."""
        marks: dict[str, str | None] = {
            MARK_PREFIX + e.parameter.url: ReadinessMark(e.parameter.fingerprint, e.resource_id,
                                                         e.version).dump()
            for e in entries}
        await self._store.write_marks(marks)

    async def check_writes(self, writes: Sequence[PlannedWrite],
                           ctx: EngineContext) -> Sequence[OutboxEvent]:
        """Before-commit hook: refuse (422) an active SearchParameter the server cannot use."""
        written = [w for w in writes if w.change.resource_type == RESOURCE_TYPE]
        if not written:
            return ()
        rewritten = {w.change.id for w in written}
        kept = [e for e in self._entries if e.resource_id not in rewritten]
        registry = self._shipped.extended(
            e.parameter.definition() for e in kept if e.resource_id is not None)
        for write in written:
            if write.resource is None or write.resource.get("status") != "active":
                continue
            try:
                parameter = _usable(write.resource)
                _check_url(parameter, kept)
                check_code_is_free(parameter, registry)
            except InvalidSearchParameter as refusal:
                raise FhirError(ErrorCode.BUSINESS_RULE,
                                f"SearchParameter/{write.change.id} cannot be used by this "
                                f"server: {refusal.reason}",
                                expression=(refusal.element,)) from None
            registry = registry.extended([parameter.definition()])
            kept.append(CatalogueEntry(parameter, False, write.change.id, write.change.version))
        return ()

    def _is_shipped(self, parameter: CustomParameter) -> bool:
        """Whether a stored parameter is one of the profiles' own, unchanged (the copy the
        implementation guide's installation stores: ``engine/guide_installation.py``)."""
        return any(p.url == parameter.url and p.fingerprint == parameter.fingerprint
                   for p in self._profiles)

    def _install(self, entries: tuple[CatalogueEntry, ...]) -> None:
        """Switch the indexer's registries, unless nothing changed (its plans stay built)."""
        if entries == self._entries:
            return
        extracting = self._official.extended(e.parameter.definition() for e in entries)
        searching = self._official.extended(e.parameter.definition() for e in entries if e.ready)
        pending = frozenset((base, e.parameter.code) for e in entries if not e.ready
                            for base in e.parameter.base)
        self._indexer.use(Registries(extracting=extracting, searching=searching,
                                     pending=pending))
        self._entries = entries

    async def _profile_entry(self, parameter: CustomParameter,
                             marks: Mapping[str, str]) -> CatalogueEntry:
        mark = ReadinessMark.load(marks.get(MARK_PREFIX + parameter.url))
        if mark is not None and mark.fingerprint == parameter.fingerprint:
            return CatalogueEntry(parameter, ready=True)
        if await self._holds_any(parameter.base):
            return CatalogueEntry(parameter, ready=False)
        entry = CatalogueEntry(parameter, ready=True)
        await self.mark_ready([entry])
        return entry

    async def _holds_any(self, resource_types: Iterable[str]) -> bool:
        for resource_type in resource_types:
            if (await self._store.search(SearchQuery(resource_type, count=1))).matches:
                return True
        return False

    async def _stored_parameters(self) -> list[tuple[StoredVersion, CustomParameter]]:
        """The usable active SearchParameters of the store, by id (others are logged)."""
        found: list[tuple[StoredVersion, CustomParameter]] = []
        active = (TokenClause("status", (TokenValue(None, "active"),)),)
        after: tuple[object, ...] | None = None
        while True:
            page = await self._store.search(SearchQuery(RESOURCE_TYPE, active, count=_PAGE,
                                                        after=after))
            for stored in page.matches:
                try:
                    found.append((stored, _usable(self._open(stored))))
                except InvalidSearchParameter as refusal:
                    logger.warning("SearchParameter/%s is not used: %s", stored.id, refusal)
            if len(page.matches) < _PAGE:
                return found
            after = (RESOURCE_TYPE, page.matches[-1].id)

    async def _stored_ready(self, parameter: CustomParameter, current: StoredVersion,
                            marks: Mapping[str, str]) -> bool:
        mark = ReadinessMark.load(marks.get(MARK_PREFIX + parameter.url))
        if (mark is None or mark.fingerprint != parameter.fingerprint
                or mark.resource_id != current.id or not 0 < mark.version <= current.version):
            return False
        for version in range(mark.version, current.version):
            earlier = await self._store.read_version(RESOURCE_TYPE, current.id, version)
            if earlier is None or earlier.deleted:
                return False
            resource = self._open(earlier)
            if resource.get("status") != "active":
                return False
            try:
                if custom_parameter(resource).fingerprint != parameter.fingerprint:
                    return False
            except InvalidSearchParameter:
                return False
        return True

    def _open(self, stored: StoredVersion) -> ResourceDict:
        assert stored.body is not None
        opened: ResourceDict = orjson.loads(
            self._cipher.open_stored(stored.body, f"{stored.resource_type}/{stored.id}"))
        return opened


def _usable(resource: Mapping[str, Any]) -> CustomParameter:
    parameter = custom_parameter(resource)
    check_extractable(parameter)
    return parameter


def _check_url(parameter: CustomParameter, entries: Iterable[CatalogueEntry]) -> None:
    for entry in entries:
        if entry.parameter.url == parameter.url:
            owner = ("the server's profiles" if entry.resource_id is None
                     else f"SearchParameter/{entry.resource_id}")
            raise InvalidSearchParameter(
                f"the url {parameter.url} is already defined by {owner}", "SearchParameter.url")

