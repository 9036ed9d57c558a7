"""Bearer-token gate in front of the API: only discovery (``/metadata``), the health check and
the implementation guide package (``/ig/…``) are served without authorization.

Until SMART on FHIR authorization is configured, the API accepts one operator token from
configuration (``FHIR_SERVER_API_TOKEN``; in development generated under the data dir).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.api.responses import error_response
from fhir_server.errors import ErrorCode, FhirError

PUBLIC_PATHS = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration",
                          "/healthz", "/ig/package.tgz", "/ig/package.json"})
"""Served to anyone: discovery, the health check and the implementation guide package."""
OPERATOR = "operator"
"""The request-state key set on requests that presented the operator token."""


def is_operator(request: Request) -> bool:
    """Whether the request carried the operator token (the administrator, until SMART)."""
    return bool(request.scope.get("state", {}).get(OPERATOR, False))


def refusal(scope: Scope, expected: bytes) -> Response | None:
    """The 401 answer for a request without the right bearer token, or None to let it in."""
    if scope["path"] in PUBLIC_PATHS:
        return None
    supplied = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            supplied = value
            break
    if supplied and hmac.compare_digest(supplied, expected):
        return None
    message = ("This endpoint needs authorization: send 'Authorization: Bearer <token>'"
               if not supplied else "The bearer token is not valid")
    return error_response(FhirError(ErrorCode.UNAUTHENTICATED, message))


def authorize(scope: Scope, expected: bytes) -> Response | None:
    """``refusal``, and for an admitted request with the operator token, the operator mark."""
    denied = refusal(scope, expected)
    if denied is None and scope["path"] not in PUBLIC_PATHS:
        scope.setdefault("state", {})[OPERATOR] = True
    return denied


def expected_header(token: str) -> bytes:
    return f"Bearer {token}".encode()


class BearerTokenGate:
    """ASGI middleware: 401 OperationOutcome unless ``Authorization: Bearer <token>`` matches."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self._expected = expected_header(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        denied = authorize(scope, self._expected) if scope["type"] == "http" else None
        if denied is not None:
            await denied(scope, receive, send)
            return
        await self.app(scope, receive, send)
