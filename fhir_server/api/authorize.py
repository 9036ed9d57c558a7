"""The authorization endpoint over HTTP (``GET``/``POST /auth/authorize``: the sign-in page, in
French with English), sign-out (``POST /auth/logout``) and the routes of the app launch.

The page needs no JavaScript and loads nothing from elsewhere. It names the app, lists the
scopes asked and carries the authorization parameters in hidden fields, with a form token: an
HMAC (key derived from the ID token signing key) over the parameters and an expiry, so a
sign-in is only accepted from a form this server rendered recently for exactly those
parameters. Clickjacking: ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``.
What is decided lives in ``fhir_server.auth.authorization_code``; services are found on
``app.state.authorization`` (``AppAuthorization``) and ``app.state.settings``.

When the runtime holds a Pro Santé Connect client, the page also offers "Se connecter avec Pro
Santé Connect": a form posting the same parameters and form token to ``/auth/psc/start``
(``psc_login.py``). Whoever signed in, by password or through PSC, goes on through the same
code path (``code_or_form``). A person PSC signed in who must still choose the patient gets the
patient-choice form (``action=choose-patient``), which carries a signed token naming the account
instead of a password.
Notes: ``docs/implementation/smart-app-launch.md``, ``pro-sante-connect.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
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
from fhir_server.auth.pro_sante_connect import ProSanteConnect
from fhir_server.auth.scopes import ContextScope, ResourceScope, Scope
from fhir_server.auth.users import SignedInUser, SignInRefused
from fhir_server.crypto.base64url import b64url_encode

SIGN_IN: Final = "sign-in"
CHOOSE_PATIENT: Final = "choose-patient"
"""The action of the patient-choice form of a person already signed in (through PSC)."""
PSC_START_PATH: Final = "/auth/psc/start"
PSC_CALLBACK_PATH: Final = "/auth/psc/callback"
"""Where the Pro Santé Connect sign-in starts and where PSC sends the browser back
(``psc_login.py`` serves both)."""
FORM_TOKEN_SECONDS: Final = 900
"""How long a rendered sign-in form may be submitted."""
USER_FIELDS: Final = frozenset({"action", "form_token", "email", "password", "patient",
                                "account"})
"""The sign-in forms' own fields (everything else is an authorization parameter)."""
SIGNED_IN_KEY_LABEL: Final = "signed-in form v1"
"""Label of the key (derived from the ID token signing key) that signs the patient-choice
form's token; kept apart from the sign-in form's key."""
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


FORM_EXPIRED: Final = Message("Le formulaire a expiré : connectez-vous à nouveau.",
                              "The form has expired: please sign in again.")
ACCOUNT_UNAVAILABLE: Final = Message(
    "Ce compte ne peut plus être utilisé : connectez-vous à nouveau.",
    "This account may no longer be used: please sign in again.")
NOT_A_FORM: Final = Message(f"Le formulaire doit être envoyé encodé en {FORM}.",
                            f"The form must be sent as {FORM}.")


async def authorize(request: Request) -> Response:
    """``GET``/``POST /auth/authorize``: the sign-in page for a valid request; with
    ``action=sign-in``, the sign-in itself, answered by a redirect to the app; with
    ``action=choose-patient``, the patient chosen after a PSC sign-in."""
    if request.method == "POST":
        if media_type(header(request, "content-type")) != FORM:
            return error_page(NOT_A_FORM)
        form = await request.form()
        if form.get("action") == SIGN_IN:
            return await _sign_in(request, form)
        if form.get("action") == CHOOSE_PATIENT:
            return await _choose_patient(request, form)
        items = form_items(form)
    else:
        items = list(request.query_params.multi_items())
    checked = await checked_request(request, items)
    if isinstance(checked, Response):
        return checked
    return SignInForm(request, checked).show(None, status=200)


async def checked_request(request: Request,
                          items: Iterable[tuple[str, str]]) -> AuthorizeRequest | Response:
    """The authorization request of ``items``, checked (again); or the answer when it fails:
    the error page, or the redirect to the app with the error."""
    try:
        return await authorization_service(request).authorize_request(
            items, fhir_base=base_url(request))
    except ShownError as error:
        return error_page(Message(error.message_fr, error.message_en))
    except RedirectedError as error:
        return redirect(error.location)


