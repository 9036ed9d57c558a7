"""The authorization endpoint over HTTP (``GET``/``POST /auth/authorize``: the sign-in page, in
French with English), sign-out (``POST /auth/logout``) and the routes of the app launch.

The page needs no JavaScript and loads nothing from elsewhere. It names the app, lists the
scopes asked and carries the authorization parameters in hidden fields, with a form token: an
HMAC (key derived from the ID token signing key) over the parameters and an expiry, so a
sign-in is only accepted from a form this server rendered recently for exactly those
parameters. Clickjacking: ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``.
What is decided lives in ``fhir_server.auth.authorization_code``; services are found on
``app.state.authorization`` (``AppAuthorization``) and ``app.state.settings``.
Notes: ``docs/implementation/smart-app-launch.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from fhir_server.api.auth_gate import bearer_value
from fhir_server.api.handlers import base_url
from fhir_server.api.negotiation import header, media_type
from fhir_server.api.oauth import (
    AUTHORIZE_PATH,
    CORS,
    FORM,
    JWKS_PATH,
    LOGOUT_PATH,
    NO_STORE,
    OPENID_CONFIGURATION,
    PREFLIGHT,
    endpoint_url,
    jwks,
    openid_configuration,
)
from fhir_server.auth.authorization_code import (
    AppAuthorization,
    AuthorizeRequest,
    PatientRefused,
    RedirectedError,
    ShownError,
)
from fhir_server.auth.scopes import ContextScope, ResourceScope, Scope
from fhir_server.auth.users import SignInRefused

SIGN_IN: Final = "sign-in"
FORM_TOKEN_SECONDS: Final = 900
"""How long a rendered sign-in form may be submitted."""
USER_FIELDS: Final = frozenset({"action", "form_token", "email", "password", "patient"})
"""The sign-in form's own fields (everything else is an authorization parameter)."""
_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1b1f24}"
    "main{max-width:32rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;"
    "border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15)}"
    "h1{font-size:1.4rem}.en{color:#4a5560;font-size:.95em}"
    "label{display:block;margin-top:1rem;font-weight:600}"
    "input{display:block;width:100%;box-sizing:border-box;padding:.5rem;margin-top:.25rem;"
    "font-size:1rem;border:1px solid #6b7780;border-radius:4px}"
    "input:focus,button:focus{outline:3px solid #1f5fbf;outline-offset:2px}"
    "button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem;background:#1f5fbf;"
    "color:#fff;border:0;border-radius:4px;cursor:pointer}"
    "[role=alert]{border-left:4px solid #b00020;background:#fdecee;padding:.5rem 1rem}"
    "ul{padding-left:1.2rem}li{margin:.3rem 0}")
