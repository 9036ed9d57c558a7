"""SMART App Launch with the authorization code grant, without HTTP: the authorization request,
the code issued to the user who signed in, its exchange for tokens, the refresh grant and
signing out.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html, RFC 6749 sections 4.1, 6
and 10.5, RFC 7636 (``pkce.py``), OpenID Connect Core 1.0 (``id_tokens.py``). Notes and
choices: ``docs/implementation/smart-app-launch.md``.

- An unknown, revoked or backend client, or a ``redirect_uri`` that is not one of the client's
  registered URIs exactly, is a ``ShownError``: shown to the user, never redirected (RFC 6749
  section 4.1.2.1). Every other problem goes back to the app as a ``RedirectedError``.
- Scopes are clipped to the client's registration (``system/`` scopes never reach an app), then,
  once the user is known, to what the user's role may have (``ROLE_SCOPES``).
- A code is single-use and short-lived; its second exchange fails and revokes every token
  issued from it (RFC 6749 section 4.1.2). The tokens of one authorization share a
  ``grant_id``: a refresh rotates the refresh token, and a spent refresh token presented again
  revokes the whole family.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from fhir_server.access.principal import Principal, Role
from fhir_server.auth.id_tokens import IdTokenSigner
from fhir_server.auth.launch import PatientAccess
from fhir_server.auth.model import (
    AuthorizationCode,
    AuthStore,
    Client,
    IssuedToken,
    token_hash,
    utc_millis,
    utc_now,
)
from fhir_server.auth.pkce import InvalidChallenge, check_challenge, verify_code_verifier
from fhir_server.auth.scopes import InvalidScope, ResourceScope, ScopeSet, parse_scopes
from fhir_server.auth.token_endpoint import (
    TOKEN_BYTES,
    AppTokenResponse,
    OAuthError,
    TokenService,
    required,
)
from fhir_server.auth.users import SignedInUser, UserDirectory
from fhir_server.engine.resource_types import valid_id
from fhir_server.settings import Settings

AUTHORIZE_PARAMETERS: Final = ("response_type", "client_id", "redirect_uri", "scope", "state",
                               "aud", "code_challenge", "code_challenge_method", "launch",
                               "nonce")
"""The authorization request parameters this server reads (others are ignored)."""
MAX_PARAMETER_LENGTH: Final = 4096
CODE_BYTES: Final = 32
GRANT_ID_BYTES: Final = 16
_PEOPLE_SCOPES: Final = ("openid fhirUser offline_access online_access launch launch/patient "
                         "launch/encounter patient/*.cruds user/*.cruds")
_STAFF_SCOPES: Final = ("openid fhirUser offline_access online_access "
                        "user/Practitioner.rs user/PractitionerRole.rs user/Organization.rs")
ROLE_SCOPES: Final[Mapping[Role, str]] = {
    "pharmacist": _PEOPLE_SCOPES, "doctor": _PEOPLE_SCOPES, "medical-director": _PEOPLE_SCOPES,
    "admin": _STAFF_SCOPES, "support": _STAFF_SCOPES, "system": ""}
"""The most a user of each role may be granted through an app. The role policies then decide
which resources each granted scope reaches; admin and support get no health data."""


class ShownError(Exception):
    """An authorization request that must not be answered by a redirect; the page shows why."""

    def __init__(self, message_fr: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message_fr = message_fr
        self.message_en = message_en


class RedirectedError(Exception):
    """An error sent back to the app on its redirect URI (RFC 6749 section 4.1.2.1)."""

    def __init__(self, redirect_uri: str, error: str, description: str, *,
                 state: str | None) -> None:
        super().__init__(description)
        self.redirect_uri = redirect_uri
        self.error = error
        self.description = description
        self.state = state

    @property
    def location(self) -> str:
        """The redirect URI with ``error``, ``error_description`` and ``state``."""
        return with_query(self.redirect_uri, _with_state(
            {"error": self.error, "error_description": self.description}, self.state))


class PatientRefused(Exception):
    """The patient chosen on the sign-in form is missing, unknown or not accessible to the user
    (the form is shown again with the message)."""

    def __init__(self, message_fr: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message_fr = message_fr
        self.message_en = message_en


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """Seconds a code, an app's access token and a refresh token live."""

    code: int = 60
    access: int = 3600
    refresh: int = 30 * 24 * 3600

    @classmethod
    def from_settings(cls, settings: Settings) -> Lifetimes:
        return cls(code=settings.authorization_code_seconds,
                   access=settings.app_access_token_seconds,
                   refresh=settings.refresh_token_seconds)


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """A valid authorization request, before the user signs in.

    ``scopes``: what was asked, within the client's registration; ``launch``: the EHR launch id
    and ``launch_patient`` its patient; ``parameters``: the authorization parameters as received
    (the sign-in form carries them back).
    """

    client: Client
    redirect_uri: str
    scopes: ScopeSet
    code_challenge: str
    state: str | None
    nonce: str | None
    launch: str | None
    launch_patient: str | None
    parameters: tuple[tuple[str, str], ...]

    @property
    def asks_patient(self) -> bool:
        """A standalone launch asking ``launch/patient``: the user chooses the patient."""
        return self.launch is None and self.scopes.has("launch/patient")

    def location(self, parameters: Mapping[str, str]) -> str:
        """The redirect URI with ``parameters`` and the request's ``state``."""
        return with_query(self.redirect_uri, _with_state(parameters, self.state))

    def error(self, error: str, description: str) -> RedirectedError:
        return RedirectedError(self.redirect_uri, error, description, state=self.state)


