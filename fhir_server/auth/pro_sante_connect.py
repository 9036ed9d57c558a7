"""Signing in through Pro Santé Connect (PSC): our OpenID Connect client of PSC, from the
redirect to the browser up to the Pictaderm account the professional acts as.

Spec: OpenID Connect Core 1.0 (authorization code flow, sections 3.1 and 5.3), OpenID Connect
Discovery 1.0, RFC 7636 (PKCE, S256 only). PSC facts: ``docs/interop-fr.md`` of the shared docs
(scope ``openid scope_all``, ``acr_values=eidas1``, ``preferred_username`` = idNatPs = ``8`` +
RPPS). Notes and choices: ``docs/implementation/pro-sante-connect.md``.

The flow, as the HTTP layer drives it:

1. ``ProSanteConnect.begin(redirect_uri=…, return_to=…)`` gives the URL to send the browser to
   and a ``PendingSignIn`` (state, nonce, PKCE verifier) that the caller keeps until the
   callback, e.g. in the cookie that ``psc_pending.seal_pending`` makes and
   ``open_pending`` reads back.
2. PSC redirects to our callback with ``code`` and ``state``;
   ``ProSanteConnect.sign_in(pending, callback_query, find_by_rpps=…)`` checks the state,
   exchanges the code (client_secret_basic + PKCE verifier), verifies the ID token (RS256 with
   PSC's JWKS; ``iss``, ``aud``/``azp``, ``exp``, ``iat``, ``nonce``, ``acr``), reads userinfo
   with the access token, and maps the idNatPs to a verified doctor's or medical director's
   account by RPPS.

Every refusal is a ``PscSignInRefused`` (a ``SignInRefused``): a stable code, a message in French
and in English for the person, and a ``reason`` for the logs that never carries a token or a key.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

import httpx
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import RSAKey

from fhir_server.access.principal import Role
from fhir_server.auth.jwks import JwksSource, JwksUnavailable, is_loopback_host
from fhir_server.auth.pkce import s256_challenge
from fhir_server.auth.users import SignedInUser, SignInRefused
from fhir_server.crypto.base64url import b64url_decode
from fhir_server.digits import is_number
from fhir_server.settings import Settings

PSC_SCOPE: Final = "openid scope_all"
PSC_ACR_VALUES: Final = "eidas1"
ID_TOKEN_ALGORITHM: Final = "RS256"
RPPS_PREFIX: Final = "8"
"""An idNatPs built from an RPPS number is ``8`` followed by the 11 RPPS digits."""
RPPS_LENGTH: Final = 11
SIGN_IN_ROLES: Final[frozenset[Role]] = frozenset({"doctor", "medical-director"})
PENDING_SECONDS: Final = 600
"""How long a started sign-in may wait for its callback (the person is at PSC meanwhile)."""
CLOCK_LEEWAY: Final = 60.0
"""Tolerated clock difference with PSC, in seconds, for ``exp`` and ``iat``."""
MAX_RESPONSE_BYTES: Final = 256 * 1024

FindByRpps = Callable[[str], Awaitable[SignedInUser | None]]
"""``UserDirectory.by_rpps``: the account of a verified doctor or medical director by RPPS."""


class PscSignInRefused(SignInRefused):
    """A sign-in through PSC that does not go through. ``reason``: what went wrong, in English,
    for the logs (never a token, a secret or a key)."""

    def __init__(self, code: str, message_fr: str, message_en: str, *, reason: str) -> None:
        super().__init__(code, message_fr, message_en)
        self.reason = reason


def _unavailable(reason: str) -> PscSignInRefused:
    return PscSignInRefused(
        "psc-unavailable",
        "Pro Santé Connect n'a pas pu être joint. Réessayez dans quelques minutes ou "
        "connectez-vous avec votre e-mail et votre mot de passe.",
        "Pro Santé Connect could not be reached. Try again in a few minutes or sign in with "
        "your email and password.", reason=reason)


def session_expired(reason: str) -> PscSignInRefused:
    return PscSignInRefused(
        "psc-session-expired",
        "Cette connexion Pro Santé Connect a expiré ou ne vient pas de ce navigateur. "
        "Recommencez depuis la page de connexion.",
        "This Pro Santé Connect sign-in has expired or did not start in this browser. "
        "Start again from the sign-in page.", reason=reason)


def _invalid_answer(reason: str) -> PscSignInRefused:
    return PscSignInRefused(
        "psc-invalid-response",
        "La réponse de Pro Santé Connect n'a pas pu être vérifiée : la connexion est refusée.",
        "The answer from Pro Santé Connect could not be verified: sign-in refused.",
        reason=reason)


# --- configuration and data crossing the boundary -------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class PscClientConfig:
    """Our registration at PSC. ``discovery_url`` defaults to
    ``<issuer>/.well-known/openid-configuration``."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str = PSC_SCOPE
    acr_values: str | None = PSC_ACR_VALUES
    discovery_url: str | None = None
    metadata_ttl: float = 3600.0
    timeout: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PscClientConfig | None:
        """The configuration from ``psc_*`` settings; None when PSC sign-in is not configured
        (no issuer). ``ValueError`` when an issuer is set without client id or secret."""
        if not settings.psc_issuer:
            return None
        if not settings.psc_client_id or settings.psc_client_secret is None:
            raise ValueError("psc_issuer is set: psc_client_id and psc_client_secret are "
                             "required too")
        return cls(issuer=settings.psc_issuer, client_id=settings.psc_client_id,
                   client_secret=settings.psc_client_secret.get_secret_value(),
                   discovery_url=settings.psc_discovery_url or None)

    def resolved_discovery_url(self) -> str:
        return self.discovery_url or self.issuer.rstrip("/") + "/.well-known/openid-configuration"


