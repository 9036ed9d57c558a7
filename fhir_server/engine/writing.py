"""Shared steps of every write: validate the resource, stamp its meta, plan the change, commit it.

Single interactions and transaction entries both go through these functions, so the rules of a
write (validation, versioning, identical-content detection, index entries, outbox events, hooks)
are written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from fhir_server.crypto.random_pool import time_ordered_uuid
from fhir_server.engine.access_control import check_writes, with_access_tags
from fhir_server.engine.context import EngineContext
from fhir_server.engine.hooks import PlannedWrite
from fhir_server.engine.instants import instant_after, now_instant
from fhir_server.engine.jsonio import dump
from fhir_server.engine.write_validation import Checked
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.protocol import Change, Method, OutboxEvent, StoredVersion
from fhir_server.types import ResourceDict

CHANGE_TOPIC = "resource-changed"


def new_id() -> str:
    """A fresh server-assigned logical id: a version 7 UUID, so ids sort in creation order
    (``time_ordered_uuid``: new rows land at the right edge of the stores' id indexes)."""
    return str(time_ordered_uuid())


def check_resource(ctx: EngineContext, resource: ResourceDict, resource_type: str, *,
                   intake: bool = False) -> Checked:
    """Refuse a body whose type does not match the URL (400) or that the validation refuses
    (422); otherwise the resource to store (as the prepare hooks made it, tagged in tag mode)
    and the issues to report. ``intake``: the resource is written by an intake bundle (see
    ``write_validation.py``)."""
    declared = resource.get("resourceType")
    if declared != resource_type:
        raise FhirError(ErrorCode.TYPE_MISMATCH,
                        f"The body is a {str(declared)[:60]} but the URL is for {resource_type}",
                        expression=("resourceType",))
    return ctx.validation.check(ctx.hooks.run_prepare(resource, ctx), intake=intake)


def stamp(resource: ResourceDict, id: str, version: int, last_updated: str) -> ResourceDict:
    """A copy of the resource with the server-owned id, meta.versionId and meta.lastUpdated."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items()
            if k not in ("versionId", "lastUpdated")}
    meta = {"versionId": str(version), "lastUpdated": last_updated, **meta}
    stamped: ResourceDict = {"resourceType": resource["resourceType"], "id": id, "meta": meta}
    for key, value in resource.items():
        if key not in stamped:
            stamped[key] = value
    return stamped


def without_server_meta(resource: ResourceDict) -> ResourceDict:
    """The resource minus the server-owned meta fields, to compare content across versions."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items()
            if k not in ("versionId", "lastUpdated")}
    stripped = {k: v for k, v in resource.items() if k != "meta"}
    if meta:
        stripped["meta"] = meta
    return stripped


def load(ctx: EngineContext, stored: StoredVersion) -> ResourceDict:
    """The plaintext resource of a stored (non-deleted) version."""
    data: ResourceDict = orjson.loads(plaintext_body(ctx, stored))
    return data


def plaintext_body(ctx: EngineContext, stored: StoredVersion) -> bytes:
    """The plaintext JSON bytes of a stored (non-deleted) version, without re-serializing."""
    assert stored.body is not None
    return ctx.cipher.open_stored(stored.body, f"{stored.resource_type}/{stored.id}")


def plan_put(ctx: EngineContext, *, resource: ResourceDict, resource_type: str, id: str,
             current: StoredVersion | None, method: Method) -> PlannedWrite:
    """Plan storing ``resource`` as the next version of ``resource_type/id``.

    ``current`` is the latest stored version (None if the resource never existed).
    """
    previous = load(ctx, current) if current is not None and not current.deleted else None
    resource = with_access_tags(ctx, resource, previous)
    version = (current.version if current is not None else 0) + 1
    last_updated = instant_after(current.last_updated) if current is not None else now_instant()
    stamped = stamp(resource, id, version, last_updated)
    sealed = ctx.cipher.seal(stamped)
    change = Change(resource_type=resource_type, id=id, version=version,
                    expected_version=version - 1, last_updated=last_updated, method=method,
                    body=dump(sealed), index=ctx.indexer.extract(stamped))
    return PlannedWrite(change=change, resource=stamped, body=dump(stamped), previous=previous,
                        created=previous is None)


def plan_delete(ctx: EngineContext, current: StoredVersion) -> PlannedWrite:
    """Plan the deletion of a live resource: a new version without a body."""
    last_updated = instant_after(current.last_updated)
    change = Change(resource_type=current.resource_type, id=current.id,
                    version=current.version + 1, expected_version=current.version,
                    last_updated=last_updated, method="DELETE", body=None)
    return PlannedWrite(change=change, resource=None, body=None, previous=load(ctx, current),
                        created=False)


def is_identical(write: PlannedWrite) -> bool:
    """True when an update would store the same content as the current version."""
    if write.previous is None or write.resource is None:
        return False
    return without_server_meta(write.previous) == without_server_meta(write.resource)


def change_event(write: PlannedWrite) -> OutboxEvent:
    """The ``resource-changed`` outbox event of a write; it carries no resource content."""
    change = write.change
    action = "delete" if change.body is None else ("create" if write.created else "update")
    payload: dict[str, Any] = {"resourceType": change.resource_type, "id": change.id,
                               "versionId": str(change.version), "action": action}
    return OutboxEvent(id=new_id(), topic=CHANGE_TOPIC, payload=orjson.dumps(payload),
                       created=change.last_updated)


async def commit_writes(ctx: EngineContext, writes: Sequence[PlannedWrite]) -> None:
    """Check the caller may make the writes, run the before-commit hooks, then store the
    writes, the hooks' further writes and the events atomically."""
    if not writes:
        return
    await check_writes(ctx, writes)
    added = await ctx.hooks.run_before_commit(writes, ctx)
    effects = [item for item in added if isinstance(item, PlannedWrite)]
    events = [item for item in added if isinstance(item, OutboxEvent)]
    watched = [w for w in (*writes, *effects)
               if ctx.change_events or w.change.resource_type in ctx.change_event_types]
    events = [change_event(w) for w in watched] + events
    await ctx.store.commit([w.change for w in (*writes, *effects)], events)