class AppAuthorization:
    """The authorization server for apps: authorization requests, codes, tokens, sign-out."""

    def __init__(self, *, store: AuthStore, tokens: TokenService, users: UserDirectory,
                 patient_access: PatientAccess, signer: IdTokenSigner,
                 lifetimes: Lifetimes | None = None) -> None:
        self._store = store
        self._tokens = tokens
        self._users = users
        self._patient_access = patient_access
        self._signer = signer
        self._lifetimes = lifetimes or Lifetimes()
        self._form_key: bytes | None = None


    @property
    def patient_access(self) -> PatientAccess:
        """Whether a user may open a patient's record (EHR launches use it too)."""
        return self._patient_access
    @property
    def signer(self) -> IdTokenSigner:
        return self._signer

    @property
    def users(self) -> UserDirectory:
        """The accounts people sign in to (by password, or by RPPS after Pro Santé Connect)."""
        return self._users

    @property
    def form_key(self) -> bytes:
        """The key that signs the sign-in form's tokens (derived from the signing key)."""
        if self._form_key is None:
            self._form_key = self._signer.derived_key("authorize form v1")
        return self._form_key

    async def authorize_request(self, items: Iterable[tuple[str, str]], *, fhir_base: str,
                                now: datetime | None = None) -> AuthorizeRequest:
        """Check an authorization request (query or form parameters); ``ShownError`` or
        ``RedirectedError`` when it cannot go on to the sign-in."""
        parameters, repeated = _collect(items)
        client = await self._app_client(parameters.get("client_id"), "client_id" in repeated)
        redirect_uri = _registered_redirect(client, parameters.get("redirect_uri"),
                                            "redirect_uri" in repeated)
        state = parameters.get("state") or None
        fail = _Fail(redirect_uri, None if "state" in repeated else state)
        challenge = _checked_request(parameters, repeated, fhir_base=fhir_base, fail=fail)
        scopes = _within_client(client, parameters.get("scope", ""), fail)
        launch = parameters.get("launch") or None
        launch_patient = await self._launch_patient(launch, scopes, fail, now)
        return AuthorizeRequest(
            client=client, redirect_uri=redirect_uri, scopes=scopes, code_challenge=challenge,
            state=state, nonce=parameters.get("nonce") or None, launch=launch,
            launch_patient=launch_patient,
            parameters=tuple((name, parameters[name]) for name in AUTHORIZE_PARAMETERS
                             if name in parameters))

    async def sign_in(self, request: AuthorizeRequest, *, email: str, password: str,
                      address: str, patient: str | None, fhir_base: str,
                      now: datetime | None = None) -> str:
        """Check the credentials (``SignInRefused`` from the user directory), issue the code and
        answer the redirect location carrying it; ``PatientRefused`` or ``RedirectedError``
        when the launch context cannot be given."""
        user = await self._users.sign_in(email, password, address=address)
        return await self.code_location(request, user, patient=patient, fhir_base=fhir_base,
                                        now=now)

    async def code_location(self, request: AuthorizeRequest, user: SignedInUser, *,
                            patient: str | None, fhir_base: str,
                            now: datetime | None = None) -> str:
        """The redirect location carrying a new code for ``user``, however they signed in
        (password, Pro Santé Connect); ``PatientRefused`` or ``RedirectedError`` as
        ``issue_code``."""
        code = await self.issue_code(request, user, patient=patient, fhir_base=fhir_base,
                                     now=now)
        return request.location({"code": code})

    async def issue_code(self, request: AuthorizeRequest, user: SignedInUser, *,
                         patient: str | None, fhir_base: str,
                         now: datetime | None = None) -> str:
        """A new authorization code for ``user``, with the request's scopes clipped to the
        user's role and the launch context (the EHR launch's, or ``patient`` chosen in a
        standalone launch)."""
        at = utc_millis(now or utc_now())
        granted = within_role(request.scopes, user.principal.role)
        if not granted.scopes:
            raise request.error("access_denied",
                                "your role may be granted none of the scopes this app asks")
        context = await self._launch_context(request, granted, user, patient, at)
        fhir_user = fhir_user_url(fhir_base, user.principal)
        if granted.has("fhirUser") and fhir_user is not None:
            context["fhirUser"] = fhir_user
        if granted.has("openid"):
            context["iss"] = fhir_base
        code = secrets.token_urlsafe(CODE_BYTES)
        await self._store.save_code(AuthorizationCode(
            code_hash=token_hash(code), client_id=request.client.client_id,
            redirect_uri=request.redirect_uri, scope=granted.render(),
            code_challenge=request.code_challenge, subject=user.account_id,
            grant_id=secrets.token_urlsafe(GRANT_ID_BYTES), auth_time=at, issued_at=at,
            expires_at=at + timedelta(seconds=self._lifetimes.code), context=context,
            nonce=request.nonce))
        return code

    async def exchange_code(self, parameters: Mapping[str, str], *, authorization: str | None,
                            token_url: str, fhir_base: str, now: datetime | None = None
                            ) -> AppTokenResponse:
        """The ``authorization_code`` grant: the client authenticated, the code single-use,
        issued to it for this ``redirect_uri``, and the PKCE verifier right."""
        presented = required(parameters, "code")
        client = await self._tokens.authenticate_app(parameters, authorization=authorization,
                                                     token_url=token_url)
        at = utc_millis(now or utc_now())
        record = await self._store.consume_code(presented, now=at)
        if record is None:
            raise OAuthError("invalid_grant", "the authorization code is unknown or expired")
        if record.consumed_at is not None:
            await self._store.revoke_grant(record.grant_id, now=at)
            raise OAuthError("invalid_grant", "the authorization code was already used: the "
                                              "tokens issued from it are revoked")
        if record.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the authorization code was issued to another "
                                              "client")
        if parameters.get("redirect_uri") != record.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri must be the one of the "
                                              "authorization request")
        verify_code_verifier(parameters.get("code_verifier"), record.code_challenge)
        if await self._users.principal_of(record.subject) is None:
            raise OAuthError("invalid_grant", "this account may no longer be used")
        response = await self._issue(client, scope=record.scope, subject=record.subject,
                                     context=record.context, grant_id=record.grant_id, at=at)
        if not parse_scopes(record.scope).has("openid"):
            return response
        id_token = self._signer.id_token(
            issuer=fhir_base, subject=record.subject, audience=client.client_id,
            auth_time=record.auth_time, lifetime=self._lifetimes.access, nonce=record.nonce,
            fhir_user=record.context.get("fhirUser"), now=at.timestamp())
        return replace(response, id_token=id_token)

    async def refresh(self, parameters: Mapping[str, str], *, authorization: str | None,
                      token_url: str, now: datetime | None = None) -> AppTokenResponse:
        """The ``refresh_token`` grant: a new access token and a new refresh token (the one
        presented is spent), for the original scopes or fewer, while the account may act."""
        presented = required(parameters, "refresh_token")
        client = await self._tokens.authenticate_app(parameters, authorization=authorization,
                                                     token_url=token_url)
        at = utc_millis(now or utc_now())
        current = await self._store.find_token(presented, now=at)
        if (current is not None and current.kind == "refresh"
                and current.client_id == client.client_id):
            refreshed_scope(current.scope, parameters.get("scope"))  # refused before spending
        spent = await self._store.use_refresh_token(presented, client_id=client.client_id,
                                                    now=at)
        if spent is None:
            raise OAuthError("invalid_grant", "the refresh token is unknown or expired")
        if spent.revoked_at is not None:
            await self._revoke_family(spent, at)
            raise OAuthError("invalid_grant", "the refresh token was already used or revoked: "
                                              "every token of this authorization is revoked")
        principal = (None if spent.subject is None
                     else await self._users.principal_of(spent.subject))
        if principal is None:
            await self._revoke_family(spent, at)
            raise OAuthError("invalid_grant", "this account may no longer be used")
        granted = within_role(refreshed_scope(spent.scope, parameters.get("scope")),
                              principal.role)
        if not granted.scopes:
            await self._revoke_family(spent, at)
            raise OAuthError("invalid_grant", "this account's role may no longer be granted "
                                              "these scopes")
        return await self._issue(client, scope=granted.render(), subject=spent.subject,
                                 context=spent.context, grant_id=spent.grant_id, at=at)

    async def sign_out(self, token: str, *, now: datetime | None = None) -> bool:
        """Revoke the session of ``token`` (an access or refresh token): its whole grant family,
        or the token alone when it has none. False when the token is not usable."""
        record = await self._store.find_token(token, now=now)
        if record is None:
            return False
        if record.grant_id is None:
            return await self._store.revoke_token(token, now=now)
        await self._store.revoke_grant(record.grant_id, now=now)
        return True

    async def _app_client(self, client_id: str | None, repeated: bool) -> Client:
        if not client_id or repeated:
            raise ShownError("Le paramètre client_id est absent ou répété.",
                             "The client_id parameter is missing or repeated.")
        client = await self._store.get_client(client_id)
        if client is None or not client.active or client.kind == "backend":
            raise ShownError("Cette application n'est pas enregistrée auprès de Pictaderm.",
                             "This application is not registered with Pictaderm.")
        return client

    async def _launch_patient(self, launch: str | None, scopes: ScopeSet, fail: _Fail,
                              now: datetime | None) -> str | None:
        """The patient of an EHR launch (None for a standalone launch)."""
        if launch is None:
            return None
        if not scopes.has("launch"):
            raise fail("invalid_scope", "an EHR launch needs the 'launch' scope")
        record = await self._store.find_launch(launch, now=now)
        if record is None:
            raise fail("invalid_request", "the launch is unknown, expired or already used")
        return record.patient

    async def _launch_context(self, request: AuthorizeRequest, granted: ScopeSet,
                              user: SignedInUser, patient: str | None, at: datetime
                              ) -> dict[str, Any]:
        """The context the tokens will carry: the EHR launch's (consumed here), or the
        patient chosen for ``launch/patient``, once the user may access it."""
        if request.launch is not None:
            return await self._ehr_context(request, granted, user, at)
        if not granted.has("launch/patient"):
            return {}
        chosen = (patient or "").strip()
        if not chosen:
            raise PatientRefused("Indiquez le patient pour lequel ouvrir l'application.",
                                 "Enter the patient to open the application for.")
        if not valid_id(chosen) or not await self._patient_access(user.principal, chosen):
            raise PatientRefused("Ce patient est inconnu ou ne vous est pas accessible.",
                                 "This patient is unknown or not accessible to you.")
        return {"patient": chosen}

    async def _ehr_context(self, request: AuthorizeRequest, granted: ScopeSet,
                           user: SignedInUser, at: datetime) -> dict[str, Any]:
        launch = request.launch or ""
        record = await self._store.find_launch(launch, now=at)
        if record is None:
            raise request.error("invalid_request", "the launch is unknown, expired or "
                                                   "already used")
        if record.subject != user.account_id:
            raise request.error("access_denied", "this launch was made by another user")
        if not granted.has("launch"):
            raise request.error("access_denied", "your role may not receive a launch context")
        if not await self._patient_access(user.principal, record.patient):
            raise request.error("access_denied", "the launch's patient is not accessible to "
                                                 "this user")
        if await self._store.consume_launch(launch, now=at) is None:
            raise request.error("invalid_request", "the launch was used meanwhile")
        context: dict[str, Any] = {"patient": record.patient}
        if record.encounter is not None:
            context["encounter"] = record.encounter
        if record.fhir_context:
            context["fhirContext"] = [{"reference": reference}
                                      for reference in record.fhir_context]
        return context

    async def _issue(self, client: Client, *, scope: str, subject: str | None,
                     context: Mapping[str, Any], grant_id: str | None, at: datetime
                     ) -> AppTokenResponse:
        """A new access token, and a refresh token when ``offline_access`` or
        ``online_access`` was granted, both of the grant family ``grant_id``."""
        scopes = parse_scopes(scope)
        access = secrets.token_urlsafe(TOKEN_BYTES)
        await self._store.save_token(IssuedToken(
            token_hash=token_hash(access), kind="access", client_id=client.client_id,
            scope=scope, issued_at=at, expires_at=at + timedelta(seconds=self._lifetimes.access),
            subject=subject, context=dict(context), grant_id=grant_id))
        refresh = None
        if scopes.has("offline_access") or scopes.has("online_access"):
            refresh = secrets.token_urlsafe(TOKEN_BYTES)
            await self._store.save_token(IssuedToken(
                token_hash=token_hash(refresh), kind="refresh", client_id=client.client_id,
                scope=scope, issued_at=at,
                expires_at=at + timedelta(seconds=self._lifetimes.refresh), subject=subject,
                context=dict(context), grant_id=grant_id))
        return AppTokenResponse(
            access_token=access, expires_in=self._lifetimes.access, scope=scope,
            refresh_token=refresh, patient=context.get("patient"),
            encounter=context.get("encounter"),
            fhir_context=tuple(item["reference"] for item in context.get("fhirContext", ())))

    async def _revoke_family(self, token: IssuedToken, at: datetime) -> None:
        if token.grant_id is not None:
            await self._store.revoke_grant(token.grant_id, now=at)