async def logout(request: Request) -> Response:
    """``POST /auth/logout`` with ``Authorization: Bearer <token>``: revoke the whole grant
    (session) the token belongs to: its access and refresh tokens."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=PREFLIGHT)
    token = bearer_value(request.scope)
    if token is None or not await authorization_service(request).sign_out(token):
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
    checked = await checked_request(request, authorization_items(form_items(form)))
    if isinstance(checked, Response):
        return checked
    service = authorization_service(request)
    email, password = _field(form, "email").strip(), _field(form, "password")
    patient = _field(form, "patient").strip()
    again = SignInForm(request, checked, email=email, patient=patient)
    if not form_token_valid(service.form_key, _field(form, "form_token"), checked.parameters):
        return again.show(FORM_EXPIRED, status=400)
    if not email or not password:
        return again.show(Message("Indiquez votre adresse électronique et votre mot de passe.",
                                  "Enter your email address and your password."), status=400)
    try:
        user = await service.users.sign_in(email, password, address=_address(request))
    except SignInRefused as refusal:
        return again.refused(refusal)
    return await code_or_form(again, user, patient=patient or None)


async def _choose_patient(request: Request, form: FormData) -> Response:
    """The patient-choice form of a person already signed in (through PSC): the request
    checked again, then the signed token naming the account, the account still usable, and
    the patient; a redirect with the code, or a form again."""
    checked = await checked_request(request, authorization_items(form_items(form)))
    if isinstance(checked, Response):
        return checked
    service = authorization_service(request)
    account, email = _field(form, "account"), _field(form, "email")
    patient = _field(form, "patient").strip()
    sign_in_again = SignInForm(request, checked, patient=patient)
    if not account or not form_token_valid(signed_in_key(service), _field(form, "form_token"),
                                           signed_in_parameters(checked, account, email)):
        return sign_in_again.show(FORM_EXPIRED, status=400)
    principal = await service.users.principal_of(account)
    if principal is None:
        return sign_in_again.show(ACCOUNT_UNAVAILABLE, status=401)
    user = SignedInUser(account_id=account, email=email, principal=principal)
    return await code_or_form(replace(sign_in_again, email=email, signed_in=user), user,
                              patient=patient or None)


async def code_or_form(form: SignInForm, user: SignedInUser, *,
                       patient: str | None) -> Response:
    """What follows a sign-in, by password or through PSC: the redirect to the app with a new
    code; ``form`` again when the patient is missing or may not be opened; the redirect with
    the error when the launch context cannot be given."""
    try:
        location = await authorization_service(form.request).code_location(
            form.authorize_request, user, patient=patient, fhir_base=base_url(form.request))
    except PatientRefused as refusal:
        return form.show(Message(refusal.message_fr, refusal.message_en), status=400)
    except RedirectedError as error:
        return redirect(error.location)
    return redirect(location)


@dataclass(frozen=True, slots=True)
class SignInForm:
    """The sign-in page of one request, shown (again) with what the person typed (never the
    password) and a message. With ``signed_in`` (a person PSC signed in), the page is the
    patient choice: no credentials asked, a signed token names the account instead."""

    request: Request
    authorize_request: AuthorizeRequest
    email: str = ""
    patient: str = ""
    signed_in: SignedInUser | None = None

    def show(self, message: Message | None, *, status: int,
             headers: dict[str, str] | None = None) -> Response:
        return _sign_in_page(self, message=message, status=status, headers=headers)

    def refused(self, refusal: SignInRefused) -> Response:
        message = Message(refusal.message_fr, refusal.message_en)
        if refusal.retry_after is not None:
            return self.show(message, status=429,
                             headers={"Retry-After": str(max(1, refusal.retry_after))})
        return self.show(message, status=401)


def signed_in_key(service: AppAuthorization) -> bytes:
    """The key of the patient-choice form's token (derived from the ID token signing key)."""
    return service.signer.derived_key(SIGNED_IN_KEY_LABEL)


def signed_in_parameters(authorize_request: AuthorizeRequest, account: str,
                         email: str) -> list[tuple[str, str]]:
    """What the patient-choice form's token covers: the request's parameters and the account
    that signed in."""
    return [*authorize_request.parameters, ("account", account), ("email", email)]


def psc_of(request: Request) -> ProSanteConnect | None:
    """The runtime's Pro Santé Connect client; None when PSC sign-in is not configured."""
    runtime = getattr(request.app.state, "runtime", None)
    psc = getattr(runtime, "psc", None)
    return psc if isinstance(psc, ProSanteConnect) else None


def _sign_in_page(form: SignInForm, *, message: Message | None, status: int,
                  headers: dict[str, str] | None) -> Response:
    authorize_request = form.authorize_request
    app_name = escape(authorize_request.client.name)
    hidden = "".join(f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
                     for name, value in authorize_request.parameters)
    scopes = "".join(_scope_item(scope) for scope in authorize_request.scopes.scopes)
    alert = ("" if message is None else
             f'<div role="alert"><p>{escape(message.fr)}</p>'
             f'<p class="en" lang="en">{escape(message.en)}</p></div>')
    forms = (_password_forms(form, hidden) if form.signed_in is None
             else _patient_choice_form(form, form.signed_in, hidden))
    body = (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Connexion à Pictaderm – {app_name}</title><style>{_STYLE}</style></head>"
        "<body><main>"
        f"<h1>Connexion à Pictaderm <span class=\"en\" lang=\"en\">Sign in</span></h1>"
        f"<p>L'application <strong>{app_name}</strong> demande à :"
        f'<br><span class="en" lang="en">The application <strong>{app_name}</strong> asks '
        f"to:</span></p><ul>{scopes}</ul>{alert}{forms}</main></body></html>")
    return Response(body, status_code=status, media_type="text/html; charset=utf-8",
                    headers={**PAGE_HEADERS, **(headers or {})})


