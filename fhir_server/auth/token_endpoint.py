"""The token endpoint without HTTP: client authentication and the ``client_credentials`` grant
of SMART Backend Services; the shapes the app grants (``authorization_code.py``) answer with.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/backend-services.html, RFC 6749 sections 2.3,
4.4 and 5, RFC 7523 section 2.2 (notes: ``docs/implementation/smart-backend-services.md`` and
``smart-app-launch.md``). Every refusal is an ``OAuthError`` carrying the RFC 6749 section 5.2
error code and HTTP status. Access tokens are opaque (32 random bytes, base64url), stored only
by their hash; a backend's live at most five minutes.

Client authentication: backends by signed assertion (``private_key_jwt``) only; apps by
assertion, by secret (``client_secret_basic`` or ``client_secret_post``), or, for public
clients, by ``client_id`` alone (``none``, with PKCE doing the rest). A request uses one method.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import unquote_plus

from fhir_server.auth.client_assertion import InvalidClientAssertion, verify_client_assertion
from fhir_server.auth.client_secrets import verify_secret
from fhir_server.auth.jwks import JwksSource, JwksUnavailable
from fhir_server.auth.model import AuthStore, Client, IssuedToken, token_hash, utc_now
from fhir_server.auth.scopes import InvalidScope, ResourceScope, ScopeSet
from fhir_server.crypto.base64url import b64url_decode

CLIENT_CREDENTIALS: Final = "client_credentials"
AUTHORIZATION_CODE: Final = "authorization_code"
REFRESH_TOKEN: Final = "refresh_token"
GRANT_TYPES: Final = (AUTHORIZATION_CODE, CLIENT_CREDENTIALS, REFRESH_TOKEN)
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ACCESS_TOKEN_LIFETIME: Final = 300
"""Seconds an access token lives (SMART: at most five minutes for backend services)."""
TOKEN_BYTES: Final = 32


class OAuthError(Exception):
    """An OAuth error answer: ``error`` code, ``description`` for ``error_description``, and the
    HTTP ``status`` (401 for ``invalid_client``, 400 otherwise)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = 401 if error == "invalid_client" else 400

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True, slots=True)
class AccessTokenResponse:
    """A successful token response (RFC 6749 section 5.1); no refresh token for backends."""

    access_token: str
    expires_in: int
    scope: str
    token_type: str = "Bearer"

    def body(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "token_type": self.token_type,
                "expires_in": self.expires_in, "scope": self.scope}


@dataclass(frozen=True, slots=True)
class AppTokenResponse:
    """A token response to an app (RFC 6749 section 5.1 and SMART): the access token, the
    granted ``scope``, a ``refresh_token`` (``offline_access``/``online_access``), an
    ``id_token`` (``openid``) and the launch context (``patient``, ``encounter``,
    ``fhirContext``) when there are some."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    id_token: str | None = None
    patient: str | None = None
    encounter: str | None = None
    fhir_context: tuple[str, ...] = ()
    token_type: str = "Bearer"

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": self.access_token,
                                "token_type": self.token_type,
                                "expires_in": self.expires_in, "scope": self.scope}
        optional = {"refresh_token": self.refresh_token, "id_token": self.id_token,
                    "patient": self.patient, "encounter": self.encounter}
        body.update({name: value for name, value in optional.items() if value is not None})
        if self.fhir_context:
            body["fhirContext"] = [{"reference": reference} for reference in self.fhir_context]
        return body


def single_parameters(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Form parameters by name; ``invalid_request`` when one is repeated (RFC 6749 section 3.2)."""
    parameters: dict[str, str] = {}
    for name, value in items:
        if name in parameters:
            raise OAuthError("invalid_request", f"the parameter {name!r} is repeated")
        parameters[name] = value
    return parameters


def required(parameters: Mapping[str, str], name: str) -> str:
    """A parameter that must be present and not blank (``invalid_request`` otherwise)."""
    value = parameters.get(name, "").strip()
    if not value:
        raise OAuthError("invalid_request", f"the parameter {name!r} is missing")
    return value


