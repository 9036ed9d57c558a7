"""The implementation guide's conformance resources in the store, read-only for clients.

At start (``install_guide``), every conformance resource of the guide (StructureDefinitions with
their generated snapshot, ValueSets, CodeSystems, SearchParameters, OperationDefinitions,
Questionnaires, the ImplementationGuide) is written under its own id, so that read, vread,
history and search (``url``, ``version``…) serve them like any resource. Idempotent: a resource
whose stored content equals the guide's gets no new version; a changed one gets one; a resource
a former guide installed and the current one no longer has is deleted. One store commit, run
without the before-commit hooks (the guide is the server's own content, not a client's write)
and without ``resource-changed`` events. A mark records what was installed (``guide|`` marks),
so an unchanged guide costs one mark read at the next start.

Clients may read them but not change them: ``GuideGuard.check_writes``, a before-commit hook,
refuses an update, patch or delete of a guide resource with 405 Method Not Allowed (``Allow:
GET, HEAD``), in a transaction too. 405 rather than 409: nothing a client can do (no version, no
retry) makes the write acceptable, the resource is read-only on this server, as HAPI FHIR
answers for an interaction a resource does not support; 409 would read as a version conflict to
retry. A client resource claiming the canonical ``url`` of a guide resource of its type is
refused with 422: a canonical URL names one resource.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from fhir_server.engine.context import EngineContext
from fhir_server.engine.hooks import PlannedWrite
from fhir_server.engine.writing import load, plan_delete, plan_put, without_server_meta
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.ig.package import Guide
from fhir_server.storage.protocol import Change, OutboxEvent, VersionConflict
from fhir_server.types import ResourceDict

MARK_PREFIX = "guide|"
DIGEST_MARK = "guide|digest"
"""The digest of the guide content last installed completely."""
RESOURCE_MARK = "guide|resource|"
"""``guide|resource|{Type}/{id}``: a resource the guide installed (value: the package id)."""
ATTEMPTS = 3
"""Installations tried when another process installs at the same time (a version conflict)."""
READ_ONLY_METHODS = "GET, HEAD"


@dataclass(frozen=True, slots=True)
class GuideResource:
    """One conformance resource of the guide, as it is stored."""

    resource_type: str
    id: str
    resource: ResourceDict

    @property
    def key(self) -> str:
        return f"{self.resource_type}/{self.id}"


@dataclass(frozen=True, slots=True)
class InstallReport:
    """What an installation changed: resources created or updated, and deleted."""

    written: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: bool = False
    """True when the digest mark said the store already holds this guide."""


def guide_resources(guide: Guide) -> tuple[GuideResource, ...]:
    """Every conformance resource of the guide, sorted by type and id."""
    found = [GuideResource(str(r["resourceType"]), str(r["id"]), r)
             for r in guide.files.values()]
    return tuple(sorted(found, key=lambda item: (item.resource_type, item.id)))


def guide_digest(guide: Guide) -> str:
    """A digest of the guide's conformance resources, computed once per loaded guide."""
    cached = _DIGESTS.get(id(guide))
    if cached is not None and cached[0] is guide:
        return cached[1]
    content = [[item.key, item.resource] for item in guide_resources(guide)]
    digest = hashlib.sha256(orjson.dumps([guide.package_id, content],
                                         option=orjson.OPT_SORT_KEYS)).hexdigest()
    if len(_DIGESTS) >= _DIGESTS_KEPT:
        _DIGESTS.clear()
    _DIGESTS[id(guide)] = (guide, digest)
    return digest


_DIGESTS: dict[int, tuple[Guide, str]] = {}
"""Digests by guide identity (the guide is kept with its digest, so its id is not reused)."""
_DIGESTS_KEPT = 8


async def install_guide(ctx: EngineContext, guide: Guide) -> InstallReport:
    """Write the guide's conformance resources into the store (see the module docstring)."""
    digest = guide_digest(guide)
    marks = await ctx.store.read_marks(MARK_PREFIX)
    if marks.get(DIGEST_MARK) == digest:
        return InstallReport(unchanged=True)
    for attempt in range(ATTEMPTS):
        try:
            report = await _install_once(ctx, guide, marks)
            break
        except VersionConflict:
            if attempt == ATTEMPTS - 1:
                raise
            marks = await ctx.store.read_marks(MARK_PREFIX)
    await ctx.store.write_marks(_marks_after(guide, marks, digest))
    return report


