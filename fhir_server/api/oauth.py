"""The OAuth endpoints over HTTP and SMART discovery: ``POST /auth/token`` (Backend Services),
``POST /auth/introspect`` (RFC 7662), ``POST /auth/revoke`` (RFC 7009) and
``GET /fhir/.well-known/smart-configuration``.

Only the HTTP side lives here (form parsing, status codes, headers, CORS); what a token is and
who gets one is ``fhir_server.auth.token_endpoint`` and ``fhir_server.auth.introspection``.
Notes: ``docs/implementation/smart-backend-services.md``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fhir_server.api.auth_gate import bearer_value
from fhir_server.api.handlers import base_url
from fhir_server.api.negotiation import header, media_type
from fhir_server.auth.introspection import introspect as introspection_of
from fhir_server.auth.introspection import may_introspect
from fhir_server.auth.introspection import revoke as revoke_token
from fhir_server.auth.model import AuthStore
from fhir_server.auth.token_endpoint import (
    OAuthError,
    TokenService,
    required,
    single_parameters,
)

TOKEN_PATH: Final = "/auth/token"
INTROSPECTION_PATH: Final = "/auth/introspect"
REVOCATION_PATH: Final = "/auth/revoke"
FORM: Final = "application/x-www-form-urlencoded"
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CORS: Final = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT: Final = {**CORS, "Access-Control-Allow-Methods": "POST, OPTIONS",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type",
                    "Access-Control-Max-Age": "600"}
FHIR_PATH: Final = "/fhir"
"""Where the FHIR base sits under the public root (``routes.BASE``, which imports this module)."""
SYSTEM_SCOPES: Final = ("system/*.cruds", "system/*.rs", "system/*.read", "system/*.write",
                        "system/*.*")
"""Examples of what backend clients may ask for; any ``system/`` scope of the grammar works."""


def public_root(request: Request) -> str:
    """The server's public root URL (the FHIR base without ``/fhir``), where ``/auth/…`` live."""
    return root_of(base_url(request))


def root_of(base: str) -> str:
    """The public root of a FHIR base URL: the base without ``/fhir``."""
    if base.endswith(FHIR_PATH):
        return base[:-len(FHIR_PATH)]
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


def endpoint_url(request: Request, path: str) -> str:
    """The absolute URL of an OAuth endpoint, as clients address it."""
    return public_root(request) + path


def smart_configuration_document(root: str) -> dict[str, Any]:
    """The SMART discovery document: only what this server does today."""
    return {
        "token_endpoint": root + TOKEN_PATH,
        "introspection_endpoint": root + INTROSPECTION_PATH,
        "revocation_endpoint": root + REVOCATION_PATH,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": list(SYSTEM_SCOPES),
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
    }


async def smart_configuration(request: Request) -> Response:
    """``GET [base]/.well-known/smart-configuration``: JSON whatever ``Accept`` says."""
    return JSONResponse(smart_configuration_document(public_root(request)))


async def token(request: Request) -> Response:
    """``POST /auth/token``: a ``client_credentials`` grant with a client assertion."""
    if request.method == "OPTIONS":
        return _preflight()
    try:
        parameters = await _form(request)
        answer = await _tokens(request).client_credentials(
            parameters, token_url=endpoint_url(request, TOKEN_PATH))
    except OAuthError as error:
        return _error(error)
    return _json(answer.body())


async def introspect(request: Request) -> Response:
    """``POST /auth/introspect``: callers present the operator token or an access token."""
    if request.method == "OPTIONS":
        return _preflight()
    store = _auth_store(request)
    presented = bearer_value(request.scope)
    if not await may_introspect(store, presented, operator_token=_operator_token(request)):
        challenge = 'Bearer realm="fhir"' + (', error="invalid_token"' if presented else "")
        return _json({"error": "invalid_token",
                      "error_description": "introspection needs 'Authorization: Bearer <token>' "
                                           "with an active access token of this server"},
                     status=401, headers={"WWW-Authenticate": challenge})
    try:
        subject = required(await _form(request), "token")
    except OAuthError as error:
        return _error(error)
    return _json(await introspection_of(store, subject))


async def revoke(request: Request) -> Response:
    """``POST /auth/revoke``: the client (by assertion) revokes its token, or the operator any."""
    if request.method == "OPTIONS":
        return _preflight()
    try:
        parameters = await _form(request)
        client_id = await _revoking_client(request, parameters)
        subject = required(parameters, "token")
    except OAuthError as error:
        return _error(error)
    await revoke_token(_auth_store(request), subject, client_id=client_id)
    return Response(status_code=200, headers={**NO_STORE, **CORS})


async def _revoking_client(request: Request, parameters: Mapping[str, str]) -> str | None:
    """The client revoking (None: the operator); ``invalid_client`` when neither authenticates."""
    presented = bearer_value(request.scope)
    if presented is not None and hmac.compare_digest(presented.encode(),
                                                     _operator_token(request).encode()):
        return None
    if "client_assertion" not in parameters:
        raise OAuthError("invalid_client", "authenticate with a client assertion "
                                           "(private_key_jwt) or the operator token")
    client = await _tokens(request).authenticate(parameters,
                                                 token_url=endpoint_url(request, TOKEN_PATH))
    return client.client_id


async def _form(request: Request) -> dict[str, str]:
    """The form-encoded body's parameters, each at most once."""
    if media_type(header(request, "content-type")) != FORM:
        raise OAuthError("invalid_request", f"the request body must be {FORM}")
    form = await request.form()
    return single_parameters((name, value) for name, value in form.multi_items()
                             if isinstance(value, str))


def _tokens(request: Request) -> TokenService:
    service: TokenService = request.app.state.runtime.tokens
    return service


def _auth_store(request: Request) -> AuthStore:
    store: AuthStore = request.app.state.runtime.auth_store
    return store


def _operator_token(request: Request) -> str:
    operator: str = request.app.state.operator_token
    return operator


def _json(body: Mapping[str, Any], *, status: int = 200,
          headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(dict(body), status_code=status,
                        headers={**NO_STORE, **CORS, **(headers or {})})


def _error(error: OAuthError) -> Response:
    """RFC 6749 section 5.2: a JSON error; a 401 says how to authenticate."""
    headers = ({"WWW-Authenticate": f'Bearer realm="fhir", error="{error.error}"'}
               if error.status == 401 else None)
    return _json(error.body(), status=error.status, headers=headers)


def _preflight() -> Response:
    return Response(status_code=204, headers=PREFLIGHT)