@dataclass(frozen=True, kw_only=True)
class ProviderMetadata:
    """What discovery tells us about PSC and that we use."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, kw_only=True)
class PendingSignIn:
    """A sign-in between the redirect to PSC and the callback; kept by the caller (see
    ``seal_pending``). ``redirect_uri``: our callback URL, sent again at the code exchange;
    ``return_to``: a local path to go to once signed in; ``expires_at``: epoch seconds."""

    state: str
    nonce: str
    code_verifier: str = field(repr=False)
    redirect_uri: str
    return_to: str
    expires_at: float


@dataclass(frozen=True, kw_only=True)
class SignInStart:
    """Where to send the browser, and what to keep until it comes back."""

    authorization_url: str
    pending: PendingSignIn


@dataclass(frozen=True, kw_only=True)
class PscIdentity:
    """The professional PSC vouched for. ``subject``: PSC's ``sub``; ``id_nat_ps``: the
    ``preferred_username``; ``professions``: ``codeProfession`` of each exercise (10 médecin,
    21 pharmacien); ``specialties``: their ``codeSavoirFaire`` (SM26, SM15…)."""

    subject: str
    id_nat_ps: str
    rpps: str
    given_name: str | None
    family_name: str | None
    organization: str | None
    professions: tuple[str, ...]
    specialties: tuple[str, ...]
    acr: str | None


# --- the client -----------------------------------------------------------------------------------

class ProSanteConnect:
    """Our OIDC client of PSC. Keep one instance for the server's life: discovery and PSC's
    keys are cached in it."""

    def __init__(self, config: PscClientConfig, *, http: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._metadata_expires_at = float("-inf")
        self._keys: JwksSource | None = None
        self._lock = asyncio.Lock()
        self.discovery_count = 0

    async def metadata(self) -> ProviderMetadata:
        """PSC's endpoints, read from discovery and kept for ``metadata_ttl`` seconds."""
        async with self._lock:
            if self._metadata is None or self._clock() >= self._metadata_expires_at:
                self._metadata = await self._discover()
                self._metadata_expires_at = self._clock() + self.config.metadata_ttl
            return self._metadata

    async def aclose(self) -> None:
        """Close the HTTP client this instance was given: its owner calls it once, when the
        server stops (nothing to close without one)."""
        if self._http is not None:
            await self._http.aclose()

    async def begin(self, *, redirect_uri: str, return_to: str = "/") -> SignInStart:
        """A new sign-in: the PSC authorization URL to redirect the browser to and the pending
        sign-in to keep. ``return_to`` is reduced to a local path (``safe_return_path``)."""
        metadata = await self.metadata()
        pending = PendingSignIn(
            state=_random_token(), nonce=_random_token(), code_verifier=_random_token(48),
            redirect_uri=redirect_uri, return_to=safe_return_path(return_to),
            expires_at=self._clock() + PENDING_SECONDS)
        parameters = {
            "response_type": "code", "client_id": self.config.client_id,
            "redirect_uri": redirect_uri, "scope": self.config.scope, "state": pending.state,
            "nonce": pending.nonce, "code_challenge": s256_challenge(pending.code_verifier),
            "code_challenge_method": "S256",
        }
        if self.config.acr_values:
            parameters["acr_values"] = self.config.acr_values
        endpoint = metadata.authorization_endpoint
        separator = "&" if urlsplit(endpoint).query else "?"
        return SignInStart(authorization_url=endpoint + separator + urlencode(parameters),
                           pending=pending)

    async def sign_in(self, pending: PendingSignIn, callback: Mapping[str, str], *,
                      find_by_rpps: FindByRpps) -> SignedInUser:
        """The account behind a PSC callback (its query parameters); ``PscSignInRefused``
        when anything does not check out or the professional has no usable account."""
        identity = await self.identify(pending, callback)
        return await user_for(identity, find_by_rpps)

    async def identify(self, pending: PendingSignIn,
                       callback: Mapping[str, str]) -> PscIdentity:
        """The professional PSC authenticated, from the callback's query parameters, after
        every protocol check (state, code exchange, ID token, userinfo)."""
        _check_callback(pending, callback, now=self._clock())
        metadata = await self.metadata()
        tokens = await self._exchange(metadata, pending, callback["code"])
        keys = self._key_source(metadata)
        id_claims = await _verify_jwt(tokens.id_token, keys, what="ID token")
        _check_id_claims(id_claims, issuer=metadata.issuer, client_id=self.config.client_id,
                         nonce=pending.nonce, acr_values=self.config.acr_values,
                         now=self._clock())
        userinfo = await self._userinfo(metadata, keys, tokens.access_token)
        if userinfo.get("sub") != id_claims["sub"]:
            raise _invalid_answer("the userinfo sub differs from the ID token sub")
        return identity_of(id_claims, userinfo)

    async def _discover(self) -> ProviderMetadata:
        self.discovery_count += 1
        url = self.config.resolved_discovery_url()
        answer = await self._call("GET", url, headers={"Accept": "application/json"})
        if answer.status != 200:
            raise _unavailable(f"discovery answered HTTP {answer.status}")
        return metadata_of(_json_object(answer.body, "discovery"), issuer=self.config.issuer)

    def _key_source(self, metadata: ProviderMetadata) -> JwksSource:
        if self._keys is None or self._keys.url != metadata.jwks_uri:
            self._keys = JwksSource.remote(metadata.jwks_uri, http=self._http)
        return self._keys

    async def _exchange(self, metadata: ProviderMetadata, pending: PendingSignIn,
                        code: str) -> _Tokens:
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": pending.redirect_uri, "code_verifier": pending.code_verifier}
        headers = {"Authorization": basic_authorization(self.config.client_id,
                                                        self.config.client_secret),
                   "Content-Type": "application/x-www-form-urlencoded",
                   "Accept": "application/json"}
        answer = await self._call("POST", metadata.token_endpoint, headers=headers,
                                  content=urlencode(form).encode())
        if answer.status != 200:
            raise _invalid_answer(f"the token endpoint answered HTTP {answer.status}"
                                  f"{_oauth_error_of(answer.body)}")
        return _tokens_of(_json_object(answer.body, "token response"))

    async def _userinfo(self, metadata: ProviderMetadata, keys: JwksSource,
                        access_token: str) -> Mapping[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}",
                   "Accept": "application/json, application/jwt"}
        answer = await self._call("GET", metadata.userinfo_endpoint, headers=headers)
        if answer.status != 200:
            raise _invalid_answer(f"userinfo answered HTTP {answer.status}")
        if answer.media_type != "application/jwt":
            return _json_object(answer.body, "userinfo")
        claims = await _verify_jwt(answer.body.decode("ascii", "replace").strip(), keys,
                                   what="signed userinfo")
        if claims.get("iss") != metadata.issuer:
            raise _invalid_answer("the signed userinfo iss is not PSC's issuer")
        if not _audience_names(claims.get("aud"), self.config.client_id):
            raise _invalid_answer("the signed userinfo aud does not name our client")
        return claims

    async def _call(self, method: str, url: str, *, headers: Mapping[str, str],
                    content: bytes | None = None) -> _Answer:
        try:
            if self._http is not None:
                return await self._stream(self._http, method, url, headers, content)
            async with httpx.AsyncClient(timeout=self.config.timeout,
                                         follow_redirects=False) as http:
                return await self._stream(http, method, url, headers, content)
        except httpx.TimeoutException as error:
            raise _unavailable(f"{method} {_endpoint_name(url)} timed out") from error
        except httpx.HTTPError as error:
            raise _unavailable(f"{method} {_endpoint_name(url)} failed: "
                               f"{type(error).__name__}") from error

    async def _stream(self, http: httpx.AsyncClient, method: str, url: str,
                      headers: Mapping[str, str], content: bytes | None) -> _Answer:
        async with http.stream(method, url, headers=dict(headers), content=content,
                               timeout=self.config.timeout,
                               follow_redirects=False) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > MAX_RESPONSE_BYTES:
                    raise _unavailable(f"{_endpoint_name(url)} answered more than "
                                       f"{MAX_RESPONSE_BYTES} bytes")
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            return _Answer(status=response.status_code, media_type=media_type,
                           body=bytes(body))


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    media_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class _Tokens:
    access_token: str = field(repr=False)
    id_token: str = field(repr=False)


