"""The OAuth endpoints over HTTP and discovery: ``POST /auth/token`` (``client_credentials``,
``authorization_code``, ``refresh_token``), ``POST /auth/introspect`` (RFC 7662),
``POST /auth/revoke`` (RFC 7009), ``GET /fhir/.well-known/smart-configuration``, the OpenID
Connect discovery document and the ID tokens' JWKS (``GET /auth/jwks``).

Only the HTTP side lives here (form parsing, status codes, headers, CORS); what a token is and
who gets one is ``fhir_server.auth.token_endpoint``, ``authorization_code`` and
``introspection``. Services: ``app.state.runtime`` (``tokens``, ``auth_store``) for backends,
introspection and revocation; ``app.state.authorization`` (``AppAuthorization``) for the app
grants and the JWKS. Notes: ``docs/implementation/smart-backend-services.md`` and
``smart-app-launch.md``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fhir_server.api.auth_gate import bearer_value, principal_of_request
from fhir_server.api.handlers import base_url
from fhir_server.api.negotiation import header, media_type
from fhir_server.auth.authorization_code import AppAuthorization, revoke_presented
from fhir_server.auth.id_tokens import ALGORITHM as ID_TOKEN_ALGORITHM
from fhir_server.auth.introspection import introspect as introspection_of
from fhir_server.auth.introspection import may_introspect
from fhir_server.auth.launch import LaunchRefused, create_launch
from fhir_server.auth.model import AuthStore
from fhir_server.auth.token_endpoint import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    GRANT_TYPES,
    REFRESH_TOKEN,
    OAuthError,
    TokenService,
    required,
    single_parameters,
)

TOKEN_PATH: Final = "/auth/token"
INTROSPECTION_PATH: Final = "/auth/introspect"
REVOCATION_PATH: Final = "/auth/revoke"
AUTHORIZE_PATH: Final = "/auth/authorize"
JWKS_PATH: Final = "/auth/jwks"
LOGOUT_PATH: Final = "/auth/logout"
MANAGEMENT_PATH: Final = "/accounts"
LAUNCH_PATH: Final = "/auth/launch"
"""Where a signed-in user's EHR creates a launch for a patient (bearer token required)."""
OPENID_CONFIGURATION: Final = "/.well-known/openid-configuration"
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
APP_SCOPES: Final = ("openid", "fhirUser", "launch", "launch/patient", "launch/encounter",
                     "offline_access", "online_access", "patient/*.cruds", "patient/*.rs",
                     "patient/*.read", "patient/*.write", "patient/*.*", "user/*.cruds",
                     "user/*.rs", "user/*.read", "user/*.write", "user/*.*")
"""What apps may ask for (examples for the resource scopes: any of the grammar works)."""
CAPABILITIES: Final = (
    "launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
    "client-confidential-asymmetric", "sso-openid-connect", "context-standalone-patient",
    "context-ehr-patient", "permission-offline", "permission-patient", "permission-user",
    "permission-v1", "permission-v2")
AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
ASSERTION_ALGORITHMS: Final = ("RS384", "ES384")


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


def smart_configuration_document(base: str) -> dict[str, Any]:
    """The SMART discovery document for the FHIR base URL ``base``: what this server does."""
    root = root_of(base)
    return {
        "issuer": base,
        "jwks_uri": root + JWKS_PATH,
        "authorization_endpoint": root + AUTHORIZE_PATH,
        "token_endpoint": root + TOKEN_PATH,
        "introspection_endpoint": root + INTROSPECTION_PATH,
        "revocation_endpoint": root + REVOCATION_PATH,
        "management_endpoint": root + MANAGEMENT_PATH,
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "scopes_supported": [*APP_SCOPES, *SYSTEM_SCOPES],
        "capabilities": list(CAPABILITIES),
        "code_challenge_methods_supported": ["S256"],
    }


def openid_configuration_document(base: str) -> dict[str, Any]:
    """The OpenID Connect discovery document; the issuer is the FHIR base URL ``base``."""
    root = root_of(base)
    return {
        "issuer": base,
        "authorization_endpoint": root + AUTHORIZE_PATH,
        "token_endpoint": root + TOKEN_PATH,
        "jwks_uri": root + JWKS_PATH,
        "introspection_endpoint": root + INTROSPECTION_PATH,
        "revocation_endpoint": root + REVOCATION_PATH,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [AUTHORIZATION_CODE, REFRESH_TOKEN],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALGORITHM],
        "scopes_supported": list(APP_SCOPES),
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
                             "fhirUser"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "code_challenge_methods_supported": ["S256"],
        "request_parameter_supported": False,
        "claims_parameter_supported": False,
    }


async def smart_configuration(request: Request) -> Response:
    """``GET [base]/.well-known/smart-configuration``: JSON whatever ``Accept`` says."""
    return JSONResponse(smart_configuration_document(base_url(request)))


async def openid_configuration(request: Request) -> Response:
    """``GET /.well-known/openid-configuration`` and ``GET [base]/.well-known/…``: the OIDC
    discovery document (the issuer is the FHIR base, so ``[base]/.well-known/…`` is where OIDC
    Discovery looks; the root copy serves clients that look at the host)."""
    return JSONResponse(openid_configuration_document(base_url(request)), headers=CORS)