class _Fail:
    """Builds the ``RedirectedError`` of one authorization request."""

    def __init__(self, redirect_uri: str, state: str | None) -> None:
        self._redirect_uri = redirect_uri
        self._state = state

    def __call__(self, error: str, description: str) -> RedirectedError:
        return RedirectedError(self._redirect_uri, error, description, state=self._state)


async def revoke_presented(store: AuthStore, token: str, *, client_id: str | None,
                           now: datetime | None = None) -> bool:
    """RFC 7009 revocation of ``token`` for a caller: a client (only its own tokens) or the
    operator (``client_id=None``). A refresh token takes its whole grant family with it (the
    access tokens of the same authorization, RFC 7009 section 2.1); an access token goes
    alone. False when nothing usable was revoked (an unknown token, another client's)."""
    record = await store.find_token(token, now=now)
    if record is None or (client_id is not None and record.client_id != client_id):
        return False
    if record.kind == "refresh" and record.grant_id is not None:
        return await store.revoke_grant(record.grant_id, now=now) > 0
    return await store.revoke_token(token, now=now)


@cache
def role_scopes(role: Role) -> ScopeSet:
    """The scopes a user of ``role`` may be granted at most (``ROLE_SCOPES``, parsed)."""
    return parse_scopes(ROLE_SCOPES[role])


