"""A Pro Santé Connect stand-in: a real OpenID Connect provider on 127.0.0.1, for tests of our
PSC client.

It runs in a thread (like ``jwks_server.py``) and speaks the protocol PSC speaks: discovery under
a Keycloak-style realm path, ``authorize`` (no UI: it redirects back at once with a code for the
configured practitioner, or with ``error=access_denied``), ``token`` (client_secret_basic, single
use codes bound to the redirect URI, PKCE S256 verifier), ``userinfo`` (bearer access token, JSON
or a signed JWT) and the JWKS. Tokens carry PSC's claim names: ``preferred_username`` and
``SubjectNameID`` = idNatPs, ``given_name``/``family_name``, ``SubjectOrganization``,
``SubjectRefPro.exercices[]`` with ``codeProfession`` and ``codeSavoirFaire``, ``acr`` eidas1.

Tests make it misbehave through ``PscBehaviour`` (wrong nonce, audience or issuer, expired or
forged ID tokens, another userinfo subject…) while it runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.support.loopback import LoopbackServer

REALM = "/auth/realms/esante-wallet"
DISCOVERY_PATH = REALM + "/.well-known/openid-configuration"
AUTHORIZE_PATH = REALM + "/protocol/openid-connect/auth"
TOKEN_PATH = REALM + "/protocol/openid-connect/token"
USERINFO_PATH = REALM + "/protocol/openid-connect/userinfo"
JWKS_PATH = REALM + "/protocol/openid-connect/certs"
CODE_SECONDS = 60


def psc_signing_key(kid: str = "psc-signing") -> RSAKey:
    """A fresh RS256 key (RSA 2048) named ``kid``."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})


@dataclass(frozen=True, kw_only=True)
class PscPractitioner:
    """The professional the stand-in authenticates: ``id_nat_ps`` is ``8`` + RPPS for an
    RPPS-registered one."""

    id_nat_ps: str
    given_name: str
    family_name: str
    organization: str = "CABINET DU DOCTEUR"
    profession: str = "10"
    specialty: str = "SM26"
    subject: str = field(default_factory=lambda: f"f:{uuid.uuid4()}")


@dataclass(frozen=True, slots=True)
class _Grant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str
    practitioner: PscPractitioner
    expires_at: float


@dataclass
class PscBehaviour:
    """What the provider answers; tests change it while it runs (guarded by ``lock``).

    ``id_token_key``: sign ID tokens with this key instead of the published one (a forgery);
    ``id_token_seconds``: their lifetime (negative: already expired); ``id_token_claims``:
    claims overriding the regular ones (``aud``, ``nonce``, ``iss``, ``acr``…);
    ``userinfo_claims``: the same for userinfo; ``signed_userinfo``: answer userinfo as an
    ``application/jwt``; ``deny``: the person cancels at PSC.
    """

    client_id: str
    client_secret: str
    redirect_uris: frozenset[str]
    practitioner: PscPractitioner
    signing_key: RSAKey
    id_token_key: RSAKey | None = None
    id_token_seconds: int = 300
    id_token_claims: dict[str, Any] = field(default_factory=dict)
    userinfo_claims: dict[str, Any] = field(default_factory=dict)
    signed_userinfo: bool = False
    deny: bool = False
    requests: Counter[str] = field(default_factory=Counter)
    codes: dict[str, _Grant] = field(default_factory=dict)
    access_tokens: dict[str, PscPractitioner] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class PscProvider(LoopbackServer):
    """The running provider: ``issuer`` to configure our client with, ``requests`` per path."""

    def __init__(self, behaviour: PscBehaviour) -> None:
        self.behaviour = behaviour
        super().__init__(_handler_for(self))

    @property
    def issuer(self) -> str:
        return self.root + REALM

    def requests(self, path: str) -> int:
        """How many requests the provider answered on ``path`` (``TOKEN_PATH``…)."""
        with self.behaviour.lock:
            return self.behaviour.requests[path]


    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.root + AUTHORIZE_PATH,
            "token_endpoint": self.root + TOKEN_PATH,
            "userinfo_endpoint": self.root + USERINFO_PATH,
            "jwks_uri": self.root + JWKS_PATH,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "userinfo_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "scope_all"],
            "acr_values_supported": ["eidas1"],
            "claims_supported": ["sub", "preferred_username", "given_name", "family_name",
                                 "SubjectNameID", "SubjectOrganization", "SubjectRefPro"],
        }

    def id_token(self, grant: _Grant) -> str:
        with self.behaviour.lock:
            key = self.behaviour.id_token_key or self.behaviour.signing_key
            lifetime = self.behaviour.id_token_seconds
            overrides = dict(self.behaviour.id_token_claims)
        now = int(time.time())
        person = grant.practitioner
        claims: dict[str, Any] = {
            "exp": now + lifetime, "iat": now + min(0, lifetime) - 5, "auth_time": now - 5,
            "jti": str(uuid.uuid4()), "iss": self.issuer, "aud": grant.client_id,
            "sub": person.subject, "typ": "ID", "azp": grant.client_id, "nonce": grant.nonce,
            "session_state": str(uuid.uuid4()), "acr": "eidas1",
            "preferred_username": person.id_nat_ps, "SubjectNameID": person.id_nat_ps,
        }
        claims.update(overrides)
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

    def userinfo(self, person: PscPractitioner, client_id: str) -> tuple[str, bytes]:
        """The content type and body of the userinfo answer for ``person``."""
        with self.behaviour.lock:
            overrides = dict(self.behaviour.userinfo_claims)
            signed, key = self.behaviour.signed_userinfo, self.behaviour.signing_key
        claims = {**userinfo_claims(person), **overrides}
        if not signed:
            return "application/json", json.dumps(claims).encode()
        claims.update({"iss": self.issuer, "aud": client_id})
        return "application/jwt", jwt.encode({"alg": "RS256", "kid": key.kid}, claims,
                                             key).encode()