async def jwks(request: Request) -> Response:
    """``GET /auth/jwks``: the public key that verifies ID tokens."""
    return JSONResponse(_authorization(request).signer.jwks(),
                        headers={**CORS, "Cache-Control": "public, max-age=300"})


async def token(request: Request) -> Response:
    """``POST /auth/token``: dispatched on ``grant_type`` (``client_credentials`` with a client
    assertion; ``authorization_code`` and ``refresh_token`` for apps)."""
    if request.method == "OPTIONS":
        return _preflight()
    authorization = header(request, "authorization")
    try:
        parameters = await _form(request)
        body = await _grant(request, parameters, authorization)
    except OAuthError as error:
        return _error(error, basic=_is_basic(authorization))
    return _json(body)


async def _grant(request: Request, parameters: Mapping[str, str], authorization: str | None
                 ) -> dict[str, Any]:
    """The token response body of the request's grant type."""
    grant_type = required(parameters, "grant_type")
    token_url = endpoint_url(request, TOKEN_PATH)
    if grant_type == CLIENT_CREDENTIALS:
        answer = await _tokens(request).client_credentials(parameters, token_url=token_url)
        return answer.body()
    if grant_type == AUTHORIZATION_CODE:
        exchanged = await _authorization(request).exchange_code(
            parameters, authorization=authorization, token_url=token_url,
            fhir_base=base_url(request))
        return exchanged.body()
    if grant_type == REFRESH_TOKEN:
        refreshed = await _authorization(request).refresh(
            parameters, authorization=authorization, token_url=token_url)
        return refreshed.body()
    raise OAuthError("unsupported_grant_type",
                     "grant_type must be one of " + ", ".join(GRANT_TYPES))


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
    """``POST /auth/revoke``: a client revokes its own token (authenticated as at the token
    endpoint), or the operator any; a refresh token takes its grant family with it."""
    if request.method == "OPTIONS":
        return _preflight()
    try:
        parameters = await _form(request)
        client_id = await _revoking_client(request, parameters)
        subject = required(parameters, "token")
    except OAuthError as error:
        return _error(error, basic=_is_basic(header(request, "authorization")))
    await revoke_presented(_auth_store(request), subject, client_id=client_id)
    return Response(status_code=200, headers={**NO_STORE, **CORS})


async def _revoking_client(request: Request, parameters: Mapping[str, str]) -> str | None:
    """The client revoking (None: the operator); ``invalid_client`` when neither authenticates.
    A client assertion authenticates any client; an app may also use its secret (Basic or in
    the body) or, when public, its client_id alone."""
    presented = bearer_value(request.scope)
    if presented is not None and hmac.compare_digest(presented.encode(),
                                                     _operator_token(request).encode()):
        return None
    token_url = endpoint_url(request, TOKEN_PATH)
    authorization = header(request, "authorization")
    if "client_assertion" in parameters:
        client = await _tokens(request).authenticate(parameters, token_url=token_url)
    elif _is_basic(authorization) or "client_id" in parameters:
        client = await _tokens(request).authenticate_app(parameters, authorization=authorization,
                                                         token_url=token_url)
    else:
        raise OAuthError("invalid_client", "authenticate as at the token endpoint (client "
                                           "assertion, client secret, or a public client's "
                                           "client_id) or with the operator token")
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


def _authorization(request: Request) -> AppAuthorization:
    service: AppAuthorization = request.app.state.authorization
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


def _error(error: OAuthError, *, basic: bool = False) -> Response:
    """RFC 6749 section 5.2: a JSON error; a 401 says how to authenticate (``Basic`` when the
    client tried HTTP Basic authentication)."""
    scheme = 'Basic realm="auth"' if basic else f'Bearer realm="fhir", error="{error.error}"'
    headers = {"WWW-Authenticate": scheme} if error.status == 401 else None
    return _json(error.body(), status=error.status, headers=headers)


def _is_basic(authorization: str | None) -> bool:
    return authorization is not None and authorization.strip().lower().startswith("basic ")


def _preflight() -> Response:
    return Response(status_code=204, headers=PREFLIGHT)


async def launch(request: Request) -> Response:
    """``POST /auth/launch`` (form ``patient``, optional ``encounter``): an EHR launch id bound
    to the caller and the patient, to hand to an app as its ``launch`` parameter. The caller is
    a signed-in user (an app token): the gate authenticated it; the patient must be one its
    role policy lets it read."""
    principal = principal_of_request(request)
    if principal is None:
        return _json({"error": "invalid_request", "error_description":
                      "an EHR launch is made with a signed-in user's token"}, status=403)
    try:
        parameters = await _form(request)
        created = await create_launch(
            _auth_store(request), principal, patient=required(parameters, "patient"),
            encounter=parameters.get("encounter") or None,
            patient_access=request.app.state.runtime.authorization.patient_access)
    except OAuthError as error:
        return _error(error)
    except LaunchRefused as refused:
        return _json({"error": "invalid_request", "error_description": str(refused)},
                     status=400)
    return _json({"launch": created.launch, "expires_in": created.expires_in}, status=201)