def _password_forms(form: SignInForm, hidden: str) -> str:
    """The Pro Santé Connect button (when PSC is configured), then the email and password
    form; both carry the authorization parameters and the form token."""
    request = form.request
    token = escape(form_token(authorization_service(request).form_key,
                              form.authorize_request.parameters))
    psc = ""
    if psc_of(request) is not None:
        psc = (f'<form method="post" action="{escape(endpoint_url(request, PSC_START_PATH))}">'
               f'<input type="hidden" name="form_token" value="{token}">{hidden}'
               '<button type="submit">Se connecter avec Pro Santé Connect <span lang="en">/ '
               "Sign in with Pro Santé Connect</span></button></form>"
               '<p>Ou avec votre adresse électronique : <span class="en" lang="en">Or with '
               "your email address:</span></p>")
    return (
        f'{psc}<form method="post" action="{escape(endpoint_url(request, AUTHORIZE_PATH))}">'
        f'<input type="hidden" name="action" value="{SIGN_IN}">'
        f'<input type="hidden" name="form_token" value="{token}">{hidden}'
        '<label for="email">Adresse électronique <span class="en" lang="en">(email)</span>'
        '</label><input id="email" name="email" type="email" required '
        f'autocomplete="username" value="{escape(form.email)}">'
        '<label for="password">Mot de passe <span class="en" lang="en">(password)</span>'
        '</label><input id="password" name="password" type="password" required '
        'autocomplete="current-password">'
        f"{_patient_field(form)}"
        '<button type="submit">Se connecter et autoriser <span lang="en">/ Sign in and '
        "allow</span></button></form>")


def _patient_choice_form(form: SignInForm, user: SignedInUser, hidden: str) -> str:
    """The form of a person already signed in: the patient, and a signed token naming the
    account in place of the credentials."""
    request = form.request
    service = authorization_service(request)
    token = form_token(signed_in_key(service),
                       signed_in_parameters(form.authorize_request, user.account_id, user.email))
    return (
        f"<p>Connecté(e) : <strong>{escape(user.email)}</strong><br>"
        f'<span class="en" lang="en">Signed in: <strong>{escape(user.email)}</strong></span>'
        f'</p><form method="post" action="{escape(endpoint_url(request, AUTHORIZE_PATH))}">'
        f'<input type="hidden" name="action" value="{CHOOSE_PATIENT}">'
        f'<input type="hidden" name="form_token" value="{escape(token)}">'
        f'<input type="hidden" name="account" value="{escape(user.account_id)}">'
        f'<input type="hidden" name="email" value="{escape(user.email)}">{hidden}'
        f"{_patient_field(form)}"
        '<button type="submit">Continuer et autoriser <span lang="en">/ Continue and '
        "allow</span></button></form>")


def _patient_field(form: SignInForm) -> str:
    """The patient input of a standalone launch asking ``launch/patient``, or the EHR
    launch's patient."""
    authorize_request = form.authorize_request
    if authorize_request.asks_patient:
        return ('<label for="patient">Identifiant du patient <span class="en" lang="en">'
                '(patient id)</span></label><input id="patient" name="patient" type="text" '
                f'required autocomplete="off" value="{escape(form.patient)}">')
    if authorize_request.launch_patient is not None:
        return f"<p>Patient : {escape(authorize_request.launch_patient)}</p>"
    return ""


def error_page(message: Message, *, status: int = 400) -> Response:
    """The page for a request that cannot go back to the app (HTTP 400 unless told)."""
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
    return Response(body, status_code=status, media_type="text/html; charset=utf-8",
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
    return b64url_encode(digest)


def form_items(form: FormData) -> list[tuple[str, str]]:
    """The text fields of a submitted form, in order."""
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


def authorization_items(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The authorization parameters among a sign-in form's fields."""
    return [(name, value) for name, value in items if name not in USER_FIELDS]


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _address(request: Request) -> str:
    """The caller's address, for sign-in throttling."""
    return request.client.host if request.client is not None else "unknown"


def redirect(location: str) -> Response:
    """302 to ``location``, not to be cached."""
    return RedirectResponse(location, status_code=302, headers=NO_STORE)


def authorization_service(request: Request) -> AppAuthorization:
    """The ``AppAuthorization`` on ``app.state``."""
    service: AppAuthorization = request.app.state.authorization
    return service
