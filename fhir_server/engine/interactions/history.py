"""history at instance, type and system level (https://hl7.org/fhir/R4/http.html#history)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from fhir_server.engine.access_control import require_allowed, require_unlimited_history
from fhir_server.engine.bundles import (
    CURSOR_PARAM,
    page_links,
    parse_count,
    response_part,
    resume,
)
from fhir_server.engine.context import EngineContext
from fhir_server.engine.instants import fhir_range
from fhir_server.engine.interactions.read import not_found, read_current
from fhir_server.engine.resource_types import require_type, valid_id
from fhir_server.engine.writing import plaintext_body
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.protocol import StoredVersion
from fhir_server.storage.query import HistoryQuery
from fhir_server.types import ResourceDict

_KNOWN = frozenset({"_since", "_at", "_count", CURSOR_PARAM, "_format", "_pretty"})


def _instant_param(name: str, value: str) -> tuple[str, str]:
    try:
        return fhir_range(value)
    except ValueError:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"{name}: '{value[:60]}' is not a valid date or instant",
                        expression=(name,)) from None


def _entry(ctx: EngineContext, stored: StoredVersion, base_url: str) -> ResourceDict:
    url = f"{stored.resource_type}/{stored.id}"
    entry: ResourceDict = {"fullUrl": f"{base_url}/{url}"}
    if stored.body is not None:
        entry["resource"] = orjson.loads(plaintext_body(ctx, stored))
    method = stored.method
    status = 204 if method == "DELETE" else (201 if method == "POST" or stored.version == 1
                                             else 200)
    entry["request"] = {"method": method, "url": stored.resource_type if method == "POST" else url}
    entry["response"] = response_part(status, location=f"{url}/_history/{stored.version}",
                                      version=stored.version, last_updated=stored.last_updated)
    return entry


async def history(ctx: EngineContext, *, base_url: str, params: Sequence[tuple[str, str]],
                  resource_type: str | None = None, id: str | None = None) -> ResourceDict:
    """A ``history`` Bundle, newest first, paged with a signed cursor."""
    if resource_type is not None:
        require_type(resource_type)
    if id is not None:
        assert resource_type is not None
        require_allowed(ctx, "r", resource_type)
        if not valid_id(id) or await ctx.store.read(resource_type, id) is None:
            raise not_found(resource_type, id)
        if ctx.access is not None:
            await read_current(ctx, resource_type, id)
    else:
        require_unlimited_history(ctx, resource_type)
    path = "/".join(p for p in (resource_type, id, "_history") if p)
    page = resume(ctx, path, params)
    own = [(k, v) for k, v in page.params if k in _KNOWN and k != CURSOR_PARAM]
    since = at_low = at_high = None
    for name, value in own:
        if name == "_since":
            since = _instant_param(name, value)[0]
        elif name == "_at":
            at_low, at_high = _instant_param(name, value)
    count = parse_count(own, ctx)
    before = None
    if page.keyset is not None:
        lu, rt, rid, ver = page.keyset
        before = (str(lu), str(rt), str(rid), int(ver))
    versions = await ctx.store.history(HistoryQuery(
        resource_type=resource_type, id=id, since=since, at_low=at_low, at_high=at_high,
        count=count + 1, before=before))
    shown = versions[:count]
    more = len(versions) > count
    last = shown[-1] if shown else None
    next_keyset = ((last.last_updated, last.resource_type, last.id, last.version)
                   if more and last else None)
    cursor_used = next((v for k, v in params if k == CURSOR_PARAM), None)
    bundle: ResourceDict = {
        "resourceType": "Bundle", "type": "history",
        "link": page_links(ctx, base_url=base_url, path=path, params=own,
                           next_keyset=next_keyset, cursor_used=cursor_used),
        "entry": [_entry(ctx, v, base_url) for v in shown],
    }
    if not bundle["entry"]:
        del bundle["entry"]
    return bundle
