"""Parses the entries of a transaction or batch Bundle into typed requests."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fhir_server.digits import is_number
from fhir_server.engine.interactions.patch import PatchDocument
from fhir_server.engine.jsonio import parse_json
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import ResourceDict

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# The order in which a transaction processes its entries (https://hl7.org/fhir/R4/http.html#trules).
PROCESSING_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass(frozen=True, slots=True)
class EntryRequest:
    """One Bundle entry's request, with its URL split into type, id, version or criteria."""

    index: int
    method: str
    url: str
    resource_type: str | None
    id: str | None
    version: str | None
    operation: str | None
    query: str
    resource: ResourceDict | None
    full_url: str | None
    if_match: int | None
    if_none_exist: str | None

    @property
    def label(self) -> str:
        return f"Bundle.entry[{self.index}]"

    def describe(self) -> str:
        return f"{self.label} ({self.method} {self.url[:120]})"


def entry_error(request: EntryRequest | int, error: FhirError) -> FhirError:
    """The error of one entry, restated so that the client knows which entry failed."""
    label = request.describe() if isinstance(request, EntryRequest) else f"Bundle.entry[{request}]"
    return FhirError(error.error, f"{label}: {error.diagnostics}",
                     expression=(label.split(" ")[0], *error.expression),
                     issues=error.issues, headers=error.headers)


def _bad(index: int, message: str) -> FhirError:
    return FhirError(ErrorCode.BAD_REQUEST, f"Bundle.entry[{index}]: {message}",
                     expression=(f"Bundle.entry[{index}]",))


def parse_etag_version(value: str | None) -> int | None:
    """The version number in an ETag such as ``W/"3"``; None when absent."""
    if value is None:
        return None
    raw = value.strip().removeprefix("W/").strip('"')
    if not is_number(raw):
        raise FhirError(ErrorCode.BAD_REQUEST,
                        f"If-Match: '{value[:40]}' is not a version ETag such as W/\"3\"")
    return int(raw)


def relative_url(url: str, base_url: str) -> str:
    """An entry URL made relative to the server base (absolute URLs of this server accepted)."""
    if url.startswith(base_url + "/"):
        return url[len(base_url) + 1:]
    if "://" in url:
        parts = urlsplit(url)
        return parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
    return url.lstrip("/")


def parse_entry(index: int, entry: Any, base_url: str) -> EntryRequest:
    if not isinstance(entry, dict):
        raise _bad(index, "an entry must be an object")
    request = entry.get("request")
    if not isinstance(request, dict):
        raise _bad(index, "request (method and url) is required in a transaction or batch")
    method = request.get("method")
    url = request.get("url")
    if method not in METHODS or not isinstance(url, str) or not url:
        raise _bad(index, "request.method must be GET, HEAD, POST, PUT, PATCH or DELETE and "
                          "request.url is required")
    path, _, query = relative_url(url, base_url).partition("?")
    parts = [p for p in path.split("/") if p]
    resource_type = parts[0] if parts and not parts[0].startswith(("_", "$")) else None
    id = parts[1] if len(parts) > 1 and not parts[1].startswith(("_", "$")) else None
    version = parts[3] if len(parts) == 4 and parts[2] == "_history" else None
    operation = next((p for p in parts if p.startswith("$")), None)
    if (parts and parts[-1] == "_history") or (len(parts) > 2 and version is None):
        operation = operation or "_history"
    resource = entry.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise _bad(index, "resource must be an object")
    full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
    try:
        if_match = parse_etag_version(request.get("ifMatch"))
    except FhirError as err:
        raise entry_error(index, err) from None
    if_none_exist = request.get("ifNoneExist")
    return EntryRequest(index=index, method=method, url=url, resource_type=resource_type, id=id,
                        version=version, operation=operation, query=query, resource=resource,
                        full_url=full_url, if_match=if_match,
                        if_none_exist=if_none_exist if isinstance(if_none_exist, str) else None)


def patch_document(request: EntryRequest) -> PatchDocument:
    """The patch carried by a PATCH entry: Parameters (FHIRPath Patch) or Binary (JSON Patch)."""
    resource = request.resource or {}
    if resource.get("resourceType") == "Parameters":
        return PatchDocument("fhirpath-patch", resource)
    if resource.get("resourceType") == "Binary" and isinstance(resource.get("data"), str):
        try:
            raw = base64.b64decode(resource["data"], validate=True)
        except (binascii.Error, ValueError):
            raise _bad(request.index, "the Binary's data is not valid base64") from None
        return PatchDocument("json-patch", parse_json(raw, what="JSON Patch in the Binary"))
    raise _bad(request.index, "a PATCH entry carries a Parameters resource (FHIRPath Patch) or "
                              "a Binary with a JSON Patch document")