_STYLE_HASH: Final = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
PAGE_HEADERS: Final = {
    **NO_STORE,
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_LETTERS_FR: Final = {"c": "créer", "r": "lire", "u": "modifier", "d": "supprimer",
                      "s": "rechercher"}
_LETTERS_EN: Final = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
_CONTEXT_SCOPES: Final = {
    "openid": ("Connaître votre identité", "Know who you are"),
    "fhirUser": ("Connaître votre fiche de professionnel de santé",
                 "Know your health professional record"),
    "launch": ("Recevoir le contexte d'ouverture (patient, rencontre)",
               "Receive the launch context (patient, encounter)"),
    "launch/patient": ("Travailler sur un patient que vous choisissez",
                       "Work on a patient you choose"),
    "launch/encounter": ("Recevoir la rencontre en cours", "Receive the current encounter"),
    "offline_access": ("Garder l'accès après votre départ (jeton de rafraîchissement)",
                       "Keep access after you leave (refresh token)"),
    "online_access": ("Garder l'accès tant que vous êtes connecté(e)",
                      "Keep access while you are signed in"),
}


@dataclass(frozen=True, slots=True)
class Message:
    """A message for the person, in French and in English."""

    fr: str
    en: str


async def authorize(request: Request) -> Response:
    """``GET``/``POST /auth/authorize``: the sign-in page for a valid request; with
    ``action=sign-in``, the sign-in itself, answered by a redirect to the app."""
    if request.method == "POST":
        if media_type(header(request, "content-type")) != FORM:
            return _error_page(Message("Le formulaire doit être envoyé encodé en "
                                       f"{FORM}.", f"The form must be sent as {FORM}."))
        form = await request.form()
        if form.get("action") == SIGN_IN:
            return await _sign_in(request, form)
        items = _string_items(form)
    else:
        items = list(request.query_params.multi_items())
    try:
        authorize_request = await _service(request).authorize_request(
            items, fhir_base=base_url(request))
    except ShownError as error:
        return _error_page(Message(error.message_fr, error.message_en))
    except RedirectedError as error:
        return _redirect(error.location)
    return _sign_in_page(request, authorize_request)


async def logout(request: Request) -> Response:
    """``POST /auth/logout`` with ``Authorization: Bearer <token>``: revoke the whole grant
    (session) the token belongs to: its access and refresh tokens."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=PREFLIGHT)
    token = bearer_value(request.scope)
    if token is None or not await _service(request).sign_out(token):
        challenge = 'Bearer realm="fhir"' + (', error="invalid_token"' if token else "")
        return JSONResponse({"error": "invalid_token",
                             "error_description": "send 'Authorization: Bearer <token>' with "
                                                  "a usable token of this server"},
                            status_code=401,
                            headers={**NO_STORE, **CORS, "WWW-Authenticate": challenge})
    return Response(status_code=204, headers={**NO_STORE, **CORS})


ROUTES: Final = [
    Route(AUTHORIZE_PATH, authorize, methods=["GET", "POST"]),
    Route(LOGOUT_PATH, logout, methods=["POST", "OPTIONS"]),
    Route(JWKS_PATH, jwks, methods=["GET"]),
    Route(OPENID_CONFIGURATION, openid_configuration, methods=["GET"]),
]
"""The app launch's routes, to add to the application (the last one sits under the FHIR
base, where OpenID Connect Discovery looks for the issuer ``<root>/fhir``)."""


def form_token(key: bytes, parameters: Sequence[tuple[str, str]], *,
               now: float | None = None) -> str:
    """A token for a sign-in form carrying ``parameters``: ``<expiry>.<HMAC-SHA256>``."""
    expires = int(time.time() if now is None else now) + FORM_TOKEN_SECONDS
    return f"{expires}.{_form_mac(key, parameters, expires)}"


def form_token_valid(key: bytes, token: str, parameters: Sequence[tuple[str, str]], *,
                     now: float | None = None) -> bool:
    """Whether ``token`` was made by ``form_token`` for these parameters and has not expired."""
    expiry, dot, mac = token.partition(".")
    if not dot or not expiry.isdigit() or len(expiry) > 12:
        return False
    if int(expiry) < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(mac, _form_mac(key, parameters, int(expiry)))


def describe_scope(scope: Scope) -> Message:
    """What a scope lets the app do, for the person signing in."""
    if isinstance(scope, ContextScope):
        fr, en = _CONTEXT_SCOPES[scope.name]
        return Message(fr, en)
    return _describe_resource_scope(scope)


async def _sign_in(request: Request, form: FormData) -> Response:
    """The submitted sign-in form: the request checked again, then the form token, the
    credentials and the patient; a redirect with the code, or the form again."""
    service = _service(request)
    try:
        authorize_request = await service.authorize_request(
            ((name, value) for name, value in _string_items(form) if name not in USER_FIELDS),
            fhir_base=base_url(request))
    except ShownError as error:
        return _error_page(Message(error.message_fr, error.message_en))
    except RedirectedError as error:
        return _redirect(error.location)
    email, password = _field(form, "email").strip(), _field(form, "password")
    patient = _field(form, "patient").strip()
    again = _Form(request, authorize_request, email=email, patient=patient)
    if not form_token_valid(service.form_key, _field(form, "form_token"),
                            authorize_request.parameters):
        return again.show(Message("Le formulaire a expiré : connectez-vous à nouveau.",
                                  "The form has expired: please sign in again."), status=400)
    if not email or not password:
        return again.show(Message("Indiquez votre adresse électronique et votre mot de passe.",
                                  "Enter your email address and your password."), status=400)
    try:
        location = await service.sign_in(
            authorize_request, email=email, password=password, address=_address(request),
            patient=patient or None, fhir_base=base_url(request))
    except SignInRefused as refusal:
        return again.refused(refusal)
    except PatientRefused as refusal:
        return again.show(Message(refusal.message_fr, refusal.message_en), status=400)
    except RedirectedError as error:
        return _redirect(error.location)
    return _redirect(location)


@dataclass(frozen=True, slots=True)
class _Form:
    """The sign-in page of one request, shown again with what the person typed (never the
    password) and a message."""

    request: Request
    authorize_request: AuthorizeRequest
    email: str
    patient: str

    def show(self, message: Message, *, status: int,
             headers: dict[str, str] | None = None) -> Response:
        return _sign_in_page(self.request, self.authorize_request, message=message,
                             email=self.email, patient=self.patient, status=status,
                             headers=headers)

    def refused(self, refusal: SignInRefused) -> Response:
        message = Message(refusal.message_fr, refusal.message_en)
        if refusal.retry_after is not None:
            return self.show(message, status=429,
                             headers={"Retry-After": str(max(1, refusal.retry_after))})
        return self.show(message, status=401)


def _sign_in_page(request: Request, authorize_request: AuthorizeRequest, *,
                  message: Message | None = None, email: str = "", patient: str = "",
                  status: int = 200, headers: dict[str, str] | None = None) -> Response:
    token = form_token(_service(request).form_key, authorize_request.parameters)
    app_name = escape(authorize_request.client.name)
    hidden = "".join(f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
                     for name, value in authorize_request.parameters)
    scopes = "".join(_scope_item(scope) for scope in authorize_request.scopes.scopes)
    alert = ("" if message is None else
             f'<div role="alert"><p>{escape(message.fr)}</p>'
             f'<p class="en" lang="en">{escape(message.en)}</p></div>')
    patient_field = ""
    if authorize_request.asks_patient:
        patient_field = (
            '<label for="patient">Identifiant du patient <span class="en" lang="en">'
            '(patient id)</span></label><input id="patient" name="patient" type="text" '
            f'required autocomplete="off" value="{escape(patient)}">')
    elif authorize_request.launch_patient is not None:
        patient_field = (f'<p>Patient : {escape(authorize_request.launch_patient)}</p>')
    body = (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Connexion à Pictaderm – {app_name}</title><style>{_STYLE}</style></head>"
        "<body><main>"
        f"<h1>Connexion à Pictaderm <span class=\"en\" lang=\"en\">Sign in</span></h1>"
        f"<p>L'application <strong>{app_name}</strong> demande à :"
        f'<br><span class="en" lang="en">The application <strong>{app_name}</strong> asks '
        f"to:</span></p><ul>{scopes}</ul>{alert}"
        f'<form method="post" action="{escape(endpoint_url(request, AUTHORIZE_PATH))}">'
        f'<input type="hidden" name="action" value="{SIGN_IN}">'
        f'<input type="hidden" name="form_token" value="{escape(token)}">{hidden}'
        '<label for="email">Adresse électronique <span class="en" lang="en">(email)</span>'
        '</label><input id="email" name="email" type="email" required '
        f'autocomplete="username" value="{escape(email)}">'
        '<label for="password">Mot de passe <span class="en" lang="en">(password)</span>'
        '</label><input id="password" name="password" type="password" required '
        'autocomplete="current-password">'
        f"{patient_field}"
        '<button type="submit">Se connecter et autoriser <span lang="en">/ Sign in and '
        "allow</span></button></form></main></body></html>")
    return Response(body, status_code=status, media_type="text/html; charset=utf-8",
                    headers={**PAGE_HEADERS, **(headers or {})})


def _error_page(message: Message) -> Response:
    """The page for a request that cannot go back to the app (HTTP 400)."""
    body = (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Demande refusée – Pictaderm</title><style>{_STYLE}</style></head>"
        "<body><main><h1>Demande refusée <span class=\"en\" lang=\"en\">Request refused"
        f'</span></h1><div role="alert"><p>{escape(message.fr)}</p>'
        f'<p class="en" lang="en">{escape(message.en)}</p></div>'
        "<p>Revenez à l'application et réessayez, ou contactez son éditeur."
        '<br><span class="en" lang="en">Go back to the application and try again, or contact '
        "its publisher.</span></p></main></body></html>")
    return Response(body, status_code=400, media_type="text/html; charset=utf-8",
                    headers=PAGE_HEADERS)


def _scope_item(scope: Scope) -> str:
    described = describe_scope(scope)
    return (f"<li>{escape(described.fr)}<br>"
            f'<span class="en" lang="en">{escape(described.en)}</span> '
            f"<code>{escape(scope.text)}</code></li>")


def _describe_resource_scope(scope: ResourceScope) -> Message:
    verbs_fr = ", ".join(_LETTERS_FR[letter] for letter in scope.permissions)
    verbs_en = ", ".join(_LETTERS_EN[letter] for letter in scope.permissions)
    if scope.resource_type == "*":
        what_fr, what_en = "toutes les ressources", "all resources"
    else:
        what_fr = f"les ressources {scope.resource_type}"
        what_en = f"{scope.resource_type} resources"
    if scope.context == "patient":
        whose_fr, whose_en = " du patient", " of the patient"
    elif scope.context == "user":
        whose_fr, whose_en = " auxquelles vous avez accès", " you may access"
    else:
        whose_fr = whose_en = ""
    limits = " ".join(f"{name}={value}" for name, value in scope.restriction)
    limit_fr = f" (limité à {limits})" if limits else ""
    limit_en = f" (limited to {limits})" if limits else ""
    return Message(f"{verbs_fr.capitalize()} : {what_fr}{whose_fr}{limit_fr}",
                   f"{verbs_en.capitalize()}: {what_en}{whose_en}{limit_en}")


def _form_mac(key: bytes, parameters: Sequence[tuple[str, str]], expires: int) -> str:
    payload = json.dumps([expires, [list(pair) for pair in parameters]],
                         separators=(",", ":"), ensure_ascii=True).encode()
    digest = hmac.new(key, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _string_items(form: FormData) -> list[tuple[str, str]]:
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _address(request: Request) -> str:
    """The caller's address, for sign-in throttling."""
    return request.client.host if request.client is not None else "unknown"


def _redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=302, headers=NO_STORE)


def _service(request: Request) -> AppAuthorization:
    service: AppAuthorization = request.app.state.authorization
    return service