def within_role(scopes: ScopeSet, role: Role) -> ScopeSet:
    """The scopes of ``scopes`` that the role's ceiling covers, in the order asked."""
    ceiling = role_scopes(role)
    return ScopeSet(tuple(scope for scope in scopes.scopes if ceiling.covers(scope)),
                    scopes.unknown)


def refreshed_scope(original: str, requested: str | None) -> ScopeSet:
    """The scopes of a refresh: the original ones, or the requested ones when each is covered
    by the original grant (RFC 6749 section 6); ``invalid_scope`` otherwise."""
    granted = parse_scopes(original)
    if requested is None or not requested.strip():
        return granted
    try:
        asked = parse_scopes(requested)
    except InvalidScope as error:
        raise OAuthError("invalid_scope", str(error)) from error
    beyond = [scope.text for scope in asked.scopes if not granted.covers(scope)]
    beyond += [scope.text for scope in asked.unknown]
    if beyond:
        raise OAuthError("invalid_scope", "a refresh may not ask for scopes beyond the original "
                                          "grant: " + " ".join(beyond))
    return ScopeSet(asked.scopes)


def with_query(uri: str, parameters: Mapping[str, str]) -> str:
    """``uri`` with ``parameters`` added to its query (its own query kept as written)."""
    parts = urlsplit(uri)
    added = urlencode(list(parameters.items()))
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