def userinfo_claims(person: PscPractitioner) -> dict[str, Any]:
    """What PSC's userinfo says of a professional (its claim names, a trimmed set of them)."""
    exercise = {
        "codeProfession": person.profession, "codeCategorieProfessionnelle": "C",
        "codeCiviliteDExercice": "DR", "nomDExercice": person.family_name,
        "prenomDExercice": person.given_name, "codeTypeSavoirFaire": "S",
        "codeSavoirFaire": person.specialty,
        "activities": [{"codeModeExercice": "L", "codeSecteurDActivite": "SA07",
                        "raisonSocialeSite": person.organization, "codePostal": "75011"}],
    }
    return {
        "sub": person.subject, "preferred_username": person.id_nat_ps,
        "SubjectNameID": person.id_nat_ps, "given_name": person.given_name,
        "family_name": person.family_name, "SubjectOrganization": person.organization,
        "SubjectRole": [f"{person.profession}^1.2.250.1.213.1.1.5.5"],
        "Palier_Authentification": "APPPRIP3^1.2.250.1.213.1.5.1.1.1",
        "Acces_Regulation_Medicale": "FAUX", "UITVersion": "1.0",
        "SubjectRefPro": {"codeCivilite": "M", "exercices": [exercise]},
    }


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _client_of(authorization: str | None) -> tuple[str, str] | None:
    """The (client_id, secret) of a client_secret_basic header (values form-decoded)."""
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        pair = base64.b64decode(authorization[6:], validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, colon, secret = pair.partition(":")
    return (unquote(client_id), unquote(secret)) if colon else None


def _handler_for(provider: PscProvider) -> type[BaseHTTPRequestHandler]:
    behaviour = provider.behaviour

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            with behaviour.lock:
                behaviour.requests[path] += 1
            if path == DISCOVERY_PATH:
                self._json(200, provider.discovery())
            elif path == JWKS_PATH:
                self._json(200, {"keys": [behaviour.signing_key.as_dict(private=False)]},
                           cache_control="max-age=300")
            elif path == AUTHORIZE_PATH:
                self._authorize(dict(parse_qsl(query)))
            elif path == USERINFO_PATH:
                self._userinfo()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            path = self.path.partition("?")[0]
            with behaviour.lock:
                behaviour.requests[path] += 1
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            if path == TOKEN_PATH:
                self._token(form)
            else:
                self._json(404, {"error": "not_found"})

        def _authorize(self, query: Mapping[str, str]) -> None:
            redirect_uri = query.get("redirect_uri", "")
            if (query.get("client_id") != behaviour.client_id
                    or redirect_uri not in behaviour.redirect_uris):
                self._json(400, {"error": "invalid_request",
                                 "error_description": "unknown client or redirect_uri"})
                return
            state = query.get("state", "")
            problem = _authorization_problem(query)
            if problem is not None:
                self._redirect(redirect_uri, {"error": problem, "state": state})
                return
            with behaviour.lock:
                if behaviour.deny:
                    grant = None
                else:
                    grant = _Grant(client_id=behaviour.client_id, redirect_uri=redirect_uri,
                                   code_challenge=query["code_challenge"],
                                   nonce=query["nonce"], practitioner=behaviour.practitioner,
                                   expires_at=time.time() + CODE_SECONDS)
                    code = secrets.token_urlsafe(24)
                    behaviour.codes[code] = grant
            if grant is None:
                self._redirect(redirect_uri, {"error": "access_denied", "state": state})
            else:
                self._redirect(redirect_uri, {"code": code, "state": state})

        def _token(self, form: Mapping[str, str]) -> None:
            client = _client_of(self.headers.get("Authorization"))
            if client != (behaviour.client_id, behaviour.client_secret):
                self._json(401, {"error": "invalid_client"})
                return
            if form.get("grant_type") != "authorization_code":
                self._json(400, {"error": "unsupported_grant_type"})
                return
            with behaviour.lock:
                grant = behaviour.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            if (grant is None or grant.expires_at < time.time()
                    or grant.redirect_uri != form.get("redirect_uri")
                    or not 43 <= len(verifier) <= 128
                    or _challenge(verifier) != grant.code_challenge):
                self._json(400, {"error": "invalid_grant"})
                return
            access_token = secrets.token_urlsafe(32)
            with behaviour.lock:
                behaviour.access_tokens[access_token] = grant.practitioner
            self._json(200, {"access_token": access_token, "token_type": "Bearer",
                             "expires_in": 120, "scope": "openid scope_all",
                             "id_token": provider.id_token(grant)})

        def _userinfo(self) -> None:
            authorization = self.headers.get("Authorization", "")
            token = authorization[7:] if authorization.startswith("Bearer ") else ""
            with behaviour.lock:
                person = behaviour.access_tokens.get(token)
            if person is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            content_type, body = provider.userinfo(person, behaviour.client_id)
            self._send(200, content_type, body)

        def _redirect(self, redirect_uri: str, parameters: Mapping[str, str]) -> None:
            self.send_response(302)
            self.send_header("Location", f"{redirect_uri}?{urlencode(parameters)}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _json(self, status: int, document: Mapping[str, Any], *,
                  cache_control: str = "no-store") -> None:
            self._send(status, "application/json", json.dumps(document).encode(),
                       cache_control=cache_control)

        def _send(self, status: int, content_type: str, body: bytes, *,
                  cache_control: str = "no-store") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache_control)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read counters, not access logs."""

    return Handler


def _authorization_problem(query: Mapping[str, str]) -> str | None:
    """The OAuth error an authorization request deserves, or None when PSC would accept it."""
    scopes = query.get("scope", "").split()
    if query.get("response_type") != "code" or "openid" not in scopes:
        return "invalid_request"
    if "scope_all" not in scopes:
        return "invalid_scope"
    if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
        return "invalid_request"
    if not query.get("state") or not query.get("nonce"):
        return "invalid_request"
    return None


@contextmanager
def running_psc_provider(behaviour: PscBehaviour) -> Iterator[PscProvider]:
    """A started provider; stopped when the block ends."""
    provider = PscProvider(behaviour)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


async def authorize(authorization_url: str, *,
                    http: httpx.AsyncClient | None = None) -> dict[str, str]:
    """What a browser does at PSC: follow ``authorization_url`` and return the query
    parameters PSC sends back to the redirect URI (``code`` and ``state``, or ``error``)."""
    if http is None:
        async with httpx.AsyncClient(timeout=5.0) as own:
            response = await own.get(authorization_url, follow_redirects=False)
    else:
        response = await http.get(authorization_url, follow_redirects=False)
    if response.status_code != 302:
        raise AssertionError(f"authorize answered {response.status_code}: {response.text}")
    return dict(parse_qsl(urlsplit(response.headers["Location"]).query))
