"""The FastAPI application: routes from the route table, FHIR errors, the auth gate, the runtime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from fhir_server import __version__
from fhir_server.api.auth_gate import BearerTokenGate
from fhir_server.api.capability import capability_factory
from fhir_server.api.responses import error_response
from fhir_server.api.router import FhirRoutes
from fhir_server.api.routes import ROUTES
from fhir_server.crypto.keys import load_keys
from fhir_server.engine.hooks import Hooks
from fhir_server.engine.instants import now_instant
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.runtime import Runtime, api_token
from fhir_server.settings import Settings
from fhir_server.storage.protocol import Store, StoreUnavailable

logger = logging.getLogger(__name__)

_HTTP_ERRORS = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}


async def _fhir_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    return error_response(exc, pretty=request.query_params.get("_pretty") == "true")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_ERRORS.get(exc.status_code, ErrorCode.BAD_REQUEST)
    message = ("No FHIR interaction at this URL" if exc.status_code == 404
               else f"{request.method} is not allowed on this URL"
               if exc.status_code == 405 else str(exc.detail))
    headers = dict(exc.headers or {})
    return error_response(FhirError(code, message, headers=headers))


async def _unavailable(request: Request, exc: Exception) -> Response:
    logger.error("store unavailable: %s", type(exc).__name__)
    return error_response(FhirError(ErrorCode.STORE_UNAVAILABLE,
                                    "The database is unavailable: retry in a moment",
                                    headers={"Retry-After": "5"}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(FhirError(ErrorCode.INTERNAL,
                                    "Internal server error: nothing was changed by this request "
                                    "unless its answer said so; the incident is logged"))


def create_app(settings: Settings | None = None, *, store: Store | None = None,
               hooks: Hooks | None = None) -> FastAPI:
    """The ASGI application; the runtime (store, engine, dispatcher) lives with the lifespan.

    ``store`` replaces the store named by the settings and ``hooks`` adds domain hooks.
    """
    settings = settings or Settings()
    token = api_token(settings)
    keys = load_keys(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, keys=keys, store=store, hooks=hooks)
        app.state.runtime = runtime
        app.state.engine = runtime.engine
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="Pictaderm FHIR server", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.state.settings = settings
    app.state.capability_statement = capability_factory(now_instant()[:19] + "Z")
    app.router.routes.append(FhirRoutes(ROUTES))
    app.add_exception_handler(FhirError, _fhir_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StoreUnavailable, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(BearerTokenGate, token=token)
    return app
