"""transaction and batch (https://hl7.org/fhir/R4/http.html#transaction).

A transaction is planned entry by entry with the same planning functions as single writes, then
committed once: all entries or none. Only what is particular to transactions lives here:
processing order, id assignment, ``urn:uuid:`` and conditional reference rewriting.
A batch runs each entry through the ordinary interactions, independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_server.engine.bundle_entries import (
    PROCESSING_ORDER,
    EntryRequest,
    entry_error,
    parse_entry,
    patch_document,
)
from fhir_server.engine.bundles import response_part, status_line
from fhir_server.engine.conditional import find_matches, multiple_matches
from fhir_server.engine.context import EngineContext
from fhir_server.engine.hooks import PlannedWrite
from fhir_server.engine.interactions.entries import result_entry, run_entry, run_read_entry
from fhir_server.engine.interactions.patch import patched_resource
from fhir_server.engine.interactions.read import not_found, read_current
from fhir_server.engine.interactions.update import (
    WRITE_ATTEMPTS,
    check_body_id,
    check_if_match,
    pause_before_retry,
)
from fhir_server.engine.resource_types import require_id, require_type
from fhir_server.engine.results import ResourceResult
from fhir_server.engine.write_validation import Checked, in_entry
from fhir_server.engine.writing import (
    check_resource,
    commit_writes,
    is_identical,
    load,
    new_id,
    plaintext_body,
    plan_delete,
    plan_put,
)
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.outcome import outcome_of_error
from fhir_server.storage.protocol import VersionConflict
from fhir_server.types import ResourceDict


@dataclass
class _Plan:
    """What a transaction will do: writes to commit, and the answer for each entry."""

    base_url: str
    """The server's base as the client addressed it (for conditional references)."""
    writes: list[PlannedWrite] = field(default_factory=list)
    results: dict[int, ResourceResult | None] = field(default_factory=dict)
    targets: dict[int, tuple[str, str | None, bool]] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    written: set[tuple[str, str]] = field(default_factory=set)
    intake: bool = False
    """An intake bundle: every resource written is validated against the guide's profiles."""


def _entries(bundle: ResourceDict) -> list[Any]:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FhirError(ErrorCode.BAD_REQUEST, "Bundle.entry must be a list",
                        expression=("Bundle.entry",))
    return entries


async def _single_match(ctx: EngineContext, resource_type: str, criteria: str,
                        base_url: str) -> str | None:
    matches = await find_matches(ctx, resource_type, criteria, base_url=base_url)
    if len(matches) > 1:
        raise multiple_matches(resource_type, criteria)
    return matches[0].id if matches else None


async def _resolve_target(ctx: EngineContext, request: EntryRequest,
                          base_url: str) -> tuple[str, str | None, bool]:
    """Decide the (type, id) an entry writes to, and whether a conditional create found it.

    A None id means there is nothing to write (a conditional delete without a match).
    """
    resource_type = request.resource_type
    if resource_type is None:
        raise FhirError(ErrorCode.BAD_REQUEST, f"the url '{request.url[:120]}' names no type")
    require_type(resource_type)
    if request.operation is not None:
        raise FhirError(ErrorCode.NOT_IMPLEMENTED,
                        f"{request.method} {request.url[:120]} is not supported in a transaction")
    if request.method == "POST":
        if request.if_none_exist:
            existing = await _single_match(ctx, resource_type, request.if_none_exist, base_url)
            if existing is not None:
                return resource_type, existing, True
        return resource_type, new_id(), False
    if request.id is not None:
        return resource_type, require_id(request.id), False
    if not request.query:
        raise FhirError(ErrorCode.BAD_REQUEST,
                        f"{request.method} needs an id or search criteria in its url")
    found = await _single_match(ctx, resource_type, request.query, base_url)
    if found is None and request.method == "PUT":
        body_id = (request.resource or {}).get("id")
        return resource_type, body_id if isinstance(body_id, str) else new_id(), False
    if found is None and request.method == "PATCH":
        raise not_found(resource_type, f"?{request.query}")
    return resource_type, found, False


