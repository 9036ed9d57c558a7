"""A small SMART authorization and FHIR server on loopback, following the app-launch contract the
kit's ``smart`` group checks, so the group's app-launch part can be run before the real server
has it. ``faults`` make it break one rule each, to show the matching check fails.

It knows one public app, one user and one Patient; its sign-in page is an HTML form whose CSRF
token is bound to a cookie; codes, access and refresh tokens live in memory; ID tokens are RS256.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "stand-in-app"
REDIRECT_URI = "https://app.example/callback"
USER = "dr.martin@example.fr"
PASSWORD = "stand-in-password-9f2c"
PATIENT = "pat-1"
PRACTITIONER = "Practitioner/prac-1"
FAULTS = frozenset({"accept-plain", "no-rotation", "code-for-any-aud", "no-scope-check",
                    "verbose-inactive"})
Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Grant:
    client_id: str
    scope: str
    patient: str | None
    expires_at: float
    active: bool = True


@dataclass
class PendingCode:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    used: bool = False


@dataclass
class StandInState:
    """Everything the stand-in remembers; guarded by ``lock``."""

    base: str
    faults: frozenset[str]
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(
        2048, parameters={"kid": "stand-in-1"}))
    sessions: dict[str, str] = field(default_factory=dict)
    codes: dict[str, PendingCode] = field(default_factory=dict)
    access: dict[str, Grant] = field(default_factory=dict)
    refresh: dict[str, Grant] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def root(self) -> str:
        return self.base.removesuffix("/fhir")


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()) \
        .rstrip(b"=").decode()


def json_answer(body: Any, status: int = 200) -> Answer:
    return status, {"Content-Type": "application/json", "Cache-Control": "no-store",
                    "Access-Control-Allow-Origin": "*"}, json.dumps(body).encode()


def fhir_answer(body: Any, status: int = 200, headers: Mapping[str, str] | None = None
                ) -> Answer:
    return status, {"Content-Type": "application/fhir+json", **(headers or {})}, \
        json.dumps(body).encode()


def html_answer(text: str, status: int = 200, headers: Mapping[str, str] | None = None
                ) -> Answer:
    page = f"<!doctype html><html><head><title>Stand-in</title></head><body>{text}</body></html>"
    return status, {"Content-Type": "text/html; charset=utf-8", **(headers or {})}, \
        page.encode()


def redirect(url: str, parameters: Mapping[str, str]) -> Answer:
    return 302, {"Location": f"{url}?{urlencode(parameters)}"}, b""


def oauth_error(error: str, status: int = 400) -> Answer:
    return json_answer({"error": error, "error_description": f"stand-in: {error}"}, status)


def discovery(state: StandInState) -> dict[str, Any]:
    root = state.root
    return {
        "issuer": state.base, "jwks_uri": f"{root}/auth/jwks",
        "authorization_endpoint": f"{root}/auth/authorize", "token_endpoint": f"{root}/auth/token",
        "introspection_endpoint": f"{root}/auth/introspect",
        "revocation_endpoint": f"{root}/auth/revoke", "management_endpoint": f"{root}/accounts",
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid", "fhirUser", "launch/patient", "offline_access",
                             "patient/*.rs"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "capabilities": ["launch-standalone", "client-public", "sso-openid-connect",
                         "context-standalone-patient", "permission-offline",
                         "permission-patient", "permission-user", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
    }


def capability_statement(state: StandInState) -> dict[str, Any]:
    found = discovery(state)
    uris = [{"url": name, "valueUri": found[field]} for name, field in (
        ("authorize", "authorization_endpoint"), ("token", "token_endpoint"),
        ("introspect", "introspection_endpoint"), ("revoke", "revocation_endpoint"),
        ("manage", "management_endpoint"))]
    return {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "rest": [{
        "mode": "server", "security": {
            "service": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"}]}],
            "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/"
                                  "oauth-uris", "extension": uris}]}}]}


def sign_in_page(parameters: Mapping[str, str], csrf: str) -> str:
    hidden = "".join(f'<input type="hidden" name="{html.escape(name)}" '
                     f'value="{html.escape(value)}">' for name, value in parameters.items())
    return (f'<form method="post" action="/auth/authorize">{hidden}'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            '<label>E-mail <input type="email" name="email"></label>'
            '<label>Mot de passe <input type="password" name="password"></label>'
            '<label>Patient <input type="text" name="patient"></label>'
            '<button type="submit" name="action" value="sign-in">Se connecter</button></form>')


def authorize_page(state: StandInState, query: Mapping[str, str]) -> Answer:
    if query.get("client_id") != CLIENT_ID:
        return html_answer("<p>Application inconnue.</p>", 400)
    if query.get("redirect_uri") != REDIRECT_URI:
        return html_answer("<p>Adresse de retour non enregistrée.</p>", 400)
    if query.get("aud") != state.base and "code-for-any-aud" not in state.faults:
        return redirect(REDIRECT_URI, {"error": "invalid_request", "state": query.get("state", "")})
    if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
        return redirect(REDIRECT_URI, {"error": "invalid_request", "state": query.get("state", "")})
    session, csrf = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    state.sessions[session] = csrf
    return html_answer(sign_in_page(query, csrf),
                       headers={"Set-Cookie": f"sid={session}; HttpOnly"})


def sign_in(state: StandInState, form: Mapping[str, str], cookie: str) -> Answer:
    session = dict(part.strip().split("=", 1) for part in cookie.split(";") if "=" in part)
    if state.sessions.pop(session.get("sid", ""), None) != form.get("csrf"):
        return html_answer("<p>Formulaire expiré.</p>", 400)
    if (form.get("email"), form.get("password"), form.get("action")) != (USER, PASSWORD,
                                                                        "sign-in"):
        return html_answer("<p>Identifiants incorrects.</p>", 200)
    if form.get("client_id") != CLIENT_ID or form.get("redirect_uri") != REDIRECT_URI:
        return html_answer("<p>Requête invalide.</p>", 400)
    code = secrets.token_urlsafe(24)
    state.codes[code] = PendingCode(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI,
                                    challenge=form["code_challenge"], scope=form["scope"])
    return redirect(REDIRECT_URI, {"code": code, "state": form.get("state", "")})


def id_token(state: StandInState, now: float) -> str:
    claims = {"iss": state.base, "sub": "user-1", "aud": CLIENT_ID, "iat": int(now),
              "exp": int(now) + 300, "fhirUser": f"{state.base}/{PRACTITIONER}"}
    return jwt.encode({"alg": "RS256", "kid": "stand-in-1"}, claims, state.key)


def issue(state: StandInState, scope: str, *, refresh_token: str | None = None) -> Answer:
    now = time.time()
    access = secrets.token_urlsafe(24)
    state.access[access] = Grant(CLIENT_ID, scope, PATIENT, now + 300)
    refresh = refresh_token or secrets.token_urlsafe(24)
    state.refresh[refresh] = Grant(CLIENT_ID, scope, PATIENT, now + 3600)
    body = {"access_token": access, "token_type": "Bearer", "expires_in": 300, "scope": scope,
            "patient": PATIENT, "refresh_token": refresh, "id_token": id_token(state, now)}
    return json_answer(body)


def verifier_matches(state: StandInState, verifier: str, challenge: str) -> bool:
    if "accept-plain" in state.faults and verifier == challenge:
        return True
    return bool(verifier) and s256(verifier) == challenge


def token(state: StandInState, form: Mapping[str, str]) -> Answer:
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        pending = state.codes.get(form.get("code", ""))
        if pending is None or pending.used:
            return oauth_error("invalid_grant")
        if form.get("client_id") != pending.client_id:
            return oauth_error("invalid_client", 401)
        if not verifier_matches(state, form.get("code_verifier", ""), pending.challenge):
            return oauth_error("invalid_grant")
        pending.used = True
        return issue(state, pending.scope)
    if grant_type == "refresh_token":
        old = form.get("refresh_token", "")
        grant = state.refresh.get(old)
        if grant is None or not grant.active or form.get("client_id") != grant.client_id:
            return oauth_error("invalid_grant")
        rotating = "no-rotation" not in state.faults
        grant.active = not rotating
        return issue(state, grant.scope, refresh_token=None if rotating else old)
    return oauth_error("unsupported_grant_type")


def live(grants: Mapping[str, Grant], value: str) -> Grant | None:
    grant = grants.get(value)
    return grant if grant is not None and grant.active and grant.expires_at > time.time() \
        else None


def introspect(state: StandInState, form: Mapping[str, str], authorization: str) -> Answer:
    if live(state.access, authorization.removeprefix("Bearer ")) is None:
        return oauth_error("invalid_token", 401)
    grant = live(state.access, form.get("token", "")) or live(state.refresh,
                                                              form.get("token", ""))
    if grant is None:
        return json_answer({"active": False, "scope": ""} if "verbose-inactive" in state.faults
                           else {"active": False})
    return json_answer({"active": True, "scope": grant.scope, "client_id": grant.client_id,
                        "exp": int(grant.expires_at), "patient": grant.patient})


def revoke(state: StandInState, form: Mapping[str, str]) -> Answer:
    for grants in (state.access, state.refresh):
        grant = grants.get(form.get("token", ""))
        if grant is not None and grant.client_id == form.get("client_id"):
            grant.active = False
    return 200, {"Cache-Control": "no-store"}, b""


def fhir_get(state: StandInState, path: str, authorization: str) -> Answer:
    grant = live(state.access, authorization.removeprefix("Bearer "))
    if grant is None:
        return fhir_answer({"resourceType": "OperationOutcome"}, 401,
                           headers={"WWW-Authenticate": 'Bearer realm="stand-in"'})
    resource_type = path.split("/")[0]
    allowed = f"patient/{resource_type}.rs" in grant.scope.split()
    if not allowed and "no-scope-check" not in state.faults:
        return fhir_answer({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "forbidden"}]}, 403)
    if path == f"Patient/{grant.patient}":
        return fhir_answer({"resourceType": "Patient", "id": grant.patient})
    return fhir_answer({"resourceType": "Bundle", "type": "searchset", "entry": []})


def answer(state: StandInState, method: str, target: str, headers: Mapping[str, str],
           body: bytes) -> Answer:
    """The stand-in's answer to one request."""
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query))
    form = dict(parse_qsl(body.decode())) if method == "POST" else {}
    authorization = headers.get("authorization", "")
    routes = {
        ("GET", "/fhir/metadata"): lambda: fhir_answer(
            capability_statement(state), headers={"Access-Control-Allow-Origin": "*"}),
        ("GET", "/fhir/.well-known/smart-configuration"): lambda: json_answer(discovery(state)),
        ("GET", "/fhir/.well-known/openid-configuration"): lambda: json_answer({
            "issuer": state.base, "jwks_uri": discovery(state)["jwks_uri"],
            "id_token_signing_alg_values_supported": ["RS256"]}),
        ("GET", "/auth/jwks"): lambda: json_answer({"keys": [state.key.as_dict(private=False)]}),
        ("GET", "/auth/authorize"): lambda: authorize_page(state, query),
        ("POST", "/auth/authorize"): lambda: sign_in(state, form, headers.get("cookie", "")),
        ("POST", "/auth/token"): lambda: token(state, form),
        ("POST", "/auth/introspect"): lambda: introspect(state, form, authorization),
        ("POST", "/auth/revoke"): lambda: revoke(state, form),
    }
    route = routes.get((method, parts.path))
    if route is not None:
        return route()
    if method == "GET" and parts.path.startswith("/fhir/"):
        return fhir_get(state, parts.path.removeprefix("/fhir/"), authorization)
    return html_answer("<p>Not found</p>", 404)


def _handler_for(state: StandInState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            with state.lock:
                status, sent, content = answer(state, method, self.path, headers, body)
            self.send_response(status)
            for name, value in {**sent, "Content-Length": str(len(content))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read the kit's output."""

    return Handler


@contextmanager
def running_stand_in(*faults: str) -> Iterator[StandInState]:
    """A started stand-in (breaking the rules named by ``faults``), stopped after the block."""
    unknown = set(faults) - FAULTS
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}")
    http = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    host, port = http.server_address[:2]
    state = StandInState(base=f"http://{host!s}:{port}/fhir", faults=frozenset(faults))
    http.RequestHandlerClass = _handler_for(state)
    thread = threading.Thread(target=http.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        http.shutdown()
        http.server_close()
        thread.join(timeout=5)
