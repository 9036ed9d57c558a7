"""FHIR JSON in and out: parse a request body into a resource dict, serialize a dict to bytes."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import ResourceDict


def parse_json(raw: bytes, *, what: str = "request body") -> Any:
    """Parse JSON, refusing malformed input with a 400 that says where it broke."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError(ErrorCode.MALFORMED_JSON,
                        f"The {what} is not valid JSON: {exc.msg} at character {exc.pos}") from None


def parse_resource(raw: bytes) -> ResourceDict:
    """Parse a request body that must be a FHIR resource (a JSON object with a resourceType)."""
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise FhirError(ErrorCode.MALFORMED_JSON, "The request body must be a JSON object "
                        "(a FHIR resource), not a " + type(data).__name__)
    if not isinstance(data.get("resourceType"), str):
        raise FhirError(ErrorCode.BAD_REQUEST, "The resource has no resourceType",
                        expression=("resourceType",))
    return data


def dump(document: Any, *, pretty: bool = False) -> bytes:
    """Serialize to compact (or indented) UTF-8 JSON."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 if pretty else 0)