async def _rewrite(ctx: EngineContext, value: Any, references: dict[str, str], base_url: str,
                   key: str | None = None) -> Any:
    """Replace Bundle-local and conditional references by ``Type/id`` of what they designate."""
    if isinstance(value, dict):
        return {k: await _rewrite(ctx, v, references, base_url, k) for k, v in value.items()}
    if isinstance(value, list):
        return [await _rewrite(ctx, v, references, base_url, key) for v in value]
    if not isinstance(value, str):
        return value
    if value in references:
        return references[value]
    if key != "reference":
        return value
    if value.startswith(("urn:uuid:", "urn:oid:")):
        raise FhirError(ErrorCode.BAD_REQUEST,
                        f"the reference {value[:80]} designates no entry of this Bundle")
    head, sep, criteria = value.partition("?")
    if sep and "/" not in head:
        require_type(head)
        found = await _single_match(ctx, head, criteria, base_url)
        if found is None:
            raise FhirError(ErrorCode.NOT_FOUND,
                            f"the conditional reference {value[:120]} matches no resource")
        return f"{head}/{found}"
    return value


async def _plan_write(ctx: EngineContext, request: EntryRequest, resource_type: str, id: str,
                      plan: _Plan) -> None:
    """Plan one write entry (target already resolved) into ``plan``."""
    if (resource_type, id) in plan.written:
        raise FhirError(ErrorCode.BAD_REQUEST,
                        f"{resource_type}/{id} is changed by more than one entry "
                        "of the transaction")
    current = await ctx.store.read(resource_type, id)
    check_if_match(current, request.if_match, f"{resource_type}/{id}")
    write: PlannedWrite | None
    checked: Checked | None = None
    if request.method == "DELETE":
        if current is None and request.id is not None:
            raise not_found(resource_type, id)
        write = plan_delete(ctx, current) if current is not None and not current.deleted else None
        if write is None:
            plan.results[request.index] = None
            return
    elif request.method == "PATCH":
        live = await read_current(ctx, resource_type, id)
        checked = patched_resource(ctx, resource_type, id, load(ctx, live),
                                   patch_document(request), intake=plan.intake)
        write = plan_put(ctx, resource=checked.resource, resource_type=resource_type, id=id,
                         current=live, method="PATCH")
    else:
        resource = await _rewrite(ctx, request.resource, plan.references, plan.base_url)
        checked = check_resource(ctx, resource, resource_type, intake=plan.intake)
        if request.method == "PUT":
            check_body_id(resource, id)
        write = plan_put(ctx, resource=checked.resource, resource_type=resource_type, id=id,
                         current=current, method=request.method)  # type: ignore[arg-type]
    issues = checked.issues if checked is not None else ()
    if request.method in ("PUT", "PATCH") and current is not None and is_identical(write):
        plan.results[request.index] = ResourceResult.of_stored(
            current, plaintext_body(ctx, current), issues=issues)
        return
    plan.written.add((resource_type, id))
    plan.writes.append(write)
    status = 204 if request.method == "DELETE" else None
    plan.results[request.index] = ResourceResult.of_write(write, status=status, issues=issues)


def _writes_intake(ctx: EngineContext, requests: Sequence[EntryRequest]) -> bool:
    """Whether the resources the transaction creates or replaces make it an intake bundle."""
    return ctx.validation.is_intake(request.resource for request in requests
                                    if request.method in ("POST", "PUT")
                                    and request.resource is not None)


async def _plan_transaction(ctx: EngineContext, requests: Sequence[EntryRequest],
                            base_url: str) -> _Plan:
    plan = _Plan(base_url, intake=_writes_intake(ctx, requests))
    ordered = sorted((r for r in requests if r.method not in ("GET", "HEAD")),
                     key=lambda r: (PROCESSING_ORDER[r.method], r.index))
    for request in ordered:
        try:
            if request.method in ("POST", "PUT") and request.resource is None:
                raise FhirError(ErrorCode.BAD_REQUEST, f"a {request.method} entry needs a resource")
            target = await _resolve_target(ctx, request, base_url)
        except FhirError as err:
            raise entry_error(request, err) from None
        plan.targets[request.index] = target
        resource_type, id, _ = target
        if request.full_url and id is not None:
            plan.references[request.full_url] = f"{resource_type}/{id}"
    for request in ordered:
        resource_type, target_id, existing = plan.targets[request.index]
        try:
            if target_id is None:
                plan.results[request.index] = None
            elif existing:
                found = await read_current(ctx, resource_type, target_id)
                plan.results[request.index] = ResourceResult.of_stored(
                    found, plaintext_body(ctx, found), status=200)
            else:
                await _plan_write(ctx, request, resource_type, target_id, plan)
        except FhirError as err:
            located = in_entry(err, index=request.index,
                               request=f"{request.method} {request.url[:120]}",
                               resource_type=resource_type)
            raise entry_error(request, located) from None
    return plan


