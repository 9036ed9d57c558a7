"""patch and conditional patch with JSON Patch or FHIRPath Patch (https://hl7.org/fhir/R4/http.html#patch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fhir_server.engine.conditional import find_matches, multiple_matches
from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions.read import gone, not_found
from fhir_server.engine.interactions.update import write_next_version
from fhir_server.engine.patch import apply_fhirpath_patch, apply_json_patch
from fhir_server.engine.resource_types import require_type
from fhir_server.engine.results import ResourceResult
from fhir_server.engine.write_validation import Checked
from fhir_server.engine.writing import check_resource, load
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.protocol import StoredVersion
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
                     document: PatchDocument, *, intake: bool = False) -> Checked:
    """Apply a patch and validate the result like an update's body."""
    patched = document.apply(current)
    if patched.get("id") != id:
        raise FhirError(ErrorCode.INVALID_RESOURCE, "A patch may not change the resource id",
                        expression=("id",))
    return check_resource(ctx, patched, resource_type, intake=intake)


async def patch(ctx: EngineContext, resource_type: str, id: str, document: PatchDocument,
                *, if_match: int | None = None) -> ResourceResult:
    """Apply a patch to the current version; 404 if unknown, 410 if deleted."""
    require_type(resource_type)

    def patched_current(current: StoredVersion | None) -> Checked:
        if current is None:
            raise not_found(resource_type, id)
        if current.deleted:
            raise gone(current)
        return patched_resource(ctx, resource_type, id, load(ctx, current), document)

    return await write_next_version(ctx, resource_type, id, patched_current,
                                    if_match=if_match, method="PATCH")


async def conditional_patch(ctx: EngineContext, resource_type: str, criteria: str,
                            document: PatchDocument, *, if_match: int | None = None,
                            base_url: str | None = None) -> ResourceResult:
    """``PATCH Type?criteria``: patch the single match; 404 if none, 412 if several."""
    require_type(resource_type)
    matches = await find_matches(ctx, resource_type, criteria, base_url=base_url)
    if len(matches) > 1:
        raise multiple_matches(resource_type, criteria)
    if not matches:
        raise not_found(resource_type, f"?{criteria}")
    return await patch(ctx, resource_type, matches[0].id, document, if_match=if_match)
