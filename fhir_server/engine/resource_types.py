"""Which resource types exist in FHIR R4, and the rules for logical ids."""

from __future__ import annotations

import re
from functools import cache

from fhir_server.definitions import resource_types
from fhir_server.errors import ErrorCode, FhirError

_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@cache
def known_types() -> frozenset[str]:
    """All concrete R4 resource types."""
    return frozenset(resource_types())


def require_type(resource_type: str) -> str:
    """Refuse an unknown resource type with a 404, as the REST API requires."""
    if resource_type not in known_types():
        raise FhirError(ErrorCode.UNKNOWN_TYPE,
                        f"Unknown resource type '{resource_type[:80]}': this server supports "
                        "the FHIR R4 resource types only")
    return resource_type


def valid_id(value: str) -> bool:
    """True for a syntactically valid FHIR logical id."""
    return bool(_ID_RE.match(value))


def require_id(value: str) -> str:
    """Refuse an invalid logical id with a 400."""
    if not valid_id(value):
        raise FhirError(ErrorCode.BAD_REQUEST,
                        f"'{value[:80]}' is not a valid resource id (1-64 characters: letters, "
                        "digits, '-' and '.')")
    return value
