"""Reading a compact JWT's header before any key is chosen (it names the key and algorithm)."""

from __future__ import annotations

import base64
import json
from typing import Any

from conformance.client import CheckFailure


def unverified_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS; CheckFailure when ``token`` is not one."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0]:
        raise CheckFailure("the token is not a compact JWS (three base64url parts)")
    segment = parts[0].encode("ascii", "replace")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
    except (ValueError, UnicodeError) as error:
        raise CheckFailure("the token header is not base64url JSON") from error
    if not isinstance(header, dict):
        raise CheckFailure("the token header is not a JSON object")
    return header
