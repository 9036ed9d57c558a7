"""The FastAPI application: routes from the route table, FHIR errors, the auth gate, the runtime.

Beside the FHIR base, it serves the implementation guide's package (``/ig/package.tgz`` and its
manifest ``/ig/package.json``), public like ``/metadata``, and the OAuth endpoints of SMART
Backend Services (``/auth/token``, ``/auth/introspect``, ``/auth/revoke``), and the accounts'
endpoints (``/accounts/…``, ``/admin/…``), and the Pro Santé Connect sign-in (``/auth/psc/…``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from fhir_server import __version__
from fhir_server.api import authorize, dmp_exports, handlers, oauth, psc_login
from fhir_server.api.accounts import ACCOUNT_ROUTES
from fhir_server.api.auth_gate import BearerTokenGate
from fhir_server.api.capability import MANIFEST_PATH, PACKAGE_PATH, capability_factory
from fhir_server.api.errors import handle_exception
from fhir_server.api.router import FhirRoutes
from fhir_server.api.routes import ROUTES
from fhir_server.auth.model import AuthStore
from fhir_server.crypto.keys import load_keys
from fhir_server.engine.hooks import Hooks
from fhir_server.engine.instants import now_instant
from fhir_server.errors import FhirError
from fhir_server.ig.package import load_guide
from fhir_server.runtime import Runtime, api_token
from fhir_server.settings import Settings
from fhir_server.storage.protocol import Store, StoreUnavailable


class FhirServerApp(FastAPI):
    """FastAPI, with the FHIR URLs (``/fhir/…``) served straight by the FHIR router.

    FHIR requests skip FastAPI's middleware stack (telemetry, body limit, exit stacks, Starlette's
    exception layers): the router authorizes, dispatches and maps errors itself, which saves a
    measurable share of every request. Everything else (lifespan, other paths) is plain FastAPI.
    """

    fhir: FhirRoutes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.fhir.matches(scope)[0] is Match.FULL:
            scope["app"] = self
            await self.fhir.serve(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, store: Store | None = None,
               auth_store: AuthStore | None = None, hooks: Hooks | None = None) -> FastAPI:
    """The ASGI application; the runtime (stores, engine, dispatcher) lives with the lifespan.

    ``store`` and ``auth_store`` replace the stores named by the settings and ``hooks`` adds
    domain hooks.
    """
    settings = settings or Settings()
    token = api_token(settings)
    keys = load_keys(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, keys=keys, store=store, auth_store=auth_store,
                                      hooks=hooks)
        app.state.runtime = runtime
        app.state.engine = runtime.engine
        app.state.accounts = runtime.accounts
        app.state.authorization = runtime.authorization
        try:
            yield
        finally:
            await runtime.stop()

    app = FhirServerApp(title="Pictaderm FHIR server", version=__version__, lifespan=lifespan,
                        docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.state.settings = settings
    app.state.operator_token = token
    app.state.guide = load_guide()
    app.state.capability_statement = capability_factory(now_instant()[:19] + "Z",
                                                        guide=app.state.guide)
    app.fhir = FhirRoutes(ROUTES, token=token)
    app.add_route(PACKAGE_PATH, handlers.ig_package, methods=["GET"])
    app.add_route(MANIFEST_PATH, handlers.ig_manifest, methods=["GET"])
    app.add_route(oauth.TOKEN_PATH, oauth.token, methods=["POST", "OPTIONS"])
    app.add_route(oauth.INTROSPECTION_PATH, oauth.introspect, methods=["POST", "OPTIONS"])
    app.add_route(oauth.REVOCATION_PATH, oauth.revoke, methods=["POST", "OPTIONS"])
    for route in (*ACCOUNT_ROUTES, *dmp_exports.ROUTES, *authorize.ROUTES,
                  *psc_login.ROUTES):
        app.router.routes.append(route)
    app.add_route(oauth.LAUNCH_PATH, oauth.launch, methods=["POST"])
    for exception in (FhirError, StarletteHTTPException, StoreUnavailable, Exception):
        app.add_exception_handler(exception, handle_exception)
    app.add_middleware(BearerTokenGate, token=token)
    return app
