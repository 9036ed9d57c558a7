"""read and vread (https://hl7.org/fhir/R4/http.html#read, #vread)."""

from __future__ import annotations

from fhir_server.digits import is_number
from fhir_server.engine.access_control import require_allowed, require_readable
from fhir_server.engine.context import EngineContext
from fhir_server.engine.instants import http_date
from fhir_server.engine.resource_types import require_type, valid_id
from fhir_server.engine.results import ResourceResult
from fhir_server.engine.writing import plaintext_body
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.protocol import StoredVersion


def not_found(resource_type: str, id: str) -> FhirError:
    return FhirError(ErrorCode.NOT_FOUND, f"{resource_type}/{id[:64]} is not known")


def gone(stored: StoredVersion) -> FhirError:
    return FhirError(ErrorCode.GONE, f"{stored.resource_type}/{stored.id} was deleted",
                     headers={"ETag": f'W/"{stored.version}"',
                              "Last-Modified": http_date(stored.last_updated)})


async def read_current(ctx: EngineContext, resource_type: str, id: str) -> StoredVersion:
    """The live current version; 404 if unknown, 410 if deleted."""
    require_type(resource_type)
    require_allowed(ctx, "r", resource_type)
    stored = await ctx.store.read(resource_type, id) if valid_id(id) else None
    if stored is None or (stored.deleted and ctx.access is not None):
        raise not_found(resource_type, id)
    if stored.deleted:
        raise gone(stored)
    await require_readable(ctx, resource_type, id)
    return stored


async def read(ctx: EngineContext, resource_type: str, id: str) -> ResourceResult:
    stored = await read_current(ctx, resource_type, id)
    return ResourceResult.of_stored(stored, plaintext_body(ctx, stored))


async def vread(ctx: EngineContext, resource_type: str, id: str, version: str) -> ResourceResult:
    """A version of a resource; a limited caller must be able to read its current version."""
    require_type(resource_type)
    if ctx.access is not None:
        await read_current(ctx, resource_type, id)
    stored = None
    if is_number(version) and valid_id(id):
        stored = await ctx.store.read_version(resource_type, id, int(version))
    if stored is None:
        raise FhirError(ErrorCode.NOT_FOUND,
                        f"{resource_type}/{id[:64]} has no version '{version[:20]}'")
    if stored.deleted:
        raise gone(stored)
    return ResourceResult.of_stored(stored, plaintext_body(ctx, stored))
