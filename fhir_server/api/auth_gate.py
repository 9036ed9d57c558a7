"""Bearer-token gate in front of the API, and the SMART scope check of each FHIR interaction.

Served without authorization: discovery (``/metadata``, ``/.well-known/smart-configuration``),
the health check, the implementation guide package (``/ig/…``) and the OAuth endpoints
(``/auth/…``, which authenticate their callers themselves). Elsewhere a bearer token is either
the operator token (``FHIR_SERVER_API_TOKEN``; in development generated under the data dir), which
keeps full access, or an access token this server issued, which puts a ``Grant`` in the request
state; the router then checks the interaction's scope letter with ``scope_refusal``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Final, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.api.responses import error_response
from fhir_server.auth.introspection import Grant, grant_for
from fhir_server.auth.model import AuthStore
from fhir_server.auth.scopes import Interaction, permission_letter
from fhir_server.errors import ErrorCode, FhirError

OAUTH_PATHS = frozenset({"/auth/token", "/auth/introspect", "/auth/revoke"})
"""The OAuth endpoints: public to the gate, they authenticate their callers themselves."""
PUBLIC_PATHS = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration",
                          "/healthz", "/ig/package.tgz", "/ig/package.json", *OAUTH_PATHS})
"""Served to anyone: discovery, the health check, the guide package and the OAuth endpoints."""
OPERATOR = "operator"
"""The request-state key set on requests that presented the operator token."""
GRANT = "smart_grant"
"""The request-state key holding the ``Grant`` of a request that presented an access token."""
NOT_YET: Final = "not yet available to SMART tokens (use the operator token)"
COMPARTMENT_ROUTE: Final = "/Patient/{id}/{type}"
_INVALID_TOKEN_CHALLENGE: Final = 'Bearer realm="fhir", error="invalid_token"'
_REFUSED_INTERACTIONS: Final = {"transaction": "Batch and transaction Bundles",
                                "batch": "Batch and transaction Bundles",
                                "operation": "Operations ($name)"}
_CHECKED: Final[tuple[Interaction, ...]] = (
    "read", "vread", "history-instance", "search-type", "search-system", "history-type",
    "history-system", "create", "update", "patch", "delete")
_INTERACTIONS: Final[dict[str, Interaction]] = {name: name for name in _CHECKED}
_PUBLIC_INTERACTIONS: Final = frozenset({"capabilities", "smart-configuration"})
_REVEALING_PARAMETERS: Final = frozenset({"_include", "_revinclude", "_has"})


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
    if grant is None:
        return error_response(FhirError(
            ErrorCode.UNAUTHENTICATED, "The bearer token is not valid (unknown, expired or "
                                       "revoked)",
            headers={"WWW-Authenticate": _INVALID_TOKEN_CHALLENGE}))
    scope.setdefault("state", {})[GRANT] = grant
    return None


def scope_refusal(grant: Grant, *, interaction: str, route: str,
                  path_params: Mapping[str, str], parameters: Iterable[tuple[str, str]],
                  conditional: bool) -> str | None:
    """Why ``grant`` does not allow this interaction (a 403 message), or None when it does.

    ``route``: the route's path template; ``parameters``: the search parameters (URL and form);
    ``conditional``: a conditional create, update, patch or delete, which also searches.
    """
    if interaction in _PUBLIC_INTERACTIONS:
        return None
    refused = _REFUSED_INTERACTIONS.get(interaction)
    if refused is not None:
        return f"{refused} are {NOT_YET}"
    if route == COMPARTMENT_ROUTE:
        return f"Compartment searches are {NOT_YET}"
    asked = _INTERACTIONS.get(interaction)
    if asked is None:
        return f"The interaction '{interaction}' is {NOT_YET}"
    pairs = list(parameters)
    revealing = _revealing_parameter(name for name, _ in pairs)
    if revealing is not None:
        return f"The search parameter '{revealing}' is {NOT_YET}"
    checks: list[Interaction] = [asked, "search-type"] if conditional else [asked]
    for resource_type in _types_of(path_params, pairs):
        for needed in checks:
            problem = _letter_refusal(grant, needed, resource_type)
            if problem is not None:
                return problem
    return None


def _types_of(path_params: Mapping[str, str], pairs: list[tuple[str, str]]
              ) -> tuple[str | None, ...]:
    """The resource types an interaction reaches: the URL's, else those of ``_type``, else all
    (None)."""
    if "type" in path_params:
        return (path_params["type"],)
    named = tuple(part.strip() for name, value in pairs if name == "_type"
                  for part in value.split(",") if part.strip())
    return named or (None,)


def _revealing_parameter(names: Iterable[str]) -> str | None:
    """A parameter that reaches other resources than the ones searched (includes, ``_has``,
    chains), which SMART tokens may not use yet."""
    for name in names:
        if name.split(":", 1)[0] in _REVEALING_PARAMETERS or "." in name:
            return name
    return None


def _letter_refusal(grant: Grant, interaction: Interaction, resource_type: str | None
                    ) -> str | None:
    letter = permission_letter(interaction)
    needed = f"{grant.context}/{resource_type or '*'}.{letter}"
    if not grant.scopes.allows(grant.context, interaction, resource_type):
        return f"This interaction needs the scope '{needed}' (or one covering it)"
    if grant.scopes.restrictions(grant.context, interaction, resource_type) is not None:
        return f"Scopes restricted with '?param=value' are {NOT_YET}: ask for '{needed}'"
    return None


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
