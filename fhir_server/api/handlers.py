"""One small handler per FHIR interaction: HTTP request in, engine call, FHIR response out.

Operations share one handler per level: the engine resolves ``$name``; a GET may only invoke an
operation that does not change state (405 otherwise), its URL parameters becoming its input; a
POST carries a Parameters resource (or a single resource, or nothing; or raw bytes of a media
type the operation takes raw), URL parameters added. An operation answering a Binary as such
is sent as raw bytes, unless FHIR JSON is asked for.
"""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.auth_gate import access_of, is_operator
from fhir_server.api.negotiation import (
    JSON_PATCH,
    JSON_TYPES,
    header,
    if_match,
    media_type,
    preferences,
    read_body,
    rendering,
    require_json_body,
)
from fhir_server.api.responses import (
    binary_response,
    json_response,
    read_response,
    write_response,
)
from fhir_server.engine.engine import Engine
from fhir_server.engine.guide_package import PublishedFile, published_package
from fhir_server.engine.interactions.patch import PatchDocument
from fhir_server.engine.jsonio import parse_json, parse_resource
from fhir_server.engine.operations import (
    Operation,
    OperationCall,
    OperationLevel,
    parameters_from_body,
    parameters_from_query,
)
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.outcome import information
from fhir_server.settings import Settings
from fhir_server.types import ResourceDict


def _engine(request: Request) -> Engine:
    """The engine acting for the request's caller (limited by its access, if any)."""
    engine: Engine = request.app.state.engine
    return engine.acting_as(access_of(request))


_DEFAULT_PORTS = {"http": 80, "https": 443}


def base_url(request: Request) -> str:
    """The FHIR base URL: configured, or derived from the request (its scheme, and its Host
    header or else the server's address, as Starlette's ``request.url`` derives them; read
    from the ASGI scope directly, which costs a tenth of building that URL)."""
    settings: Settings = request.app.state.settings
    if settings.base_url:
        return settings.base_url.rstrip("/")
    scope = request.scope
    scheme = scope.get("scheme", "http")
    host = header(request, "host")
    if host is None:
        server = scope.get("server")
        if server is None:
            host = ""
        else:
            name, port = server
            host = name if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{name}:{port}"
    return f"{scheme}://{host}/fhir"


