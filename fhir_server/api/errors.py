"""Every exception reaching the HTTP edge, turned into an OperationOutcome response in one place."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.responses import error_response
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.protocol import QueryTooCostly, StoreUnavailable

logger = logging.getLogger(__name__)

_HTTP_ERRORS = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}


def response_for(request: Request, exc: Exception) -> Response:
    """The OperationOutcome answer to ``exc``; unexpected errors are logged without content."""
    if isinstance(exc, FhirError):
        return error_response(exc, pretty=request.query_params.get("_pretty") == "true")
    if isinstance(exc, StarletteHTTPException):
        code = _HTTP_ERRORS.get(exc.status_code, ErrorCode.BAD_REQUEST)
        message = ("No FHIR interaction at this URL" if exc.status_code == 404
                   else f"{request.method} is not allowed on this URL"
                   if exc.status_code == 405 else str(exc.detail))
        return error_response(FhirError(code, message, headers=dict(exc.headers or {})))
    if isinstance(exc, QueryTooCostly):
        return error_response(FhirError(ErrorCode.TOO_COSTLY,
                                        f"This search is too costly to run: {exc}"))
    if isinstance(exc, StoreUnavailable):
        logger.error("store unavailable: %s", type(exc).__name__)
        return error_response(FhirError(ErrorCode.STORE_UNAVAILABLE,
                                        "The database is unavailable: retry in a moment",
                                        headers={"Retry-After": "5"}))
    logger.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path,
                 exc_info=exc)
    return error_response(FhirError(ErrorCode.INTERNAL,
                                    "Internal server error: nothing was changed by this request "
                                    "unless its answer said so; the incident is logged"))


async def handle_exception(request: Request, exc: Exception) -> Response:
    """The same mapping as a Starlette exception handler."""
    return response_for(request, exc)
