"""Bearer-token gate in front of the API: who the caller is, as an ``Access`` for the engine.

Served without authorization: discovery (``/metadata``, ``/.well-known/smart-configuration``),
the health check, the implementation guide package (``/ig/…``), the OAuth endpoints
(``/auth/…``, which authenticate their callers themselves) and the Pro Santé Connect sign-in
(``/auth/psc/…``, where PSC authenticates the person). Elsewhere a bearer token is either
the operator token (``FHIR_SERVER_API_TOKEN``; in development generated under the data dir), which
keeps full access, or an access token this server issued. An access token puts its ``Grant`` and
its ``Access`` (scopes, launch patient, and the role policy of the account or the client's
pharmacy) in the request state; the engine applies the access to every query and write
(``engine/access_control.py``). A token whose account may no longer act (suspended, terminated)
or whose client was revoked stops working at once: both are looked up on each request.
"""

from __future__ import annotations

import hmac
from typing import Final, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.access.access import Access
from fhir_server.access.principal import Principal
from fhir_server.api.responses import error_response
from fhir_server.auth.introspection import Grant, grant_for
from fhir_server.auth.model import AuthStore
from fhir_server.auth.users import UserDirectory
from fhir_server.errors import ErrorCode, FhirError

ACCOUNT_PUBLIC_PATHS = frozenset({"/accounts/register", "/accounts/verify-email",
                                  "/accounts/forgot-password", "/accounts/reset-password"})
"""The accounts' endpoints anyone may call (``api/accounts.py``; the others need a token)."""
OAUTH_PATHS = frozenset({"/auth/token", "/auth/introspect", "/auth/revoke", "/auth/authorize",
                         "/auth/logout", "/auth/jwks", "/.well-known/openid-configuration",
                         "/fhir/.well-known/openid-configuration"})
"""The OAuth and OpenID endpoints: public to the gate, they authenticate their callers
themselves (``/auth/launch`` is not among them: its caller is a user the gate authenticates)."""
PSC_PATHS = frozenset({"/auth/psc/start", "/auth/psc/callback"})
"""The Pro Santé Connect sign-in (``api/psc_login.py``): public, PSC authenticates the person."""
PUBLIC_PATHS = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration",
                          "/healthz", "/ig/package.tgz", "/ig/package.json", *OAUTH_PATHS,
                          *ACCOUNT_PUBLIC_PATHS, *PSC_PATHS})
"""Served to anyone: discovery, the health check, the guide package, the OAuth endpoints, the
accounts' public ones (registration, email verification, password reset) and the PSC sign-in."""
OPERATOR = "operator"
"""The request-state key set on requests that presented the operator token."""
GRANT = "smart_grant"
"""The request-state key holding the ``Grant`` of a request that presented an access token."""
ACCESS = "access"
"""The request-state key holding the ``Access`` of a request that presented an access token."""
_INVALID_TOKEN_CHALLENGE: Final = 'Bearer realm="fhir", error="invalid_token"'


def is_operator(request: Request) -> bool:
    """Whether the request carried the operator token (the administrator)."""
    return bool(request.scope.get("state", {}).get(OPERATOR, False))


def grant_of(request: Request) -> Grant | None:
    """The grant of a request that presented an access token; None for the operator."""
    grant = request.scope.get("state", {}).get(GRANT)
    return grant if isinstance(grant, Grant) else None


def bearer_value(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])


def _operator_header(scope: Scope, expected: bytes) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return hmac.compare_digest(value, expected)
    return False


def _users(scope: Scope) -> UserDirectory | None:
    app = scope.get("app")
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    return cast("UserDirectory | None", getattr(runtime, "users", None))


def _auth_store(scope: Scope) -> AuthStore | None:
    app = scope.get("app")
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    return cast("AuthStore | None", getattr(runtime, "auth_store", None))


async def authorize(scope: Scope, expected: bytes) -> Response | None:
    """The 401 answer for a request without a usable bearer token, or None to let it in with
    the operator mark or its ``Grant`` in the request state."""
    if scope["path"] in PUBLIC_PATHS:
        return None
    if _operator_header(scope, expected):
        scope.setdefault("state", {})[OPERATOR] = True
        return None
    if not _has_authorization(scope):
        return error_response(FhirError(
            ErrorCode.UNAUTHENTICATED,
            "This endpoint needs authorization: send 'Authorization: Bearer <token>'"))
    token = bearer_value(scope)
    store = _auth_store(scope)
    grant = None if token is None or store is None else await grant_for(store, token)
    access = None if grant is None or store is None else await _access_of_grant(
        store, grant, _users(scope))
    if grant is None or access is None:
        return error_response(FhirError(
            ErrorCode.UNAUTHENTICATED, "The bearer token is not valid (unknown, expired or "
                                       "revoked)",
            headers={"WWW-Authenticate": _INVALID_TOKEN_CHALLENGE}))
    state = scope.setdefault("state", {})
    state[GRANT] = grant
    state[ACCESS] = access
    return None


async def _access_of_grant(store: AuthStore, grant: Grant,
                           users: UserDirectory | None) -> Access | None:
    """The access of a usable token; None when its client was revoked or its account may no
    longer act (the token is then refused like an invalid one)."""
    if grant.subject is None:
        client = await store.get_client(grant.client_id)
        if client is None or not client.active:
            return None
        principal = (Principal(role="system", subject=client.client_id,
                               organization=client.organization)
                     if client.organization is not None else None)
        return Access(principal, grant.scopes, ("system",))
    person = None if users is None else await users.principal_of(grant.subject)
    if person is None:
        return None
    return Access(person, grant.scopes, ("user", "patient"), patient=grant.patient)


def access_of(request: Request) -> Access | None:
    """The access limiting a request (None: the operator, unlimited)."""
    access = request.scope.get("state", {}).get(ACCESS)
    return access if isinstance(access, Access) else None


def principal_of_request(request: Request) -> Principal | None:
    """The principal behind a request's access token (None: the operator, or a backend
    client acting for no pharmacy)."""
    access = access_of(request)
    return access.principal if access is not None else None


def expected_header(token: str) -> bytes:
    return f"Bearer {token}".encode()


class BearerTokenGate:
    """ASGI middleware: 401 OperationOutcome unless the request carries a usable bearer token."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self._expected = expected_header(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        denied = await authorize(scope, self._expected) if scope["type"] == "http" else None
        if denied is not None:
            await denied(scope, receive, send)
            return
        await self.app(scope, receive, send)
