"""delete and conditional delete (https://hl7.org/fhir/R4/http.html#delete)."""

from __future__ import annotations

from fhir_server.engine.conditional import find_matches, multiple_matches
from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions.read import not_found
from fhir_server.engine.interactions.update import (
    WRITE_ATTEMPTS,
    commit_or_conflict,
    conflict,
    pause_before_retry,
)
from fhir_server.engine.resource_types import require_type, valid_id
from fhir_server.engine.results import ResourceResult
from fhir_server.engine.writing import plan_delete


async def delete(ctx: EngineContext, resource_type: str, id: str) -> ResourceResult:
    """Delete (a new version without content). Unknown: 404; deleted already: no new version."""
    require_type(resource_type)
    for attempt in range(WRITE_ATTEMPTS):
        await pause_before_retry(attempt)
        current = await ctx.store.read(resource_type, id) if valid_id(id) else None
        if current is None:
            raise not_found(resource_type, id)
        if current.deleted:
            return ResourceResult.of_stored(current, None, status=204,
                                            message=f"{resource_type}/{id} was already deleted")
        write = plan_delete(ctx, current)
        if await commit_or_conflict(ctx, write, None):
            return ResourceResult.of_write(write, status=204,
                                           message=f"{resource_type}/{id} deleted")
    raise conflict(resource_type, id)


async def conditional_delete(ctx: EngineContext, resource_type: str, criteria: str, *,
                             base_url: str | None = None) -> ResourceResult | None:
    """``DELETE Type?criteria``: delete the single match; None when nothing matched; 412 if more."""
    require_type(resource_type)
    matches = await find_matches(ctx, resource_type, criteria, base_url=base_url)
    if len(matches) > 1:
        raise multiple_matches(resource_type, criteria)
    if not matches:
        return None
    return await delete(ctx, resource_type, matches[0].id)
