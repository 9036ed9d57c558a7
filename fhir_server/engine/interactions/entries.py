"""Runs one Bundle entry through the ordinary interactions (batch entries, transaction reads)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson

from fhir_server.engine.bundle_entries import EntryRequest, patch_document
from fhir_server.engine.bundles import response_part
from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions.create import create
from fhir_server.engine.interactions.delete import conditional_delete, delete
from fhir_server.engine.interactions.history import history
from fhir_server.engine.interactions.patch import conditional_patch, patch
from fhir_server.engine.interactions.read import read, vread
from fhir_server.engine.interactions.search import search
from fhir_server.engine.interactions.update import conditional_update, update
from fhir_server.engine.results import ResourceResult
from fhir_server.engine.write_validation import is_error
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.outcome import outcome_of_issues
from fhir_server.types import ResourceDict


def _needs_resource(request: EntryRequest) -> ResourceDict:
    if request.resource is None:
        raise FhirError(ErrorCode.BAD_REQUEST, f"a {request.method} entry needs a resource")
    return request.resource


def _needs_type(request: EntryRequest) -> str:
    if request.resource_type is None:
        raise FhirError(ErrorCode.BAD_REQUEST,
                        f"the url '{request.url[:120]}' names no resource type")
    return request.resource_type


def result_entry(result: ResourceResult, *, base_url: str, with_resource: bool) -> ResourceDict:
    """A response Bundle entry for the result of a write or a read; a resource stored with
    validation errors (tag mode) has them in ``response.outcome``."""
    entry: ResourceDict = {}
    if result.body is not None:
        entry["fullUrl"] = f"{base_url}/{result.resource_type}/{result.id}"
        if with_resource:
            entry["resource"] = orjson.loads(result.body)
    stored_with_errors = any(is_error(issue) for issue in result.issues)
    entry["response"] = response_part(
        result.status, location=result.location, version=result.version,
        last_updated=result.last_updated,
        outcome=outcome_of_issues(result.issues) if stored_with_errors else None)
    return entry


async def run_read_entry(ctx: EngineContext, request: EntryRequest,
                         base_url: str) -> ResourceDict:
    """GET/HEAD entry: read, vread, search or history; answered with the resource or a Bundle."""
    params = parse_qsl(request.query, keep_blank_values=True)
    if request.operation == "_history":
        bundle = await history(ctx, base_url=base_url, params=params,
                               resource_type=request.resource_type, id=request.id)
        return {"resource": bundle, "response": response_part(200)}
    if request.operation is not None:
        raise FhirError(ErrorCode.NOT_IMPLEMENTED,
                        f"the operation {request.operation[:60]} is not supported in a Bundle")
    if request.id is None:
        bundle = await search(ctx, base_url=base_url, params=params,
                              resource_type=request.resource_type)
        return {"resource": bundle, "response": response_part(200)}
    resource_type = _needs_type(request)
    if request.version is not None:
        result = await vread(ctx, resource_type, request.id, request.version)
    else:
        result = await read(ctx, resource_type, request.id)
    return result_entry(result, base_url=base_url, with_resource=True)


async def run_write_entry(ctx: EngineContext, request: EntryRequest, *, base_url: str,
                          with_resource: bool) -> ResourceDict:
    """POST/PUT/PATCH/DELETE entry through the same code as the single interactions."""
    resource_type = _needs_type(request)
    if request.operation is not None:
        raise FhirError(ErrorCode.NOT_IMPLEMENTED,
                        f"{request.method} {request.url[:120]} is not supported in a Bundle")
    result: ResourceResult | None
    if request.method == "POST":
        result = await create(ctx, resource_type, _needs_resource(request),
                              if_none_exist=request.if_none_exist, base_url=base_url)
    elif request.method == "PUT":
        resource = _needs_resource(request)
        if request.id is not None:
            result = await update(ctx, resource_type, request.id, resource,
                                  if_match=request.if_match)
        else:
            result = await conditional_update(ctx, resource_type, request.query, resource,
                                              if_match=request.if_match, base_url=base_url)
    elif request.method == "PATCH":
        document = patch_document(request)
        if request.id is not None:
            result = await patch(ctx, resource_type, request.id, document,
                                 if_match=request.if_match)
        else:
            result = await conditional_patch(ctx, resource_type, request.query, document,
                                             if_match=request.if_match, base_url=base_url)
    elif request.id is not None:
        result = await delete(ctx, resource_type, request.id)
    else:
        result = await conditional_delete(ctx, resource_type, request.query, base_url=base_url)
    if result is None:
        return {"response": response_part(204)}
    return result_entry(result, base_url=base_url, with_resource=with_resource)


async def run_entry(ctx: EngineContext, request: EntryRequest, *, base_url: str,
                    with_resource: bool) -> ResourceDict:
    if request.method in ("GET", "HEAD"):
        return await run_read_entry(ctx, request, base_url)
    return await run_write_entry(ctx, request, base_url=base_url, with_resource=with_resource)