class ClientKeys:
    """The process's ``JwksSource`` per client, so JWKS caching outlives one request; a source is
    rebuilt when the client's registered keys (URL or inline set) change."""

    def __init__(self) -> None:
        self._sources: dict[str, tuple[str, JwksSource]] = {}

    def source_for(self, client: Client) -> JwksSource:
        """The client's keys; ``invalid_client`` when it registered none, or unusable ones."""
        registration = json.dumps([client.jwks_url, client.jwks], sort_keys=True)
        known = self._sources.get(client.client_id)
        if known is not None and known[0] == registration:
            return known[1]
        try:
            if client.jwks_url is not None:
                source = JwksSource.remote(client.jwks_url)
            elif client.jwks is not None:
                source = JwksSource.inline(client.jwks)
            else:
                raise OAuthError("invalid_client", "this client has no registered keys: it "
                                                   "cannot authenticate with a client assertion")
        except JwksUnavailable as error:
            raise OAuthError("invalid_client", error.reason) from error
        self._sources[client.client_id] = (registration, source)
        return source


class TokenService:
    """Authenticates clients by assertion and issues backend access tokens into ``store``."""

    def __init__(self, store: AuthStore, *, keys: ClientKeys | None = None,
                 lifetime: int = ACCESS_TOKEN_LIFETIME) -> None:
        self._store = store
        self._keys = keys or ClientKeys()
        self._lifetime = min(lifetime, ACCESS_TOKEN_LIFETIME)

    async def client_credentials(self, parameters: Mapping[str, str], *, token_url: str
                                 ) -> AccessTokenResponse:
        """The token response to a ``client_credentials`` request; ``OAuthError`` otherwise.

        ``token_url``: this endpoint's absolute URL, which the assertion's ``aud`` must name.
        """
        grant_type = required(parameters, "grant_type")
        if grant_type != CLIENT_CREDENTIALS:
            raise OAuthError("unsupported_grant_type",
                             f"grant_type must be {CLIENT_CREDENTIALS!r}")
        requested = required(parameters, "scope")
        client = await self.authenticate(parameters, token_url=token_url)
        if client.kind != "backend":
            raise OAuthError("unauthorized_client",
                             "only backend service clients may use client_credentials")
        granted = granted_scopes(client, requested)
        return await self._issue(client, granted)

    async def authenticate(self, parameters: Mapping[str, str], *, token_url: str) -> Client:
        """The active client whose assertion (``client_assertion_type`` jwt-bearer and
        ``client_assertion``) verifies; ``invalid_request`` when they are missing,
        ``invalid_client`` for any other failure."""
        assertion_type = required(parameters, "client_assertion_type")
        assertion = required(parameters, "client_assertion")
        if assertion_type != ASSERTION_TYPE:
            raise OAuthError("invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}")
        client_id = parameters.get("client_id") or unverified_issuer(assertion)
        client = await self._store.get_client(client_id)
        if client is None:
            raise OAuthError("invalid_client", "unknown client")
        if not client.active:
            raise OAuthError("invalid_client", "this client has been revoked")
        try:
            await verify_client_assertion(
                assertion, client_id=client.client_id, token_url=token_url,
                keys=self._keys.source_for(client), remember_jti=self._remember_jti)
        except InvalidClientAssertion as error:
            raise OAuthError("invalid_client", error.reason) from error
        return client

    async def authenticate_app(self, parameters: Mapping[str, str], *,
                               authorization: str | None, token_url: str) -> Client:
        """The active app client (confidential or public) making an authorization-code or
        refresh request, authenticated by exactly one method: ``private_key_jwt``,
        ``client_secret_basic`` (``authorization``: the Authorization header),
        ``client_secret_post``, or ``none`` for a public client. ``invalid_client`` when it does
        not authenticate; ``unauthorized_client`` for a backend client; ``invalid_request`` when
        several methods are used at once."""
        basic = _basic_credentials(authorization)
        methods = [name for name, used in (
            ("client_secret_basic", basic is not None),
            ("client_secret_post", "client_secret" in parameters),
            ("private_key_jwt", "client_assertion" in parameters
             or "client_assertion_type" in parameters)) if used]
        if len(methods) > 1:
            raise OAuthError("invalid_request", "use one client authentication method, not "
                                                + " and ".join(methods))
        if methods == ["private_key_jwt"]:
            client = await self.authenticate(parameters, token_url=token_url)
        elif basic is not None:
            client = await self._by_secret(basic[0], basic[1], parameters.get("client_id"))
        elif methods == ["client_secret_post"]:
            client = await self._by_secret(required(parameters, "client_id"),
                                           parameters["client_secret"], None)
        else:
            client = await self._public_client(required(parameters, "client_id"))
        if client.kind == "backend":
            raise OAuthError("unauthorized_client", "backend service clients use "
                                                    "client_credentials only")
        return client

    async def _by_secret(self, client_id: str, secret: str, body_client_id: str | None
                         ) -> Client:
        """The active client whose registered secret is ``secret``; ``invalid_client``
        otherwise (never saying which of the id or the secret was wrong)."""
        if body_client_id is not None and body_client_id != client_id:
            raise OAuthError("invalid_client", "client_id differs from the authenticated client")
        client = await self._store.get_client(client_id)
        if (client is None or not client.active or client.secret_hash is None
                or not await asyncio.to_thread(verify_secret, secret, client.secret_hash)):
            raise OAuthError("invalid_client", "client authentication failed")
        return client

    async def _public_client(self, client_id: str) -> Client:
        """A public client, identified by its client_id alone."""
        client = await self._store.get_client(client_id)
        if client is None or not client.active:
            raise OAuthError("invalid_client", "unknown or revoked client")
        if client.kind != "public":
            raise OAuthError("invalid_client", "this client must authenticate (client secret "
                                               "or client assertion)")
        return client

    async def _remember_jti(self, client_id: str, jti: str, forget_after: float) -> bool:
        return await self._store.remember_jti(client_id, jti,
                                              datetime.fromtimestamp(forget_after, UTC))

    async def _issue(self, client: Client, granted: ScopeSet) -> AccessTokenResponse:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        issued_at = utc_now()
        scope = granted.render()
        await self._store.save_token(IssuedToken(
            token_hash=token_hash(token), kind="access", client_id=client.client_id,
            scope=scope, issued_at=issued_at,
            expires_at=issued_at + timedelta(seconds=self._lifetime)))
        return AccessTokenResponse(access_token=token, expires_in=self._lifetime, scope=scope)