# --- the account behind an identity ---------------------------------------------------------------

async def user_for(identity: PscIdentity, find_by_rpps: FindByRpps) -> SignedInUser:
    """The account a PSC-authenticated professional signs in to: a verified doctor's or medical
    director's, found by RPPS. ``PscSignInRefused`` for anyone else."""
    user = await find_by_rpps(identity.rpps)
    if user is None:
        raise PscSignInRefused(
            "psc-unknown-practitioner",
            f"Aucun compte médecin vérifié ne correspond au RPPS {identity.rpps}. Inscrivez-vous "
            "sur Pictaderm avec ce numéro RPPS, puis attendez la vérification de votre compte.",
            f"No verified doctor's account matches RPPS {identity.rpps}. Register on Pictaderm "
            "with this RPPS number, then wait for your account to be verified.",
            reason="no verified doctor or medical director account has this RPPS")
    role = user.principal.role
    if role not in SIGN_IN_ROLES:
        raise PscSignInRefused(
            "psc-role-not-allowed",
            "La connexion par Pro Santé Connect est réservée aux médecins. Connectez-vous avec "
            "votre e-mail et votre mot de passe.",
            "Pro Santé Connect sign-in is for doctors only. Sign in with your email and "
            "password.", reason=f"the account with this RPPS acts as {role}")
    if role == "doctor" and user.principal.tier is None:
        raise PscSignInRefused(
            "psc-unverified",
            "Votre compte médecin n'a pas encore été vérifié par le directeur médical.",
            "Your doctor's account has not been verified by the medical director yet.",
            reason="the doctor's account has no tier: not verified")
    return user