def _collect(items: Iterable[tuple[str, str]]) -> tuple[dict[str, str], frozenset[str]]:
    """The authorization parameters (first value of each) and the names given more than once."""
    parameters: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in items:
        if name not in AUTHORIZE_PARAMETERS:
            continue
        if name in parameters:
            repeated.add(name)
        else:
            parameters[name] = value
    return parameters, frozenset(repeated)


def _checked_request(parameters: Mapping[str, str], repeated: frozenset[str], *,
                     fhir_base: str, fail: _Fail) -> str:
    """The PKCE challenge of a request whose parameters are each given once, not too long,
    with ``response_type=code`` and our FHIR base as ``aud``."""
    if repeated:
        raise fail("invalid_request", "parameters given more than once: "
                                      + ", ".join(sorted(repeated)))
    too_long = sorted(name for name, value in parameters.items()
                      if len(value) > MAX_PARAMETER_LENGTH)
    if too_long:
        raise fail("invalid_request", f"parameters longer than {MAX_PARAMETER_LENGTH} "
                                      "characters: " + ", ".join(too_long))
    response_type = parameters.get("response_type")
    if response_type != "code":
        raise fail("unsupported_response_type" if response_type else "invalid_request",
                   "response_type must be 'code'")
    if not _names_base(parameters.get("aud"), fhir_base):
        raise fail("invalid_request", f"aud must be this server's FHIR base URL {fhir_base}")
    try:
        return check_challenge(parameters.get("code_challenge"),
                               parameters.get("code_challenge_method"))
    except InvalidChallenge as error:
        raise fail("invalid_request", str(error)) from error