async def _install_once(ctx: EngineContext, guide: Guide,
                        marks: Mapping[str, str]) -> InstallReport:
    resources = guide_resources(guide)
    writes = [write for item in resources if (write := await _planned(ctx, item)) is not None]
    kept = {item.key for item in resources}
    deletions = [write for key in _installed(marks) if key not in kept
                 and (write := await _planned_deletion(ctx, key)) is not None]
    changes: list[Change] = [w.change for w in (*writes, *deletions)]
    if changes:
        await ctx.store.commit(changes)
    return InstallReport(written=tuple(_key(w) for w in writes),
                         deleted=tuple(_key(w) for w in deletions))


async def _planned(ctx: EngineContext, item: GuideResource) -> PlannedWrite | None:
    """The write storing ``item``, or None when the store holds it already."""
    current = await ctx.store.read(item.resource_type, item.id)
    if (current is not None and not current.deleted
            and without_server_meta(load(ctx, current)) == without_server_meta(item.resource)):
        return None
    return plan_put(ctx, resource=item.resource, resource_type=item.resource_type, id=item.id,
                    current=current, method="PUT")


async def _planned_deletion(ctx: EngineContext, key: str) -> PlannedWrite | None:
    resource_type, _, id = key.partition("/")
    current = await ctx.store.read(resource_type, id)
    if current is None or current.deleted:
        return None
    return plan_delete(ctx, current)


def _installed(marks: Mapping[str, str]) -> list[str]:
    return sorted(name.removeprefix(RESOURCE_MARK) for name in marks
                  if name.startswith(RESOURCE_MARK))


def _marks_after(guide: Guide, marks: Mapping[str, str], digest: str) -> dict[str, str | None]:
    """The marks to write: every current resource, the removed ones cleared, the digest."""
    current = {RESOURCE_MARK + item.key: guide.package_id for item in guide_resources(guide)}
    updated: dict[str, str | None] = {name: None for name in marks
                                      if name.startswith(RESOURCE_MARK) and name not in current}
    updated.update({name: value for name, value in current.items() if marks.get(name) != value})
    updated[DIGEST_MARK] = digest
    return updated


def _key(write: PlannedWrite) -> str:
    return f"{write.change.resource_type}/{write.change.id}"


class GuideGuard:
    """The before-commit hook keeping the guide's resources read-only."""

    def __init__(self, guide: Guide) -> None:
        self._package = guide.package_id
        resources = guide_resources(guide)
        self._keys = frozenset((item.resource_type, item.id) for item in resources)
        self._owners: Mapping[tuple[str, str], str] = {
            (item.resource_type, str(item.resource["url"])): item.id
            for item in resources if isinstance(item.resource.get("url"), str)}

    async def check_writes(self, writes: Sequence[PlannedWrite],
                           ctx: EngineContext) -> Sequence[OutboxEvent]:
        """Refuse any write to a guide resource (405), or claiming a guide canonical (422)."""
        for write in writes:
            self._check(write)
        return ()

    def _check(self, write: PlannedWrite) -> None:
        change = write.change
        if (change.resource_type, change.id) in self._keys:
            action = "deleted" if change.body is None else "modified"
            raise FhirError(
                ErrorCode.METHOD_NOT_ALLOWED,
                f"{change.resource_type}/{change.id} comes from the implementation guide package "
                f"{self._package} and cannot be {action} through the API: it is read-only here "
                "(change the guide and restart the server, or use another id)",
                headers={"Allow": READ_ONLY_METHODS})
        url = write.resource.get("url") if write.resource is not None else None
        owner = self._owners.get((change.resource_type, url)) if isinstance(url, str) else None
        if owner is not None:
            raise FhirError(
                ErrorCode.BUSINESS_RULE,
                f"The url {url} is the canonical URL of {change.resource_type}/{owner} of the "
                f"implementation guide package {self._package}: give this resource another url",
                expression=(f"{change.resource_type}.url",))
