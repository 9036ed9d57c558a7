"""create and conditional create (https://hl7.org/fhir/R4/http.html#create, #ccreate)."""

from __future__ import annotations

from fhir_server.engine.conditional import find_matches, multiple_matches
from fhir_server.engine.context import EngineContext
from fhir_server.engine.hooks import PlannedWrite
from fhir_server.engine.resource_types import require_type
from fhir_server.engine.results import ResourceResult
from fhir_server.engine.write_validation import Checked
from fhir_server.engine.writing import (
    check_resource,
    commit_writes,
    new_id,
    plaintext_body,
    plan_put,
)
from fhir_server.types import ResourceDict


def plan_create(ctx: EngineContext, resource_type: str, resource: ResourceDict,
                id: str | None = None) -> PlannedWrite:
    """Plan a create of a checked resource under a new server-assigned id (a body id is ignored)."""
    return plan_put(ctx, resource=resource, resource_type=resource_type,
                    id=id or new_id(), current=None, method="POST")


async def create(ctx: EngineContext, resource_type: str, resource: ResourceDict,
                 *, if_none_exist: str | None = None,
                 base_url: str | None = None) -> ResourceResult:
    """Create; with ``If-None-Exist``, return the single existing match instead (200)."""
    require_type(resource_type)
    checked = check_resource(ctx, resource, resource_type)
    if if_none_exist:
        matches = await find_matches(ctx, resource_type, if_none_exist, base_url=base_url)
        if len(matches) > 1:
            raise multiple_matches(resource_type, if_none_exist)
        if matches:
            found = matches[0]
            return ResourceResult.of_stored(found, plaintext_body(ctx, found), status=200,
                                            message="A matching resource exists already")
    return await create_checked(ctx, resource_type, checked)


async def create_checked(ctx: EngineContext, resource_type: str,
                         checked: Checked) -> ResourceResult:
    """Store a validated resource under a new id."""
    write = plan_create(ctx, resource_type, checked.resource)
    await commit_writes(ctx, [write])
    return ResourceResult.of_write(write, issues=checked.issues)