def _params(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def _criteria(request: Request) -> str:
    return urlencode([(k, v) for k, v in request.query_params.multi_items()
                      if k not in ("_format", "_pretty")])


async def _limit(request: Request) -> bytes:
    settings: Settings = request.app.state.settings
    return await read_body(request, settings.max_body_bytes)


async def _resource_body(request: Request, resource_type: str) -> ResourceDict:
    """The resource in the body; a Binary may also arrive as its raw content."""
    kind = media_type(header(request, "content-type"))
    if resource_type == "Binary" and kind is not None and kind not in JSON_TYPES:
        raw = await _limit(request)
        binary: ResourceDict = {"resourceType": "Binary", "contentType": kind}
        if raw:
            binary["data"] = base64.b64encode(raw).decode("ascii")
        security = header(request, "x-security-context")
        if security:
            binary["securityContext"] = {"reference": security}
        return binary
    require_json_body(request)
    return parse_resource(await _limit(request))


async def _patch_body(request: Request) -> PatchDocument:
    kind = media_type(header(request, "content-type"))
    raw = await _limit(request)
    if kind == JSON_PATCH:
        return PatchDocument("json-patch", parse_json(raw, what="JSON Patch document"))
    if kind in JSON_TYPES:
        resource = parse_resource(raw)
        if resource.get("resourceType") != "Parameters":
            raise FhirError(ErrorCode.BAD_REQUEST,
                            "A FHIR JSON patch body must be a Parameters resource (FHIRPath Patch)")
        return PatchDocument("fhirpath-patch", resource)
    raise FhirError(ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                    f"PATCH takes {JSON_PATCH} (JSON Patch) or application/fhir+json "
                    "(FHIRPath Patch), not '" + str(kind)[:60] + "'")


async def read(request: Request) -> Response:
    how = rendering(request)
    result = await _engine(request).read(request.path_params["type"], request.path_params["id"])
    return read_response(request, result, how)


async def vread(request: Request) -> Response:
    how = rendering(request)
    p = request.path_params
    result = await _engine(request).vread(p["type"], p["id"], p["vid"])
    return read_response(request, result, how)


async def create(request: Request) -> Response:
    how = rendering(request)
    resource_type = request.path_params["type"]
    resource = await _resource_body(request, resource_type)
    criteria = header(request, "if-none-exist")
    result = await _engine(request).create(
        resource_type, resource, if_none_exist=criteria,
        base_url=base_url(request) if criteria else None)
    return write_response(result, base_url=base_url(request), prefer=preferences(request),
                          how=how)


async def update(request: Request) -> Response:
    how = rendering(request)
    p = request.path_params
    resource = await _resource_body(request, p["type"])
    if p["type"] == "Binary" and "id" not in resource:
        resource["id"] = p["id"]
    result = await _engine(request).update(p["type"], p["id"], resource,
                                           if_match=if_match(request))
    return write_response(result, base_url=base_url(request), prefer=preferences(request),
                          how=how)


async def conditional_update(request: Request) -> Response:
    how = rendering(request)
    resource_type = request.path_params["type"]
    resource = await _resource_body(request, resource_type)
    result = await _engine(request).conditional_update(
        resource_type, _criteria(request), resource, if_match=if_match(request),
        base_url=base_url(request))
    return write_response(result, base_url=base_url(request), prefer=preferences(request),
                          how=how)


async def patch(request: Request) -> Response:
    how = rendering(request)
    p = request.path_params
    document = await _patch_body(request)
    result = await _engine(request).patch(p["type"], p["id"], document,
                                          if_match=if_match(request))
    return write_response(result, base_url=base_url(request), prefer=preferences(request),
                          how=how)


async def conditional_patch(request: Request) -> Response:
    how = rendering(request)
    document = await _patch_body(request)
    result = await _engine(request).conditional_patch(
        request.path_params["type"], _criteria(request), document, if_match=if_match(request),
        base_url=base_url(request))
    return write_response(result, base_url=base_url(request), prefer=preferences(request),
                          how=how)


async def delete(request: Request) -> Response:
    how = rendering(request)
    p = request.path_params
    result = await _engine(request).delete(p["type"], p["id"])
    return write_response(result, base_url=base_url(request), prefer=preferences(request),
                          how=how, location=False)


async def conditional_delete(request: Request) -> Response:
    how = rendering(request)
    result = await _engine(request).conditional_delete(request.path_params["type"],
                                                       _criteria(request),
                                                       base_url=base_url(request))
    if result is None:
        if preferences(request).return_ == "operationoutcome":
            return json_response(information("No resource matched: nothing was deleted"),
                                 pretty=how.pretty)
        return Response(status_code=204)
    return write_response(result, base_url=base_url(request), prefer=preferences(request),
                          how=how, location=False)


async def history_instance(request: Request) -> Response:
    how = rendering(request)
    p = request.path_params
    bundle = await _engine(request).history(base_url=base_url(request), params=_params(request),
                                            resource_type=p["type"], id=p["id"])
    return json_response(bundle, pretty=how.pretty)


async def history_type(request: Request) -> Response:
    how = rendering(request)
    bundle = await _engine(request).history(base_url=base_url(request), params=_params(request),
                                            resource_type=request.path_params["type"])
    return json_response(bundle, pretty=how.pretty)


async def history_system(request: Request) -> Response:
    how = rendering(request)
    bundle = await _engine(request).history(base_url=base_url(request), params=_params(request))
    return json_response(bundle, pretty=how.pretty)


async def search_type(request: Request) -> Response:
    how = rendering(request)
    bundle = await _engine(request).search(base_url=base_url(request), params=_params(request),
                                           resource_type=request.path_params["type"],
                                           strict=preferences(request).strict,
                                           may_explain=is_operator(request))
    return json_response(bundle, pretty=how.pretty)


async def search_type_post(request: Request) -> Response:
    """``POST Type/_search`` with form-encoded parameters (and any in the URL)."""
    how = rendering(request)
    kind = media_type(header(request, "content-type"))
    if kind != "application/x-www-form-urlencoded":
        raise FhirError(ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                        "POST _search takes application/x-www-form-urlencoded parameters")
    form = await request.form()
    params = _params(request) + [(k, str(v)) for k, v in form.multi_items()]
    bundle = await _engine(request).search(base_url=base_url(request), params=params,
                                           resource_type=request.path_params["type"],
                                           strict=preferences(request).strict,
                                           may_explain=is_operator(request))
    return json_response(bundle, pretty=how.pretty)


async def search_compartment(request: Request) -> Response:
    """``GET Patient/{id}/{type}`` (or ``Patient/{id}/*``): a search within a compartment."""
    how = rendering(request)
    p = request.path_params
    bundle = await _engine(request).compartment_search(
        base_url=base_url(request), params=_params(request), patient_id=p["id"],
        resource_type=p["type"], strict=preferences(request).strict,
        may_explain=is_operator(request))
    return json_response(bundle, pretty=how.pretty)


async def search_system(request: Request) -> Response:
    how = rendering(request)
    bundle = await _engine(request).search(base_url=base_url(request), params=_params(request),
                                           strict=preferences(request).strict,
                                           may_explain=is_operator(request))
    return json_response(bundle, pretty=how.pretty)


async def bundle(request: Request) -> Response:
    """``POST [base]``: a transaction or batch Bundle."""
    how = rendering(request)
    require_json_body(request)
    document = parse_resource(await _limit(request))
    answer = await _engine(request).process_bundle(
        document, base_url=base_url(request),
        with_resources=preferences(request).return_ == "representation"
        and "return=" in (header(request, "prefer") or ""))
    return json_response(answer, pretty=how.pretty)


async def operation_system(request: Request) -> Response:
    """``[base]/$name``."""
    return await _operation(request, "system")


async def operation_type(request: Request) -> Response:
    """``[base]/Type/$name``."""
    return await _operation(request, "type")


async def operation_instance(request: Request) -> Response:
    """``[base]/Type/id/$name``."""
    return await _operation(request, "instance")


async def _operation(request: Request, level: OperationLevel) -> Response:
    how = rendering(request)
    p = request.path_params
    name = p["operation"][1:]
    engine = _engine(request)
    operation = engine.resolve_operation(name, level=level, resource_type=p.get("type"))
    if request.method in ("GET", "HEAD") and operation.affects_state:
        raise FhirError(ErrorCode.METHOD_NOT_ALLOWED,
                        f"${name} changes state: invoke it with POST", headers={"Allow": "POST"})
    call = OperationCall(name=name, level=level,
                         parameters=await _operation_input(request, operation),
                         base_url=base_url(request), resource_type=p.get("type"),
                         id=p.get("id"))
    result = await engine.operation(operation, call)
    if result.binary and not how.wants_fhir:
        return binary_response(orjson.dumps(result.resource), dict(result.headers))
    return json_response(result.resource, status=result.status, pretty=how.pretty,
                         headers=dict(result.headers))


async def _operation_input(request: Request, operation: Operation) -> ResourceDict:
    """The Parameters of an invocation: the POST body's (if any), plus the URL parameters. A
    body of a media type the operation takes raw becomes a Binary ``resource`` parameter."""
    query = parameters_from_query(_params(request))
    if request.method != "POST":
        return query
    kind = media_type(header(request, "content-type"))
    if kind is not None and kind in operation.raw_input:
        binary: ResourceDict = {"resourceType": "Binary", "contentType": kind,
                                "data": base64.b64encode(await _limit(request)).decode("ascii")}
        return {**query, "parameter": [{"name": "resource", "resource": binary},
                                       *query["parameter"]]}
    require_json_body(request)
    raw = await _limit(request)
    if not raw.strip():
        return query
    parameters = parameters_from_body(parse_resource(raw))
    return {**parameters, "parameter": [*parameters.get("parameter", []), *query["parameter"]]}


async def ig_package(request: Request) -> Response:
    """``GET /ig/package.tgz``: the implementation guide's FHIR package, as ``ig build`` makes
    it (public; strong ETag = its SHA-256, 304 when ``If-None-Match`` has it)."""
    return _published(request, published_package(request.app.state.guide).tarball)


async def ig_manifest(request: Request) -> Response:
    """``GET /ig/package.json``: the package's manifest (public, same caching as the tarball)."""
    return _published(request, published_package(request.app.state.guide).manifest)


def _published(request: Request, published: PublishedFile) -> Response:
    headers = {"ETag": published.etag, "Cache-Control": "no-cache",
               "Content-Disposition": f'attachment; filename="{published.filename}"'}
    wanted = header(request, "if-none-match")
    if wanted is not None and (wanted.strip() == "*" or published.etag in
                               {tag.strip().removeprefix("W/") for tag in wanted.split(",")}):
        return Response(status_code=304, headers=headers)
    return Response(published.content, media_type=published.media_type, headers=headers)


async def capability(request: Request) -> Response:
    how = rendering(request)
    engine = _engine(request)
    statement = request.app.state.capability_statement
    return json_response(statement(base_url(request), registry=await engine.search_registry(),
                                   operations=engine.operations), pretty=how.pretty)