def _registered_redirect(client: Client, redirect_uri: str | None, repeated: bool) -> str:
    """The request's redirect URI when it is exactly one the client registered."""
    if not redirect_uri or repeated or redirect_uri not in client.redirect_uris:
        raise ShownError("L'adresse de retour (redirect_uri) n'est pas enregistrée pour "
                         "cette application.",
                         "The redirect_uri is not registered for this application.")
    return redirect_uri


def _names_base(aud: str | None, fhir_base: str) -> bool:
    """Whether ``aud`` is the FHIR base URL (a trailing slash tolerated)."""
    return aud is not None and aud.rstrip("/") == fhir_base.rstrip("/")


def _within_client(client: Client, requested: str, fail: _Fail) -> ScopeSet:
    """The requested scopes the client's registration covers, without ``system/`` scopes
    (an app acts for a user, never as a system)."""
    if not requested.strip():
        raise fail("invalid_scope", "scope is required")
    try:
        narrowed = client.scopes().narrowed(requested)
    except InvalidScope as error:
        raise fail("invalid_scope", str(error)) from error
    kept = tuple(scope for scope in narrowed.scopes
                 if not (isinstance(scope, ResourceScope) and scope.context == "system"))
    if not kept:
        raise fail("invalid_scope", "none of the requested scopes may be granted to this app")
    return ScopeSet(kept, narrowed.unknown)


def _with_state(parameters: Mapping[str, str], state: str | None) -> dict[str, str]:
    return {**parameters, **({"state": state} if state is not None else {})}


def fhir_user_url(fhir_base: str, principal: Principal) -> str | None:
    """The absolute URL of the principal's ``fhirUser`` (None when it has none)."""
    fhir_user = principal.fhir_user
    return None if fhir_user is None else f"{fhir_base}/{fhir_user}"
