"""Bearer-token gate in front of the API: nothing but discovery is served without authorization.

Until SMART on FHIR authorization is configured, the API accepts one operator token from
configuration (``FHIR_SERVER_API_TOKEN``; in development generated under the data dir).
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.api.responses import error_response
from fhir_server.errors import ErrorCode, FhirError

PUBLIC_PATHS = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration",
                          "/healthz"})


class BearerTokenGate:
    """ASGI middleware: 401 OperationOutcome unless ``Authorization: Bearer <token>`` matches."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        supplied = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                supplied = value
                break
        if supplied and hmac.compare_digest(supplied, self._expected):
            await self.app(scope, receive, send)
            return
        message = ("This endpoint needs authorization: send 'Authorization: Bearer <token>'"
                   if not supplied else "The bearer token is not valid")
        response = error_response(FhirError(ErrorCode.UNAUTHENTICATED, message))
        await response(scope, receive, send)
