"""FHIR HTTP responses: resource and Bundle bodies with ETag, Last-Modified and Location headers."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.negotiation import FHIR_JSON, Preferences, Rendering, header
from fhir_server.engine.instants import http_date, parse_http_date
from fhir_server.engine.results import ResourceResult
from fhir_server.engine.summary import apply_elements, apply_summary
from fhir_server.errors import FhirError
from fhir_server.outcome import information, outcome_of_error

MEDIA_TYPE = f"{FHIR_JSON}; charset=utf-8"


def json_response(document: Any, *, status: int = 200, pretty: bool = False,
                  headers: dict[str, str] | None = None) -> Response:
    option = orjson.OPT_INDENT_2 if pretty else 0
    return Response(orjson.dumps(document, option=option), status_code=status,
                    media_type=MEDIA_TYPE, headers=headers)


def error_response(error: FhirError, *, pretty: bool = False) -> Response:
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="fhir"')
    return json_response(outcome_of_error(error), status=error.status, pretty=pretty,
                         headers=headers)


def version_headers(result: ResourceResult, base_url: str | None = None) -> dict[str, str]:
    headers = {"ETag": result.etag, "Last-Modified": http_date(result.last_updated)}
    if base_url is not None:
        headers["Location"] = f"{base_url}/{result.location}"
    return headers


def not_modified(request: Request, result: ResourceResult) -> bool:
    """True when If-None-Match or If-Modified-Since says the client's copy is current."""
    if_none_match = header(request, "if-none-match")
    if if_none_match is not None:
        tags = {t.strip() for t in if_none_match.split(",")}
        return "*" in tags or result.etag in tags or f'"{result.version}"' in tags
    since = header(request, "if-modified-since")
    if since is not None:
        instant = parse_http_date(since)
        return instant is not None and result.last_updated[:19] <= instant[:19]
    return False


def _reshaped(body: bytes, request: Request) -> bytes | dict[str, Any]:
    params = request.query_params
    summary = params.get("_summary")
    elements = params.get("_elements")
    if summary is None and elements is None:
        return body
    resource = orjson.loads(body)
    if summary is not None:
        resource = apply_summary(resource, summary)
    if elements is not None:
        resource = apply_elements(resource, elements)
    return dict(resource)


def read_response(request: Request, result: ResourceResult, how: Rendering) -> Response:
    """A read/vread answer: 304 when unchanged, raw bytes for Binary unless FHIR is asked for."""
    headers = version_headers(result)
    if not_modified(request, result):
        return Response(status_code=304, headers=headers)
    assert result.body is not None
    if result.resource_type == "Binary" and not how.wants_fhir:
        return binary_response(result.body, headers)
    shaped = _reshaped(result.body, request)
    if isinstance(shaped, bytes) and not how.pretty:
        return Response(shaped, media_type=MEDIA_TYPE, headers=headers)
    document = orjson.loads(shaped) if isinstance(shaped, bytes) else shaped
    return json_response(document, pretty=how.pretty, headers=headers)


def binary_response(body: bytes, headers: dict[str, str]) -> Response:
    """A Binary's own content with its content type."""
    binary = orjson.loads(body)
    data = base64.b64decode(binary.get("data", "")) if binary.get("data") else b""
    media = binary.get("contentType") or "application/octet-stream"
    security = binary.get("securityContext", {}).get("reference")
    if security:
        headers = {**headers, "X-Security-Context": security}
    return Response(data, media_type=media, headers=headers)


def write_response(result: ResourceResult, *, base_url: str, prefer: Preferences,
                   how: Rendering, location: bool = True) -> Response:
    """The answer to a write, shaped by ``Prefer: return=``."""
    headers = version_headers(result, base_url if location else None)
    if result.status == 204 or result.body is None:
        if prefer.return_ == "operationoutcome":
            return json_response(information(result.message or "Done"), status=200,
                                 pretty=how.pretty, headers=headers)
        return Response(status_code=204, headers=headers)
    if prefer.return_ == "minimal":
        return Response(status_code=result.status, headers=headers)
    if prefer.return_ == "operationoutcome":
        message = result.message or ("Created" if result.status == 201 else "Updated")
        return json_response(information(message, issues=result.issues), status=result.status,
                             pretty=how.pretty, headers=headers)
    if how.pretty:
        return json_response(orjson.loads(result.body), status=result.status, pretty=True,
                             headers=headers)
    return Response(result.body, status_code=result.status, media_type=MEDIA_TYPE,
                    headers=headers)