def granted_scopes(client: Client, requested: str) -> ScopeSet:
    """The requested ``system/`` scopes the client's registration covers; ``invalid_scope`` when
    a scope is malformed or nothing can be granted."""
    try:
        narrowed = client.scopes().narrowed(requested)
    except InvalidScope as error:
        raise OAuthError("invalid_scope", str(error)) from error
    system = tuple(scope for scope in narrowed.scopes
                   if isinstance(scope, ResourceScope) and scope.context == "system")
    if not system:
        raise OAuthError("invalid_scope", "none of the requested scopes can be granted to this "
                                          "client (backend clients get system/ scopes they "
                                          "are registered for)")
    return ScopeSet(system)


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(client_id, secret) of an ``Authorization: Basic`` header (RFC 6749 section 2.3.1: each
    form-urlencoded, then joined by a colon and base64-encoded); None without such a header;
    ``invalid_client`` when it is malformed."""
    if authorization is None:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise OAuthError("invalid_client", "the Basic credentials are not base64 of "
                                           "client_id:client_secret") from error
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id or not secret:
        raise OAuthError("invalid_client", "the Basic credentials are not client_id:secret")
    return unquote_plus(client_id), unquote_plus(secret)


def unverified_issuer(assertion: str) -> str:
    """The ``iss`` of an assertion, read before verification only to find the client."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise OAuthError("invalid_client", "client_assertion is not a compact JWS (JWT)")
    segment = parts[1].encode("ascii", errors="replace")
    try:
        claims = json.loads(b64url_decode(segment))
    except (ValueError, binascii.Error, UnicodeError, RecursionError) as error:
        raise OAuthError("invalid_client", "the client_assertion payload is not JSON") from error
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(issuer, str) or not issuer:
        raise OAuthError("invalid_client", "the client_assertion has no iss (the client_id)")
    return issuer
