"""update, update-as-create and conditional update (https://hl7.org/fhir/R4/http.html#update)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import replace

from fhir_server.engine.access_control import check_writes
from fhir_server.engine.conditional import find_matches, multiple_matches
from fhir_server.engine.context import EngineContext
from fhir_server.engine.hooks import PlannedWrite
from fhir_server.engine.interactions.create import create_checked
from fhir_server.engine.resource_types import require_id, require_type
from fhir_server.engine.results import ResourceResult
from fhir_server.engine.write_validation import Checked
from fhir_server.engine.writing import (
    check_resource,
    commit_writes,
    is_identical,
    plaintext_body,
    plan_put,
)
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.protocol import Method, StoredVersion, VersionConflict
from fhir_server.types import ResourceDict

WRITE_ATTEMPTS = 16
"""Tries of a write that lost a compare-and-set to a concurrent writer (no If-Match given)."""


async def pause_before_retry(attempt: int) -> None:
    """A short random pause, growing with the attempt, so that racing writers spread out."""
    if attempt:
        await asyncio.sleep(random.uniform(0, 0.002 * attempt))


def check_if_match(current: StoredVersion | None, if_match: int | None, label: str) -> None:
    """Refuse with 412 when ``If-Match`` names another version than the current one."""
    if if_match is None:
        return
    actual = current.version if current is not None else 0
    if actual != if_match:
        raise FhirError(ErrorCode.PRECONDITION_FAILED,
                        f'If-Match W/"{if_match}" does not match the current version of {label} '
                        f"({actual or 'none'}): read it again and retry")


def check_body_id(resource: ResourceDict, id: str) -> None:
    """An update's body must carry the URL's id (400 otherwise)."""
    body_id = resource.get("id")
    if body_id is None:
        raise FhirError(ErrorCode.ID_MISMATCH,
                        f"The resource has no id: an update must carry the id of the URL ('{id}')",
                        expression=("id",))
    if body_id != id:
        raise FhirError(ErrorCode.ID_MISMATCH,
                        f"The resource id '{str(body_id)[:64]}' differs from the URL id '{id}'",
                        expression=("id",))


async def commit_or_conflict(ctx: EngineContext, write: PlannedWrite,
                             if_match: int | None) -> bool:
    """Commit one write; False on a concurrent change (retry), 412 if the client used If-Match."""
    try:
        await commit_writes(ctx, [write])
    except VersionConflict:
        if if_match is not None:
            raise FhirError(ErrorCode.PRECONDITION_FAILED,
                            f"{write.change.resource_type}/{write.change.id} was changed "
                            f'concurrently: If-Match W/"{if_match}" no longer holds') from None
        return False
    return True


def conflict(resource_type: str, id: str) -> FhirError:
    return FhirError(ErrorCode.VERSION_CONFLICT,
                     f"{resource_type}/{id} is being changed by others: retry")


NextContent = Callable[[StoredVersion | None], Checked]
"""Gives the validated content of the next version from the current one (re-run after a lost
race)."""


async def write_next_version(ctx: EngineContext, resource_type: str, id: str,
                             next_content: NextContent, *, if_match: int | None,
                             method: Method) -> ResourceResult:
    """Read, check If-Match, plan and commit the next version, retrying lost races.

    Identical content makes no new version. Shared by update and patch.
    """
    for attempt in range(WRITE_ATTEMPTS):
        await pause_before_retry(attempt)
        current = await ctx.store.read(resource_type, id)
        check_if_match(current, if_match, f"{resource_type}/{id}")
        checked = next_content(current)
        write = plan_put(ctx, resource=checked.resource, resource_type=resource_type,
                         id=id, current=current, method=method)
        if current is not None and is_identical(write):
            await check_writes(ctx, [write])
            return ResourceResult.of_stored(current, plaintext_body(ctx, current),
                                            message="No change: the content is identical",
                                            issues=checked.issues)
        if await commit_or_conflict(ctx, write, if_match):
            return ResourceResult.of_write(write, issues=checked.issues)
    raise conflict(resource_type, id)


async def update(ctx: EngineContext, resource_type: str, id: str, resource: ResourceDict,
                 *, if_match: int | None = None, method: Method = "PUT") -> ResourceResult:
    """Store a new version (201 when this creates the resource); identical content: no version."""
    require_type(resource_type)
    require_id(id)
    checked = check_resource(ctx, resource, resource_type)
    check_body_id(resource, id)
    return await write_next_version(ctx, resource_type, id, lambda _: checked,
                                    if_match=if_match, method=method)


async def conditional_update(ctx: EngineContext, resource_type: str, criteria: str,
                             resource: ResourceDict, *, if_match: int | None = None,
                             base_url: str | None = None) -> ResourceResult:
    """``PUT Type?criteria``: create when nothing matches, update the single match, 412 if more."""
    require_type(resource_type)
    checked = check_resource(ctx, resource, resource_type)
    matches = await find_matches(ctx, resource_type, criteria, base_url=base_url)
    if len(matches) > 1:
        raise multiple_matches(resource_type, criteria)
    if not matches:
        body_id = resource.get("id")
        if isinstance(body_id, str):
            return await write_next_version(ctx, resource_type, require_id(body_id),
                                            lambda _: checked, if_match=if_match, method="PUT")
        return await create_checked(ctx, resource_type, checked)
    match_id = matches[0].id
    if resource.get("id") not in (None, match_id):
        raise FhirError(ErrorCode.ID_MISMATCH,
                        f"The resource id '{str(resource.get('id'))[:64]}' differs from the id of "
                        f"the resource matching the criteria ('{match_id}')", expression=("id",))
    identified = replace(checked, resource={**checked.resource, "id": match_id})
    return await write_next_version(ctx, resource_type, match_id, lambda _: identified,
                                    if_match=if_match, method="PUT")
