"""patch and conditional patch with JSON Patch or FHIRPath Patch (https://hl7.org/fhir/R4/http.html#patch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fhir_server.engine.conditional import find_matches, multiple_matches
from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions.read import not_found, read_current
from fhir_server.engine.interactions.update import (
    WRITE_ATTEMPTS,
    check_if_match,
    commit_or_conflict,
    conflict,
    pause_before_retry,
)
from fhir_server.engine.patch import apply_fhirpath_patch, apply_json_patch
from fhir_server.engine.resource_types import require_type
from fhir_server.engine.results import ResourceResult
from fhir_server.engine.writing import (
    check_resource,
    is_identical,
    load,
    plaintext_body,
    plan_put,
)
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import ResourceDict


@dataclass(frozen=True, slots=True)
class PatchDocument:
    """A patch as received: a JSON Patch operation list, or a FHIRPath Patch Parameters resource."""

    kind: Literal["json-patch", "fhirpath-patch"]
    content: Any

    def apply(self, resource: ResourceDict) -> ResourceDict:
        if self.kind == "json-patch":
            return apply_json_patch(resource, self.content)
        return apply_fhirpath_patch(resource, self.content)


def patched_resource(ctx: EngineContext, resource_type: str, id: str, current: ResourceDict,
                     document: PatchDocument) -> ResourceDict:
    """Apply a patch and check the result like an update's body."""
    patched = document.apply(current)
    check_resource(ctx, patched, resource_type)
    if patched.get("id") != id:
        raise FhirError(ErrorCode.INVALID_RESOURCE, "A patch may not change the resource id",
                        expression=("id",))
    return patched


async def patch(ctx: EngineContext, resource_type: str, id: str, document: PatchDocument,
                *, if_match: int | None = None) -> ResourceResult:
    require_type(resource_type)
    for attempt in range(WRITE_ATTEMPTS):
        await pause_before_retry(attempt)
        current = await read_current(ctx, resource_type, id)
        check_if_match(current, if_match, f"{resource_type}/{id}")
        patched = patched_resource(ctx, resource_type, id, load(ctx, current), document)
        write = plan_put(ctx, resource=patched, resource_type=resource_type, id=id,
                         current=current, method="PATCH")
        if is_identical(write):
            return ResourceResult.of_stored(current, plaintext_body(ctx, current),
                                            message="No change: the patch left the content as is")
        if await commit_or_conflict(ctx, write, if_match):
            return ResourceResult.of_write(write)
    raise conflict(resource_type, id)


async def conditional_patch(ctx: EngineContext, resource_type: str, criteria: str,
                            document: PatchDocument, *,
                            if_match: int | None = None) -> ResourceResult:
    """``PATCH Type?criteria``: patch the single match; 404 if none, 412 if several."""
    require_type(resource_type)
    matches = await find_matches(ctx, resource_type, criteria)
    if len(matches) > 1:
        raise multiple_matches(resource_type, criteria)
    if not matches:
        raise not_found(resource_type, f"?{criteria}")
    return await patch(ctx, resource_type, matches[0].id, document, if_match=if_match)
