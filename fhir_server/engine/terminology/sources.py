"""Where the terminology operations find ValueSets and CodeSystems: the store, then those held.

Held in memory: the core R4 definitions and the implementation guide's (``Terminology``). The
store may hold more (a client's ValueSet over its own CodeSystem) or other versions: a stored
resource takes the place of a held one with the same canonical url; among stored resources
sharing a url, the one with the version asked for, else the latest updated. The guide's
resources are stored too (``guide_installation``), identical to the held ones: they change
nothing, and the held Terminology (with its compiled ValueSets and indexes) answers.

For a ValueSet, the ValueSets it includes and the CodeSystems they draw on are looked up in the
store as well (one ``url`` search each, at most ``MAX_LOOKUPS`` per request), so that a stored
ValueSet expands over stored CodeSystems as ours do over the guide's.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fhir_server.engine.context import EngineContext
from fhir_server.engine.writing import load, without_server_meta
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.query import SearchQuery, UriClause
from fhir_server.types import ResourceDict
from fhir_server.validation.terminology import (
    CodeSystemIndex,
    Terminology,
    canonical_url,
    index_code_system,
)

MAX_LOOKUPS: Final = 50
"""The most canonical urls one request looks up in the store."""
_CANDIDATES: Final = 20
"""The most stored resources read for one canonical url."""


@dataclass(frozen=True, slots=True)
class ResolvedValueSet:
    """A ValueSet to work on, with the Terminology holding it and what it depends on."""

    resource: Mapping[str, Any]
    url: str
    terminology: Terminology


def split_canonical(reference: str, version: str | None = None) -> tuple[str, str | None]:
    """``url|version`` -> (url, version); an explicit ``version`` wins."""
    url, _, written = reference.partition("|")
    return url, version or written or None


class TerminologySources:
    """Finds ValueSets and CodeSystems for one request, stored ones first."""

    def __init__(self, held: Terminology) -> None:
        self._held = held

    @property
    def held(self) -> Terminology:
        return self._held

    async def value_set(self, ctx: EngineContext, *, url: str | None = None,
                        version: str | None = None, id: str | None = None,
                        inline: Mapping[str, Any] | None = None) -> ResolvedValueSet:
        """The ValueSet stored as ``ValueSet/id``, given ``inline``, or known by ``url``
        (404 when none is known), and a Terminology holding it."""
        if id is not None:
            resource: Mapping[str, Any] = await read_stored(ctx, "ValueSet", id)
        elif inline is not None:
            resource = inline
        elif url is not None:
            resource = await self._value_set_by_url(ctx, url, version)
        else:
            raise FhirError(ErrorCode.BAD_PARAMETER,
                            "Name the ValueSet: invoke the operation on ValueSet/[id], or give "
                            "its url (or a valueSet resource)", expression=("url",))
        if not isinstance(resource.get("url"), str):
            resource = {**resource, "url": f"urn:uuid:{uuid.uuid4()}"}
        terminology = await self._terminology_for(ctx, resource)
        return ResolvedValueSet(resource, canonical_url(str(resource["url"])), terminology)

    async def code_system(self, ctx: EngineContext, *, url: str | None = None,
                          version: str | None = None, id: str | None = None) -> CodeSystemIndex:
        """The index of the CodeSystem stored as ``CodeSystem/id`` or known by ``url``; 404
        when this server holds none."""
        if id is not None:
            return self._index(await read_stored(ctx, "CodeSystem", id))
        if url is None:
            raise FhirError(ErrorCode.BAD_PARAMETER,
                            "Name the code system: give 'system' (or 'url'), or invoke the "
                            "operation on CodeSystem/[id]", expression=("system",))
        stored = await stored_by_url(ctx, "CodeSystem", url, version)
        if stored is not None:
            return self._index(stored)
        held = self._held.code_system(url)
        if held is None or not _version_matches(held.version, version):
            which = f"{url} version {version}" if version else url
            raise FhirError(ErrorCode.NOT_FOUND,
                            f"This server holds no CodeSystem {which[:200]}: its codes cannot be "
                            "looked up or checked here (no external terminology server is used)",
                            expression=("system",))
        return held

    def _index(self, resource: Mapping[str, Any]) -> CodeSystemIndex:
        url = resource.get("url")
        held = self._held.code_system_resource(url) if isinstance(url, str) else None
        if held is not None and _same(resource, held):
            index = self._held.code_system(canonical_url(str(url)))
            if index is not None:
                return index
        return index_code_system(resource)

    async def _value_set_by_url(self, ctx: EngineContext, reference: str,
                                version: str | None) -> Mapping[str, Any]:
        url, version = split_canonical(reference, version)
        stored = await stored_by_url(ctx, "ValueSet", url, version)
        if stored is not None:
            return stored
        held = self._held.value_set(url)
        if held is None or not _version_matches(held.get("version"), version):
            which = f"{url} version {version}" if version else url
            raise FhirError(ErrorCode.NOT_FOUND,
                            f"This server knows no ValueSet {which[:200]}", expression=("url",))
        return held

    async def _terminology_for(self, ctx: EngineContext,
                               value_set: Mapping[str, Any]) -> Terminology:
        """The held Terminology, with the stored resources ``value_set`` depends on (and the
        ValueSet itself) in place of held ones where they differ."""
        overlay: list[Mapping[str, Any]] = []
        if not self._holds(value_set):
            overlay.append(value_set)
        seen: set[tuple[str, str]] = set()
        pending = [value_set]
        while pending and len(seen) < MAX_LOOKUPS:
            for resource_type, reference in _dependencies(pending.pop()):
                url, version = split_canonical(reference)
                if (resource_type, url) in seen or len(seen) >= MAX_LOOKUPS:
                    continue
                seen.add((resource_type, url))
                stored = await stored_by_url(ctx, resource_type, url, version)
                if stored is not None and not self._holds(stored):
                    overlay.append(stored)
                found = stored if stored is not None else self._held.value_set(url)
                if resource_type == "ValueSet" and found is not None:
                    pending.append(found)
        return self._held.overlaid(overlay) if overlay else self._held

    def _holds(self, resource: Mapping[str, Any]) -> bool:
        """Whether the held Terminology has this very resource under its url."""
        url = resource.get("url")
        if not isinstance(url, str):
            return False
        held = (self._held.value_set(url) if resource.get("resourceType") == "ValueSet"
                else self._held.code_system_resource(url))
        return held is not None and _same(resource, held)


def _version_matches(held: Any, wanted: str | None) -> bool:
    """Whether a held resource answers a request for ``wanted`` (None: any version). One that
    states no version (the vendored core code systems) answers any."""
    return wanted is None or held is None or held == wanted


def _same(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    return bool(without_server_meta(dict(one)) == without_server_meta(dict(other)))


def _dependencies(value_set: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(type, canonical) of the CodeSystems and ValueSets a ValueSet's compose names."""
    compose = value_set.get("compose")
    found: list[tuple[str, str]] = []
    if not isinstance(compose, dict):
        return found
    for name in ("include", "exclude"):
        for part in compose.get(name) or ():
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("system"), str):
                found.append(("CodeSystem", part["system"]))
            found.extend(("ValueSet", str(ref)) for ref in part.get("valueSet") or ())
    return found


async def read_stored(ctx: EngineContext, resource_type: str, id: str) -> ResourceDict:
    """The current ``resource_type/id``; 404 when unknown, 410 when deleted."""
    stored = await ctx.store.read(resource_type, id)
    if stored is None:
        raise FhirError(ErrorCode.NOT_FOUND, f"{resource_type}/{id[:64]} is not known")
    if stored.deleted:
        raise FhirError(ErrorCode.GONE, f"{resource_type}/{id[:64]} has been deleted")
    return load(ctx, stored)


async def stored_by_url(ctx: EngineContext, resource_type: str, url: str,
                        version: str | None = None) -> ResourceDict | None:
    """The stored resource with this canonical url (and version, when given): the latest
    updated of those matching."""
    page = await ctx.store.search(SearchQuery(
        resource_type, (UriClause("url", (url,)),), count=_CANDIDATES))
    for stored in sorted(page.matches, key=lambda found: found.last_updated, reverse=True):
        resource = load(ctx, stored)
        if version is None or resource.get("version") == version:
            return resource
    return None