def _check_reads(requests: Sequence[EntryRequest]) -> None:
    """Refuse malformed read entries before anything is committed."""
    for request in requests:
        if request.method in ("GET", "HEAD") and request.resource_type is not None:
            try:
                require_type(request.resource_type)
            except FhirError as err:
                raise entry_error(request, err) from None


async def transaction(ctx: EngineContext, bundle: ResourceDict, *, base_url: str,
                      with_resources: bool = False) -> ResourceDict:
    """Run a transaction Bundle: every entry succeeds together, or nothing is written."""
    requests = []
    for index, entry in enumerate(_entries(bundle)):
        requests.append(parse_entry(index, entry, base_url))
    _check_reads(requests)
    for attempt in range(WRITE_ATTEMPTS):
        await pause_before_retry(attempt)
        plan = await _plan_transaction(ctx, requests, base_url)
        try:
            await commit_writes(ctx, plan.writes)
            break
        except VersionConflict as conflict:
            if any(r.if_match is not None for r in requests):
                raise FhirError(ErrorCode.PRECONDITION_FAILED,
                                f"{conflict.resource_type}/{conflict.id} changed during the "
                                "transaction: its If-Match no longer holds") from None
    else:
        raise FhirError(ErrorCode.VERSION_CONFLICT,
                        "The resources of this transaction are being changed by others: retry")
    response_entries: list[ResourceDict] = []
    for request in requests:
        if request.method in ("GET", "HEAD"):
            try:
                response_entries.append(await run_read_entry(ctx, request, base_url))
            except FhirError as err:
                response_entries.append({"response": response_part(
                    err.status, outcome=outcome_of_error(err))})
            continue
        result = plan.results.get(request.index)
        if result is None:
            response_entries.append({"response": response_part(204)})
        else:
            response_entries.append(result_entry(result, base_url=base_url,
                                                 with_resource=with_resources))
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": response_entries}


async def batch(ctx: EngineContext, bundle: ResourceDict, *, base_url: str,
                with_resources: bool = False) -> ResourceDict:
    """Run a batch Bundle: each entry on its own, each with its own status or OperationOutcome."""
    response_entries: list[ResourceDict] = []
    for index, entry in enumerate(_entries(bundle)):
        try:
            request = parse_entry(index, entry, base_url)
            response_entries.append(await run_entry(ctx, request, base_url=base_url,
                                                    with_resource=with_resources))
        except FhirError as err:
            response_entries.append({"response": {"status": status_line(err.status),
                                                  "outcome": outcome_of_error(err)}})
    return {"resourceType": "Bundle", "type": "batch-response", "entry": response_entries}


async def process_bundle(ctx: EngineContext, bundle: ResourceDict, *, base_url: str,
                         with_resources: bool = False) -> ResourceDict:
    """POST of a Bundle to the base: a transaction or a batch."""
    if bundle.get("resourceType") != "Bundle":
        raise FhirError(ErrorCode.BAD_REQUEST,
                        "POST to the base URL takes a Bundle of type transaction or batch")
    await ctx.hooks.run_before_bundle(bundle, ctx)
    kind = bundle.get("type")
    if kind == "transaction":
        return await transaction(ctx, bundle, base_url=base_url, with_resources=with_resources)
    if kind == "batch":
        return await batch(ctx, bundle, base_url=base_url, with_resources=with_resources)
    raise FhirError(ErrorCode.BAD_REQUEST,
                    f"Bundle.type '{str(kind)[:40]}' cannot be processed: use transaction or batch",
                    expression=("Bundle.type",))