def identity_of(id_claims: Mapping[str, Any], userinfo: Mapping[str, Any]) -> PscIdentity:
    """The professional named by verified ID token claims and userinfo (userinfo first)."""
    merged = {**id_claims, **userinfo}
    id_nat_ps = _text(merged.get("preferred_username")) or _text(merged.get("SubjectNameID"))
    if id_nat_ps is None:
        raise _invalid_answer("neither preferred_username nor SubjectNameID was given")
    exercises = _exercises(merged.get("SubjectRefPro"))
    return PscIdentity(
        subject=str(id_claims["sub"]), id_nat_ps=id_nat_ps, rpps=rpps_of(id_nat_ps),
        given_name=_text(merged.get("given_name")), family_name=_text(merged.get("family_name")),
        organization=_text(merged.get("SubjectOrganization")),
        professions=_codes(exercises, "codeProfession"),
        specialties=_codes(exercises, "codeSavoirFaire"), acr=_text(id_claims.get("acr")))


def rpps_of(id_nat_ps: str) -> str:
    """The RPPS number inside an idNatPs (``8`` + 11 digits); ``PscSignInRefused`` for other
    identifiers (ADELI-based ``0…`` ids, test accounts), which we cannot match."""
    rpps = id_nat_ps[len(RPPS_PREFIX):]
    if (id_nat_ps.startswith(RPPS_PREFIX) and len(rpps) == RPPS_LENGTH and is_number(rpps)):
        return rpps
    raise PscSignInRefused(
        "psc-no-rpps",
        "Votre identifiant Pro Santé Connect ne contient pas de numéro RPPS : la connexion par "
        "Pro Santé Connect n'est possible qu'avec un RPPS.",
        "Your Pro Santé Connect identifier holds no RPPS number: Pro Santé Connect sign-in "
        "needs an RPPS.", reason="the idNatPs is not 8 followed by an 11-digit RPPS")


