"""Content negotiation and request bodies: formats, media types, size limits, Prefer and ETags."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from fhir_server.digits import is_number
from fhir_server.engine.bundle_entries import parse_etag_version
from fhir_server.errors import ErrorCode, FhirError

FHIR_JSON = "application/fhir+json"
JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
JSON_PATCH = "application/json-patch+json"
_FORMAT_ALIASES = {"json": FHIR_JSON, "application/json": FHIR_JSON, FHIR_JSON: FHIR_JSON,
                   "application/json+fhir": FHIR_JSON}
_XML = ("xml", "application/xml", "application/fhir+xml", "text/xml", "application/xml+fhir")


def header(request: Request, name: str, default: str | None = None) -> str | None:
    """One request header (lower-case ``name``), from a dict built once per request.

    Starlette's ``Headers.get`` scans the raw header list on every call; a FHIR request looks
    at up to ten headers, so the dict is built once and kept in the ASGI scope.
    """
    scope = request.scope
    table: dict[str, str] | None = scope.get("fhir.headers")
    if table is None:
        table = {}
        for key, value in scope["headers"]:
            name_text = key.decode("latin-1").lower()
            text = value.decode("latin-1")
            table[name_text] = f"{table[name_text]}, {text}" if name_text in table else text
        scope["fhir.headers"] = table
    return table.get(name, default)


def media_type(value: str | None) -> str | None:
    """The bare media type of a Content-Type header, lower-cased, without parameters."""
    if not value:
        return None
    return value.split(";", 1)[0].strip().lower() or None


@dataclass(frozen=True, slots=True)
class Rendering:
    """How to render a FHIR answer: pretty or compact JSON, and whether the client wants FHIR."""

    pretty: bool
    wants_fhir: bool


def rendering(request: Request) -> Rendering:
    """Read ``_format``, ``_pretty`` and Accept; refuse XML-only clients with a 406."""
    params = request.query_params if request.scope.get("query_string") else None
    fmt = None if params is None else params.get("_format")
    wants_fhir = False
    if fmt is not None:
        if fmt.strip().lower() in _XML or "xml" in fmt.lower():
            raise FhirError(ErrorCode.NOT_ACCEPTABLE,
                            "This server answers in FHIR JSON only: use _format=json")
        if fmt.strip().lower().split(";")[0] not in _FORMAT_ALIASES:
            raise FhirError(ErrorCode.NOT_ACCEPTABLE, f"_format '{fmt[:40]}' is not supported: "
                            "use json or application/fhir+json")
        wants_fhir = True
    accept = header(request, "accept", "") or ""
    if accept:
        kinds = [a.split(";")[0].strip().lower() for a in accept.split(",")]
        if any(k in JSON_TYPES for k in kinds):
            wants_fhir = True
        elif fmt is None and kinds and all(k in _XML for k in kinds):
            raise FhirError(ErrorCode.NOT_ACCEPTABLE,
                            "This server answers in FHIR JSON only: accept application/fhir+json")
    return Rendering(pretty=params is not None and params.get("_pretty") == "true",
                     wants_fhir=wants_fhir)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with a 413 past ``limit`` bytes (before reading when declared)."""
    declared = header(request, "content-length")
    if declared and is_number(declared) and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> FhirError:
    return FhirError(ErrorCode.TOO_LARGE,
                     f"The request body is larger than the server's limit of {limit} bytes")


def require_json_body(request: Request) -> None:
    """Refuse a body whose declared media type is not FHIR JSON (415). No Content-Type: JSON."""
    kind = media_type(header(request, "content-type"))
    if kind is not None and kind not in JSON_TYPES:
        raise FhirError(ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                        f"Content-Type '{kind[:60]}' is not supported here: send "
                        "application/fhir+json")


def if_match(request: Request) -> int | None:
    return parse_etag_version(header(request, "if-match"))


@dataclass(frozen=True, slots=True)
class Preferences:
    """The ``Prefer`` header: what to return after a write, and how to handle unknown parameters."""

    return_: str
    strict: bool


_NO_PREFERENCE = Preferences(return_="representation", strict=False)


def preferences(request: Request) -> Preferences:
    prefer = header(request, "prefer")
    if not prefer:
        return _NO_PREFERENCE
    values = [p.strip().lower() for p in prefer.split(";")]
    values = [v for part in values for v in part.split(",")]
    return_ = "representation"
    strict = False
    for value in (v.strip() for v in values):
        if value.startswith("return="):
            choice = value.split("=", 1)[1].strip('"')
            if choice in ("minimal", "representation", "operationoutcome"):
                return_ = choice
        elif value == "handling=strict":
            strict = True
    return Preferences(return_=return_, strict=strict)