def _exercises(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, Mapping) or not isinstance(value.get("exercices"), list):
        return []
    return [entry for entry in value["exercices"] if isinstance(entry, Mapping)]


def _codes(exercises: list[Mapping[str, Any]], name: str) -> tuple[str, ...]:
    codes = (_text(exercise.get(name)) for exercise in exercises)
    return tuple(dict.fromkeys(code for code in codes if code))


def _text(value: object) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


# --- protocol checks ------------------------------------------------------------------------------

def metadata_of(document: Mapping[str, Any], *, issuer: str) -> ProviderMetadata:
    """PSC's endpoints from a discovery document that names ``issuer``; endpoints must be
    ``https`` (``http`` on loopback only, for tests)."""
    if document.get("issuer") != issuer:
        raise _unavailable("the discovery issuer is not the configured PSC issuer")
    endpoints = {name: document.get(name) for name in
                 ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")}
    for name, url in endpoints.items():
        if not isinstance(url, str) or not _fetchable(url):
            raise _unavailable(f"discovery gives no usable {name}")
    return ProviderMetadata(issuer=issuer, **{name: str(url) for name, url in endpoints.items()})


def _fetchable(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = parts.hostname or ""
    return bool(host) and (parts.scheme == "https" or (parts.scheme == "http"
                                                       and is_loopback_host(host)))


def _check_callback(pending: PendingSignIn, callback: Mapping[str, str], *, now: float) -> None:
    """The callback belongs to this pending sign-in, is still on time and carries a code."""
    if now > pending.expires_at:
        raise session_expired("the pending sign-in expired before the callback")
    state = callback.get("state", "")
    if not hmac.compare_digest(state.encode(), pending.state.encode()):
        raise session_expired("the callback state is not the pending sign-in's")
    error = callback.get("error")
    if error == "access_denied":
        raise PscSignInRefused(
            "psc-cancelled", "La connexion par Pro Santé Connect a été annulée.",
            "Pro Santé Connect sign-in was cancelled.", reason="PSC answered access_denied")
    if error is not None:
        raise PscSignInRefused(
            "psc-error", "Pro Santé Connect a refusé la connexion.",
            "Pro Santé Connect refused the sign-in.", reason=f"PSC answered error {error[:64]!r}")
    if not callback.get("code"):
        raise _invalid_answer("the callback carries no code")


def _check_id_claims(claims: Mapping[str, Any], *, issuer: str, client_id: str, nonce: str,
                     acr_values: str | None, now: float) -> None:
    """OIDC Core 3.1.3.7: issuer, audience, authorized party, times, nonce, and the ``acr``
    asked for."""
    if claims.get("iss") != issuer:
        raise _invalid_answer("the ID token iss is not PSC's issuer")
    audience = claims.get("aud")
    if not _audience_names(audience, client_id):
        raise _invalid_answer("the ID token aud does not name our client")
    several = isinstance(audience, list) and len(audience) > 1
    if (several or "azp" in claims) and claims.get("azp") != client_id:
        raise _invalid_answer("the ID token azp is not our client")
    expires_at = _number(claims.get("exp"))
    if expires_at is None or expires_at < now - CLOCK_LEEWAY:
        raise _invalid_answer("the ID token has expired or has no exp")
    issued_at = _number(claims.get("iat"))
    if issued_at is None or issued_at > now + CLOCK_LEEWAY:
        raise _invalid_answer("the ID token iat is missing or in the future")
    received = claims.get("nonce")
    if not isinstance(received, str) or not hmac.compare_digest(received.encode(),
                                                                nonce.encode()):
        raise _invalid_answer("the ID token nonce is not the one we sent")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise _invalid_answer("the ID token has no sub")
    if acr_values and claims.get("acr") not in acr_values.split():
        raise _invalid_answer("the ID token acr is not the level we asked for")


def _audience_names(audience: object, client_id: str) -> bool:
    if isinstance(audience, str):
        return audience == client_id
    return isinstance(audience, list) and client_id in audience


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


async def _verify_jwt(token: str, keys: JwksSource, *, what: str) -> Mapping[str, Any]:
    """The claims of a JWT signed by PSC with RS256 and a key of its JWKS."""
    kid = _kid_of(token, what)
    try:
        key = await keys.key_for(kid)
    except JwksUnavailable as error:
        raise _unavailable(f"PSC's JWKS could not be had: {error.reason}") from error
    if not isinstance(key, RSAKey) or key.get("alg") not in (None, ID_TOKEN_ALGORITHM):
        raise _invalid_answer(f"the {what} kid names no RSA key of PSC's JWKS")
    try:
        payload = jws.deserialize_compact(token, key, algorithms=[ID_TOKEN_ALGORITHM]).payload
        claims = json.loads(payload)
    except BadSignatureError as error:
        raise _invalid_answer(f"the {what} signature does not verify") from error
    except (JoseError, ValueError, UnicodeDecodeError, RecursionError) as error:
        raise _invalid_answer(f"the {what} is not a valid JWS") from error
    if not isinstance(claims, dict):
        raise _invalid_answer(f"the {what} payload is not a JSON object")
    return claims


def _kid_of(token: str, what: str) -> str:
    """The ``kid`` of a compact JWS whose header says RS256, before any key is used."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _invalid_answer(f"the {what} is not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
    except (ValueError, UnicodeError, RecursionError) as error:
        raise _invalid_answer(f"the {what} header is not base64url JSON") from error
    if not isinstance(header, dict) or header.get("alg") != ID_TOKEN_ALGORITHM:
        raise _invalid_answer(f"the {what} is not signed with {ID_TOKEN_ALGORITHM}")
    if "crit" in header or not isinstance(header.get("kid"), str) or not header["kid"]:
        raise _invalid_answer(f"the {what} header has crit or no kid")
    return str(header["kid"])


def _tokens_of(document: Mapping[str, Any]) -> _Tokens:
    access_token, id_token = document.get("access_token"), document.get("id_token")
    if str(document.get("token_type", "")).lower() != "bearer":
        raise _invalid_answer("the token response is not a bearer token")
    if not isinstance(access_token, str) or not access_token:
        raise _invalid_answer("the token response has no access_token")
    if not isinstance(id_token, str) or not id_token:
        raise _invalid_answer("the token response has no id_token")
    return _Tokens(access_token=access_token, id_token=id_token)


def _oauth_error_of(body: bytes) -> str:
    """``: <error>`` from an OAuth error answer, for the logs; empty when there is none."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return ""
    return f": {error[:64]}" if isinstance(error, str) else ""


def _json_object(body: bytes, what: str) -> Mapping[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise _invalid_answer(f"the {what} is not JSON") from error
    if not isinstance(document, dict):
        raise _invalid_answer(f"the {what} is not a JSON object")
    return document


def _endpoint_name(url: str) -> str:
    """Scheme, host and path of a URL, for the logs: never its query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# --- client authentication, return path -----------------------------------------------------------

def basic_authorization(client_id: str, client_secret: str) -> str:
    """``client_secret_basic``: both values form-encoded, then Basic (RFC 6749 section 2.3.1)."""
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def safe_return_path(candidate: str) -> str:
    """``candidate`` when it is a path on this server (``/…``, no scheme, no host, no
    backslash or control character), else ``/``: never an open redirect."""
    if (not candidate.startswith("/") or candidate.startswith("//") or "\\" in candidate
            or any(ord(character) < 0x20 or ord(character) == 0x7F for character in candidate)):
        return "/"
    parts = urlsplit(candidate)
    return candidate if not parts.scheme and not parts.netloc else "/"


def _random_token(size: int = 32) -> str:
    return secrets.token_urlsafe(size)
